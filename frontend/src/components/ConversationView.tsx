import { useCallback, useEffect, useMemo, useState } from "react";
import { api, ApiError, type ConversationItem } from "../api";
import { taskHref } from "../route";
import { foldAll, fromItem } from "../timeline";
import { Timeline } from "./Timeline";

interface Props {
  conversationId: string;
}

/** A conversation's history (GET /conversations/{id}/items), shown like the live view. */
export function ConversationView({ conversationId }: Props) {
  const [items, setItems] = useState<ConversationItem[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);

  const load = useCallback(
    async (signal?: AbortSignal) => {
      try {
        const page = await api.conversationItems(conversationId, null, signal);
        if (signal?.aborted) return;
        setItems(page.items);
        setCursor(page.next_cursor);
        setError(null);
      } catch (err) {
        if (signal?.aborted || (err as Error).name === "AbortError") return;
        setError(err instanceof ApiError ? err : new ApiError(0, "Could not load the conversation."));
      }
    },
    [conversationId],
  );

  useEffect(() => {
    const controller = new AbortController();
    void load(controller.signal);
    return () => controller.abort();
  }, [load]);

  const more = async () => {
    if (!cursor) return;
    setLoadingMore(true);
    try {
      const page = await api.conversationItems(conversationId, cursor);
      setItems((old) => [...(old ?? []), ...page.items]);
      setCursor(page.next_cursor);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, "Could not load more."));
    } finally {
      setLoadingMore(false);
    }
  };

  const timeline = useMemo(() => foldAll((items ?? []).map(fromItem)), [items]);
  const taskIds = useMemo(
    () => [...new Set((items ?? []).map((i) => i.task_id).filter((id): id is string => !!id))],
    [items],
  );

  return (
    <article className="conversation-view" data-testid="conversation-view" aria-labelledby="conv-title">
      <header className="card task-head">
        <p className="eyebrow">Conversation history</p>
        <h2 id="conv-title" className="mono-title">
          {conversationId}
        </h2>
        {taskIds.length > 0 && (
          <nav aria-label="Tasks of this conversation" className="chips">
            {taskIds.map((id, index) => (
              <a key={id} className="chip chip-link" href={taskHref(id)} data-testid="conversation-task-link">
                {taskIds.length > 1 ? `Open task ${index + 1}` : "Open the task"} →
              </a>
            ))}
          </nav>
        )}
        <div className="button-row">
          <button type="button" className="button" onClick={() => void load()} data-testid="conversation-reload">
            Reload
          </button>
        </div>
      </header>
      {error && (
        <p className="notice notice-error" role="alert">
          {error.status === 404 ? "This conversation does not exist." : error.message}
        </p>
      )}
      {items === null && !error && <p className="muted pad">Loading the history…</p>}
      {items !== null && (
        <section className="activity" aria-label="History">
          <Timeline models={[timeline]} version={timeline.version} emptyText="This conversation has no items yet." />
          {cursor && (
            <button type="button" className="button" onClick={more} disabled={loadingMore} data-testid="conversation-more">
              {loadingMore ? "Loading…" : "Load more"}
            </button>
          )}
        </section>
      )}
    </article>
  );
}
