import { useCallback, useReducer, useRef, useState } from "react";
import { api, ApiError, FINISHED_STATUSES, type Run, type Task, type TaskEvent } from "../api";
import { formatDateTime, formatRelative, formatShort, patternText } from "../format";
import { usePoll, useRefresh } from "../hooks";
import { conversationHref, navigate } from "../route";
import { emptyTimeline, fold, fromEvent, type Timeline as TimelineData } from "../timeline";
import { useSSE, type StreamState } from "../useSSE";
import { InputBox } from "./InputBox";
import { RunsTable } from "./RunsTable";
import { StatusBadge } from "./StatusBadge";
import { Timeline } from "./Timeline";

interface Props {
  taskId: string;
}

// Events after which the task and its runs are worth reloading at once.
const RELOAD_ON = new Set([
  "task_started",
  "task_completed",
  "task_failed",
  "task_cancelled",
  "plan_require_user_input",
  "plan_failed",
  "system_failed",
  "component_generator",
  "done",
]);

function StreamIndicator({ state, error }: { state: StreamState; error: string | null }) {
  if (state === "reconnecting") {
    return (
      <span className="stream stream-reconnecting" data-testid="reconnecting" role="status">
        <span className="spinner" aria-hidden="true" /> reconnecting…
      </span>
    );
  }
  if (state === "open" || state === "connecting") {
    return (
      <span className="stream stream-live" data-testid="stream-live" role="status">
        <span className="live-dot" aria-hidden="true" /> {state === "open" ? "live" : "connecting…"}
      </span>
    );
  }
  if (state === "error") {
    return (
      <span className="stream stream-error" data-testid="stream-error" role="status">
        {error ?? "The stream stopped."}
      </span>
    );
  }
  if (state === "ended") {
    return (
      <span className="stream stream-ended" data-testid="stream-ended" role="status">
        stream ended
      </span>
    );
  }
  return null;
}

function Fact({ label, children, testId }: { label: string; children: React.ReactNode; testId?: string }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd data-testid={testId}>{children}</dd>
    </div>
  );
}

/** One task: its facts, the live stream of its events, the input box, its runs. */
export function TaskView({ taskId }: Props) {
  const { bump } = useRefresh();
  const [task, setTask] = useState<Task | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [timeline, dispatch] = useReducer(
    (t: TimelineData, e: TaskEvent) => fold(t, fromEvent(e)),
    emptyTimeline,
  );
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [firstCursor, setFirstCursor] = useState<string | null>(null);
  const [olderCursor, setOlderCursor] = useState<string | null>(null);
  const [olderRuns, setOlderRuns] = useState<Run[]>([]);
  const [runsError, setRunsError] = useState<string | null>(null);
  const [answers, setAnswers] = useState<Record<string, string>>({});
  const [answeredSeq, setAnsweredSeq] = useState(-1);
  const [actionError, setActionError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const reloadTimer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const loadTask = useCallback(
    async (signal?: AbortSignal) => {
      try {
        const fresh = await api.getTask(taskId, signal);
        if (signal?.aborted) return;
        setTask(fresh);
        setLoadError(null);
      } catch (err) {
        if (signal?.aborted || (err as Error).name === "AbortError") return;
        if (err instanceof ApiError) setLoadError(err);
      }
    },
    [taskId],
  );

  const loadRuns = useCallback(
    async (signal?: AbortSignal) => {
      try {
        const page = await api.listRuns(taskId, null, signal);
        if (signal?.aborted) return;
        setRuns(page.items);
        setFirstCursor(page.next_cursor);
        setRunsError(null);
      } catch (err) {
        if (signal?.aborted || (err as Error).name === "AbortError") return;
        setRunsError(err instanceof ApiError ? err.message : "Could not load the runs.");
      }
    },
    [taskId],
  );

  const finished = task ? FINISHED_STATUSES.has(task.status) : false;

  usePoll((signal) => loadTask(signal), finished ? 15000 : 3000, [loadTask, finished]);
  usePoll((signal) => loadRuns(signal), finished ? 30000 : 5000, [loadRuns, finished]);

  const reloadSoon = useCallback(() => {
    if (reloadTimer.current) clearTimeout(reloadTimer.current);
    reloadTimer.current = setTimeout(() => {
      void loadTask();
      void loadRuns();
      bump();
    }, 150);
  }, [loadTask, loadRuns, bump]);

  const onEvent = useCallback(
    (event: TaskEvent) => {
      dispatch(event);
      if (RELOAD_ON.has(event.event)) reloadSoon();
    },
    [reloadSoon],
  );

  const isFinal = useCallback(async () => {
    const fresh = await api.getTask(taskId);
    setTask(fresh);
    return FINISHED_STATUSES.has(fresh.status);
  }, [taskId]);

  const stream = useSSE(api.eventsUrl(taskId), { onEvent, isFinal });

  const onTaskChanged = useCallback(
    (updated?: Task) => {
      if (updated) setTask(updated);
      reloadSoon();
    },
    [reloadSoon],
  );

  const act = async (name: string, action: () => Promise<unknown>) => {
    setBusy(name);
    setActionError(null);
    try {
      const result = await action();
      if (result && typeof result === "object" && "task_id" in result && "status" in result) {
        setTask(result as Task);
      }
      reloadSoon();
    } catch (err) {
      setActionError(err instanceof ApiError ? err.message : "The action failed.");
    } finally {
      setBusy(null);
    }
  };

  const remove = async () => {
    setBusy("delete");
    setActionError(null);
    try {
      await api.deleteTask(taskId);
      bump();
      navigate("#/");
    } catch (err) {
      setActionError(err instanceof ApiError ? err.message : "The task could not be deleted.");
      setBusy(null);
    }
  };

  if (!task) {
    if (loadError) {
      return (
        <div className="card" data-testid="task-missing">
          <h2>
            {loadError.status === 404
              ? "Task not found"
              : loadError.status === 401
                ? "An API key is needed"
                : "The task could not be loaded"}
          </h2>
          <p>
            {loadError.status === 404
              ? "It may have been deleted, or it belongs to someone else."
              : loadError.status === 401
                ? "Enter your API key above to open this task."
                : loadError.message}
          </p>
          <a href="#/">Back to the tasks</a>
        </div>
      );
    }
    return <p className="muted pad">Loading the task…</p>;
  }

  const hasController = timeline.order.some((k) => {
    const e = timeline.entries[k];
    return e.kind === "component" && e.componentType === "scheduled_task_controller";
  });
  const question = timeline.openQuestion;
  // Waiting: a question not yet answered here, or the task says so and no question was seen.
  const questionOpen = question !== null && question.seq > answeredSeq;
  const waiting = !finished && (questionOpen || (task.status === "waiting_input" && question === null));
  const recurring = task.pattern === "recurring";
  const runsCursor = olderRuns.length > 0 ? olderCursor : firstCursor;
  const allRuns = runs ? [...runs, ...olderRuns.filter((r) => !runs.some((x) => x.run_id === r.run_id))] : null;

  return (
    <article className="task-view" data-testid="task-view" data-task-id={task.task_id} aria-labelledby="task-title">
      <header className="card task-head">
        <div className="task-head-top">
          <div className="task-head-text">
            <p className="eyebrow">
              {task.agent_name} · {patternText(task)}
            </p>
            <h2 id="task-title" data-testid="task-title">
              {task.title || task.query}
            </h2>
          </div>
          <StatusBadge status={task.status} paused={task.paused} testId="task-status" />
        </div>
        {task.title && task.query !== task.title && (
          <blockquote className="query" data-testid="task-query">
            {task.query}
          </blockquote>
        )}
        <dl className="facts facts-grid">
          <Fact label="Created">{formatDateTime(task.created_at)}</Fact>
          {task.started_at && <Fact label="Started">{formatDateTime(task.started_at)}</Fact>}
          {task.completed_at && <Fact label="Finished">{formatDateTime(task.completed_at)}</Fact>}
          {recurring && (
            <Fact label="Next run" testId="task-next-run">
              {finished ? "none" : task.paused ? "paused" : task.next_run_at ? `${formatShort(task.next_run_at)} (${formatRelative(task.next_run_at)})` : "—"}
            </Fact>
          )}
          {!recurring && (
            <Fact label="Attempt">
              {task.attempt} of {task.max_attempts}
            </Fact>
          )}
          <Fact label="Conversation">
            <a href={conversationHref(task.conversation_id)} data-testid="conversation-link">
              history
            </a>
          </Fact>
        </dl>
        {task.status === "failed" && (
          <div className="notice notice-error" role="alert" data-testid="task-error">
            <strong>This task failed.</strong> {task.error_message || "No reason was given."}
          </div>
        )}
        {task.status === "cancelled" && task.error_message && (
          <p className="notice notice-quiet" data-testid="task-cancel-reason">
            Cancelled: {task.error_message}
          </p>
        )}
        {task.status !== "failed" && task.status !== "cancelled" && task.error_message && (
          <p className="notice notice-warn" data-testid="task-warning">
            {recurring ? "Last run failed: " : ""}
            {task.error_message}
          </p>
        )}
        <div className="button-row" role="group" aria-label="Task actions">
          {recurring && !hasController && !finished && (
            <>
              {task.paused ? (
                <button type="button" className="button" disabled={busy !== null} onClick={() => act("resume", () => api.resumeTask(taskId))} data-testid="task-resume">
                  Resume
                </button>
              ) : (
                <button type="button" className="button" disabled={busy !== null} onClick={() => act("pause", () => api.pauseTask(taskId))} data-testid="task-pause">
                  Pause
                </button>
              )}
              <button type="button" className="button" disabled={busy !== null} onClick={() => act("run", () => api.runTask(taskId))} data-testid="task-run">
                Run now
              </button>
            </>
          )}
          {!finished && !(recurring && hasController) && (
            <button type="button" className="button button-danger" disabled={busy !== null} onClick={() => act("cancel", () => api.cancelTask(taskId))} data-testid="task-cancel">
              {busy === "cancel" ? "Cancelling…" : "Cancel task"}
            </button>
          )}
          {finished &&
            (confirmDelete ? (
              <>
                <span className="confirm-text">Delete this task and its history?</span>
                <button type="button" className="button button-danger" disabled={busy !== null} onClick={remove} data-testid="task-delete-confirm">
                  Yes, delete
                </button>
                <button type="button" className="button" onClick={() => setConfirmDelete(false)}>
                  Keep it
                </button>
              </>
            ) : (
              <button type="button" className="button" onClick={() => setConfirmDelete(true)} data-testid="task-delete">
                Delete…
              </button>
            ))}
        </div>
        {actionError && (
          <p className="notice notice-error" role="alert" data-testid="action-error">
            {actionError}
          </p>
        )}
      </header>

      <section className="activity" aria-labelledby="activity-heading">
        <div className="section-head">
          <h3 id="activity-heading">Activity</h3>
          <StreamIndicator state={stream.state} error={stream.error} />
        </div>
        <Timeline
          timeline={timeline}
          task={task}
          onTaskChanged={onTaskChanged}
          answers={answers}
          hideQuestionKey={waiting && question ? question.key : null}
          streaming={stream.state === "open" && !finished}
          emptyText={stream.state === "ended" ? "This task left no events." : "Waiting for the first events…"}
        />
        {waiting && (
          <InputBox
            taskId={taskId}
            question={question?.question ?? "The agent is waiting for your answer."}
            onAnswered={(text, updated) => {
              if (question) {
                setAnswers((a) => ({ ...a, [question.key]: text }));
                setAnsweredSeq(question.seq);
              }
              setTask(updated);
              reloadSoon();
            }}
          />
        )}
      </section>

      <RunsTable
        runs={allRuns}
        error={runsError}
        hasMore={runsCursor !== null}
        onMore={async () => {
          if (!runsCursor) return;
          try {
            const page = await api.listRuns(taskId, runsCursor);
            setOlderRuns((o) => [...o, ...page.items]);
            setOlderCursor(page.next_cursor);
          } catch (err) {
            setRunsError(err instanceof ApiError ? err.message : "Could not load the runs.");
          }
        }}
      />
    </article>
  );
}
