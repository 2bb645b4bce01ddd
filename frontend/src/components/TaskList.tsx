import { useEffect, useMemo, useState } from "react";
import { api, ApiError, FINISHED_STATUSES, TASK_STATUSES, type Agent, type Task, type TaskFilters } from "../api";
import { formatMs, formatRelative, formatShort, patternText, runTimeMs, statusLabel } from "../format";
import { usePoll, useRefresh } from "../hooks";
import { replaceRoute, taskHref, withParams, type Route } from "../route";
import { StatusBadge } from "./StatusBadge";

interface Props {
  agents: Agent[];
  selectedId: string | null;
  route: Route;
}

const POLL_MS = 3000;
const PAGE_SIZE = 25;
/** A search looks through this many of the newest tasks (the API has no text search). */
const SEARCH_DEPTH = 500;
const FILTER_NAMES = ["status", "agent_name", "pattern"] as const;

/** Run times (ms) of finished tasks, by id: a finished task's runs no longer change. */
const runTimes = new Map<string, number>();

/** Whether a finished task's wall time (started to completed) may hold more than its runs:
 * a later attempt (after an interrupted or failed one) or a failure (its one run may have been
 * cut short by a server stop). Its "took" is then the sum of its runs' own times. */
function needsRuns(task: Task): boolean {
  return task.pattern === "once" && FINISHED_STATUSES.has(task.status) && (task.attempt > 1 || task.status === "failed");
}

/** The time each listed task ran, in ms: the sum of its runs for the tasks that need it
 * (fetched once each), else started to completed. */
function useRunTimes(tasks: Task[] | null): Map<string, number> {
  const [, setLoaded] = useState(0);
  useEffect(() => {
    const missing = (tasks ?? []).filter((t) => needsRuns(t) && !runTimes.has(t.task_id));
    if (missing.length === 0) return;
    const control = new AbortController();
    void Promise.all(
      missing.map(async (task) => {
        try {
          const page = await api.listRuns(task.task_id, null, control.signal);
          runTimes.set(task.task_id, runTimeMs(page.items));
        } catch {
          /* shown as "—" until the next poll tries again */
        }
      }),
    ).then(() => {
      if (!control.signal.aborted) setLoaded((n) => n + 1);
    });
    return () => control.abort();
  }, [tasks]);
  const out = new Map<string, number>();
  for (const task of tasks ?? []) {
    if (!FINISHED_STATUSES.has(task.status) || !task.started_at || !task.completed_at) continue;
    const ms = needsRuns(task) ? runTimes.get(task.task_id) : Date.parse(task.completed_at) - Date.parse(task.started_at);
    if (ms !== undefined) out.set(task.task_id, ms);
  }
  return out;
}

function matches(task: Task, words: string[]): boolean {
  const hay = `${task.task_id} ${task.title} ${task.query} ${task.agent_name}`.toLowerCase();
  return words.every((w) => hay.includes(w));
}

function lastResult(task: Task): string | null {
  if (task.error_message && task.status !== "cancelled") return task.error_message;
  return null;
}

/** The caller's tasks, newest first, with search, filters and pages kept in the URL. */
export function TaskList({ agents, selectedId, route }: Props) {
  const { version, bump } = useRefresh();
  const params = route.params;
  const filters: TaskFilters = useMemo(() => {
    const out: TaskFilters = {};
    for (const name of FILTER_NAMES) {
      const value = params.get(name);
      if (value) out[name] = value;
    }
    return out;
  }, [params]);
  const search = params.get("q") ?? "";
  const [draft, setDraft] = useState(search);
  // cursors[i] is the cursor of page i (null for the first page); the URL keeps the page number.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [bulk, setBulk] = useState<{ busy: boolean; confirm: "cancel" | "delete" | null; note: string | null }>({
    busy: false,
    confirm: null,
    note: null,
  });
  const wantedPage = Math.max(0, Number(params.get("page") ?? "1") - 1) || 0;
  const page = Math.min(wantedPage, cursors.length - 1);
  const filterKey = JSON.stringify(filters);
  const took = useRunTimes(tasks);

  useEffect(() => setDraft(search), [search]);
  useEffect(() => {
    setCursors([null]);
    setTasks(null);
    setPicked(new Set());
  }, [filterKey, search]);

  usePoll(
    async (signal) => {
      try {
        if (search.trim()) {
          const words = search.trim().toLowerCase().split(/\s+/);
          const result = await api.listTasks(filters, null, SEARCH_DEPTH, signal);
          if (signal.aborted) return;
          setTasks(result.items.filter((t) => matches(t, words)));
          setNextCursor(null);
        } else {
          // Walk to the page the URL names (a shared link, a reload).
          let known = cursors;
          while (known.length - 1 < wantedPage) {
            const skip = await api.listTasks(filters, known[known.length - 1], PAGE_SIZE, signal);
            if (!skip.next_cursor) break;
            known = [...known, skip.next_cursor];
          }
          if (known !== cursors) setCursors(known);
          const at = Math.min(wantedPage, known.length - 1);
          const result = await api.listTasks(filters, known[at], PAGE_SIZE, signal);
          if (signal.aborted) return;
          setTasks(result.items);
          setNextCursor(result.next_cursor);
        }
        setError(null);
        setNow(Date.now());
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ApiError && err.isNetwork) return; // the page's banner says so
        if (err instanceof ApiError && err.status === 401) setError("Enter an API key to see your tasks.");
        else setError(err instanceof ApiError ? err.message : "Could not load the tasks.");
      }
    },
    POLL_MS,
    [filterKey, search, cursors, wantedPage, version],
  );

  const setParam = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    if (name !== "page") next.delete("page");
    replaceRoute(withParams(next));
  };

  const goPage = (index: number) => {
    if (index > cursors.length - 1 && nextCursor) setCursors((c) => [...c, nextCursor]);
    setParam("page", index > 0 ? String(index + 1) : "");
  };

  const agentNames = [...new Set([...agents.map((a) => a.name), ...(filters.agent_name ? [filters.agent_name] : [])])];
  const query = params.toString();
  const link = (id: string) => `${taskHref(id)}${query ? `?${query}` : ""}`;
  const shownTasks = tasks ?? [];
  const pickedTasks = shownTasks.filter((t) => picked.has(t.task_id));
  const cancellable = pickedTasks.filter((t) => !FINISHED_STATUSES.has(t.status));
  const deletable = pickedTasks.filter((t) => FINISHED_STATUSES.has(t.status));

  const runBulk = async (kind: "cancel" | "delete") => {
    const targets = kind === "cancel" ? cancellable : deletable;
    setBulk({ busy: true, confirm: null, note: null });
    let done = 0;
    const failures: string[] = [];
    const named = new Map(targets.map((t) => [t.task_id, t.title || t.task_id.slice(0, 8)]));
    try {
      // One request for them all (POST /tasks:bulk), a result per task.
      const outcome = await api.bulkTasks(kind, targets.map((t) => t.task_id));
      done = outcome.succeeded;
      for (const result of outcome.results) {
        if (!result.ok) failures.push(`${named.get(result.task_id) ?? result.task_id.slice(0, 8)}: ${result.message}`);
      }
    } catch (err) {
      failures.push(err instanceof ApiError ? err.message : "failed");
    }
    setPicked(new Set());
    setBulk({
      busy: false,
      confirm: null,
      note: `${kind === "cancel" ? "Cancelled" : "Deleted"} ${done} task${done === 1 ? "" : "s"}.${failures.length ? ` Not done: ${failures.join("; ")}` : ""}`,
    });
    bump();
    document.getElementById("tasks-heading")?.focus();
  };

  return (
    <section className="task-list" aria-labelledby="tasks-heading">
      <div className="list-head">
        <h2 id="tasks-heading" tabIndex={-1}>
          Tasks
        </h2>
        <a className="button button-primary" href="#/new" data-testid="new-task">
          New task
        </a>
      </div>
      <form
        className="search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setParam("q", draft.trim());
        }}
      >
        <label htmlFor="task-search" className="sr-only">
          Search tasks by words or id
        </label>
        <input
          id="task-search"
          type="search"
          value={draft}
          placeholder="Search by words or id"
          onChange={(e) => {
            setDraft(e.target.value);
            if (!e.target.value) setParam("q", "");
          }}
          data-testid="search-input"
        />
        <button type="submit" className="button" data-testid="search-submit">
          Search
        </button>
      </form>
      <div className="filters" role="group" aria-label="Filter tasks">
        <label>
          <span>Status</span>
          <select data-testid="filter-status" value={filters.status ?? ""} onChange={(e) => setParam("status", e.target.value)}>
            <option value="">All</option>
            {TASK_STATUSES.map((s) => (
              <option key={s} value={s}>
                {statusLabel(s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Agent</span>
          <select data-testid="filter-agent" value={filters.agent_name ?? ""} onChange={(e) => setParam("agent_name", e.target.value)}>
            <option value="">All</option>
            {agentNames.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Pattern</span>
          <select data-testid="filter-pattern" value={filters.pattern ?? ""} onChange={(e) => setParam("pattern", e.target.value)}>
            <option value="">All</option>
            <option value="once">once</option>
            <option value="recurring">recurring</option>
          </select>
        </label>
      </div>

      {error && (
        <p className="notice notice-error" role="alert" data-testid="list-error">
          {error}
        </p>
      )}

      {(picked.size > 0 || bulk.note) && (
        <div className="bulk" role="group" aria-label="Selected tasks" data-testid="bulk-bar">
          {picked.size > 0 && <span>{picked.size} selected</span>}
          {picked.size > 0 && bulk.confirm === null && (
            <>
              <button type="button" className="button button-small" disabled={bulk.busy || cancellable.length === 0} onClick={() => setBulk((b) => ({ ...b, confirm: "cancel" }))} data-testid="bulk-cancel">
                Cancel {cancellable.length}…
              </button>
              <button type="button" className="button button-small" disabled={bulk.busy || deletable.length === 0} onClick={() => setBulk((b) => ({ ...b, confirm: "delete" }))} data-testid="bulk-delete">
                Delete {deletable.length}…
              </button>
            </>
          )}
          {bulk.confirm && (
            <>
              <span className="confirm-text">
                {bulk.confirm === "cancel" ? `Cancel ${cancellable.length} running task(s)?` : `Delete ${deletable.length} finished task(s) and their history?`}
              </span>
              <button type="button" className="button button-danger button-small" autoFocus onClick={() => void runBulk(bulk.confirm!)} data-testid="bulk-confirm">
                Yes
              </button>
              <button type="button" className="button button-small" onClick={() => setBulk((b) => ({ ...b, confirm: null }))}>
                No
              </button>
            </>
          )}
          {bulk.note && (
            <span role="status" data-testid="bulk-note">
              {bulk.note}
            </span>
          )}
        </div>
      )}

      {tasks === null && !error && <p className="muted pad">Loading…</p>}
      {tasks !== null && tasks.length === 0 && (
        <p className="empty" data-testid="list-empty">
          {search ? `No task matches “${search}”.` : Object.values(filters).some(Boolean) ? "No task matches these filters." : "No tasks yet. Create one to get started."}
        </p>
      )}

      {tasks !== null && tasks.length > 0 && (
        <ul className="rows" data-testid="task-list">
          {tasks.map((task) => {
            const result = lastResult(task);
            const name = task.title || task.query;
            return (
              <li key={task.task_id} className="row-item">
                <input
                  type="checkbox"
                  className="row-pick"
                  checked={picked.has(task.task_id)}
                  onChange={(e) =>
                    setPicked((p) => {
                      const next = new Set(p);
                      if (e.target.checked) next.add(task.task_id);
                      else next.delete(task.task_id);
                      return next;
                    })
                  }
                  aria-label={`Select ${name}`}
                  data-testid="row-pick"
                />
                <a
                  href={link(task.task_id)}
                  className={`row${task.task_id === selectedId ? " row-selected" : ""}`}
                  aria-current={task.task_id === selectedId ? "page" : undefined}
                  data-testid="task-row"
                  data-task-id={task.task_id}
                  data-status={task.status}
                >
                  <span className="row-top">
                    <span className="row-title">{name}</span>
                    <StatusBadge status={task.status} paused={task.paused} />
                  </span>
                  <span className="row-meta">
                    <span className="chip" data-testid="row-agent">
                      {task.agent_name}
                    </span>
                    <span data-testid="row-pattern">{patternText(task)}</span>
                    {task.pattern === "recurring" && task.next_run_at && !task.paused && task.status !== "cancelled" ? (
                      <span title={formatShort(task.next_run_at)} data-testid="row-next-run">
                        next {formatRelative(task.next_run_at, now)}
                      </span>
                    ) : FINISHED_STATUSES.has(task.status) && task.started_at && task.completed_at ? (
                      <span data-testid="row-took" data-ms={took.get(task.task_id) ?? ""}>
                        took {took.has(task.task_id) ? formatMs(took.get(task.task_id)!) : "—"}
                      </span>
                    ) : (
                      <span title={formatShort(task.created_at)}>created {formatRelative(task.created_at, now)}</span>
                    )}
                  </span>
                  {result && (
                    <span className="row-result" data-testid="row-result">
                      {result}
                    </span>
                  )}
                </a>
              </li>
            );
          })}
        </ul>
      )}

      {!search && (page > 0 || nextCursor) && (
        <nav className="pager" aria-label="Task pages">
          <button type="button" className="button" disabled={page === 0} onClick={() => goPage(page - 1)} data-testid="page-prev">
            ← Newer
          </button>
          <span className="muted">Page {page + 1}</span>
          <button type="button" className="button" disabled={!nextCursor} onClick={() => goPage(page + 1)} data-testid="page-next">
            Older →
          </button>
        </nav>
      )}
    </section>
  );
}
