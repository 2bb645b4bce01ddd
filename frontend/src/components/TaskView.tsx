import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, ApiError, FINISHED_STATUSES, type Run, type Task, type TaskEvent } from "../api";
import { formatDateTime, formatInZone, formatMs, formatRelative, patternText, runTimeMs, statusLabel, tookText } from "../format";
import { usePoll, useRefresh } from "../hooks";
import { cloneHref, conversationHref, navigate, replaceRoute, taskHref } from "../route";
import { fromEvent, statusByEvents, TimelineModel } from "../timeline";
import { readEvents, useSSE, type StreamState } from "../useSSE";
import { Controller } from "./Controller";
import { EditTaskForm } from "./EditTaskForm";
import { CopyId } from "./CopyId";
import { InputBox } from "./InputBox";
import { RunStrip } from "./RunStrip";
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
  "tool_call_completed",
  "done",
]);

/** How many older runs one "Show earlier runs" loads. */
const EARLIER_RUNS = 5;

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

/** A note about the task's last error, in words that blame the right party. */
function ErrorNote({ task, recurring }: { task: Task; recurring: boolean }) {
  const message = task.error_message;
  if (!message) return null;
  const interrupted = /^interrupted\b/i.test(message);
  if (task.status === "failed" && interrupted) {
    return (
      <div className="notice notice-warn" role="alert" data-testid="task-interrupted">
        <strong>The server stopped while this task ran, on its last attempt</strong> (not the agent&apos;s doing), so it
        was not tried again. Run it again to retry.
      </div>
    );
  }
  if (task.status === "failed") {
    return (
      <div className="notice notice-error" role="alert" data-testid="task-error">
        <strong>This task failed.</strong> {message}
      </div>
    );
  }
  if (task.status === "cancelled") {
    return (
      <p className="notice notice-quiet" data-testid="task-cancel-reason">
        Cancelled: {message}
      </p>
    );
  }
  if (interrupted) {
    return (
      <p className="notice notice-quiet" data-testid="task-interrupted">
        The server stopped while this task ran (not the agent's doing).{" "}
        {recurring ? "The schedule goes on at the next run." : "It carries on now that the server is back."}
      </p>
    );
  }
  return (
    <p className="notice notice-warn" data-testid="task-warning">
      {recurring ? "Last run failed: " : ""}
      {message}
    </p>
  );
}

function downloadLog(taskId: string, events: TaskEvent[]): void {
  const text = events.map((e) => JSON.stringify(e)).join("\n") + "\n";
  const url = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = `task-${taskId}.ndjson`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function notifyQuestion(task: Task, question: string): void {
  if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
  if (document.visibilityState === "visible" && document.hasFocus()) return;
  try {
    const note = new Notification(`${task.title || task.agent_name} asks`, { body: question, tag: task.task_id });
    note.onclick = () => {
      window.focus();
      navigate(taskHref(task.task_id));
    };
  } catch {
    /* notifications unavailable here */
  }
}

/** One task: its facts, the live stream of its events, the input box, its runs. */
export function TaskView({ taskId }: Props) {
  const { bump } = useRefresh();
  const [task, setTask] = useState<Task | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const live = useRef(new TimelineModel()).current;
  const rawEvents = useRef<TaskEvent[]>([]);
  const [older, setOlder] = useState<TimelineModel[]>([]);
  const [olderDone, setOlderDone] = useState(false);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [version, setVersion] = useState(0);
  const drawQueued = useRef(false);
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [firstCursor, setFirstCursor] = useState<string | null>(null);
  const [olderCursor, setOlderCursor] = useState<string | null>(null);
  const [olderRuns, setOlderRuns] = useState<Run[]>([]);
  const [runsError, setRunsError] = useState<string | null>(null);
  const [answers, setAnswers] = useState<Record<string, string>>({});
  const [answeredSeq, setAnsweredSeq] = useState(-1);
  const [actionError, setActionError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [confirm, setConfirm] = useState<"cancel" | "delete" | null>(null);
  const [showRaw, setShowRaw] = useState(false);
  const [editing, setEditing] = useState(false);
  const focusNext = useRef<string | null>(null);
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
        // A short id (as the CLI prints and takes): open the one task it names.
        if (err instanceof ApiError && err.status === 404 && /^[0-9a-f]{4,31}$/i.test(taskId)) {
          try {
            const found = await api.findByPrefix(taskId.toLowerCase(), signal);
            if (found.length === 1) {
              replaceRoute(`${taskHref(found[0])}${window.location.hash.includes("?") ? window.location.hash.slice(window.location.hash.indexOf("?")) : ""}`);
              return;
            }
            if (found.length > 1) {
              setLoadError(new ApiError(300, `“${taskId}” starts ${found.length} task ids: type more of it.`));
              return;
            }
          } catch {
            /* fall through to "not found" */
          }
        }
        if (err instanceof ApiError && !err.isNetwork) setLoadError(err);
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
        if (err instanceof ApiError && err.isNetwork) return; // the page's banner says so
        setRunsError(err instanceof ApiError ? err.message : "Could not load the runs.");
      }
    },
    [taskId],
  );

  const byEvents = task?.pattern === "once" ? statusByEvents(live) : null;
  const status = task ? (byEvents && !FINISHED_STATUSES.has(task.status) ? byEvents : task.status) : "pending";
  const finished = FINISHED_STATUSES.has(status);
  // The header and the timeline disagree for a moment (the task was read before its last event):
  // read it again soon, until they agree.
  const stale = task !== null && byEvents !== null && task.status !== byEvents;

  usePoll((signal) => loadTask(signal), stale ? 700 : finished ? 15000 : 3000, [loadTask, finished, stale]);
  usePoll((signal) => loadRuns(signal), finished ? 30000 : 4000, [loadRuns, finished]);

  const reloadSoon = useCallback(() => {
    if (reloadTimer.current) clearTimeout(reloadTimer.current);
    reloadTimer.current = setTimeout(() => {
      void loadTask();
      void loadRuns();
      bump();
    }, 150);
  }, [loadTask, loadRuns, bump]);

  useEffect(() => () => {
    if (reloadTimer.current) clearTimeout(reloadTimer.current);
  }, []);

  const onEvent = useCallback(
    (event: TaskEvent) => {
      rawEvents.current.push(event);
      live.fold(fromEvent(event));
      if (RELOAD_ON.has(event.event)) reloadSoon();
    },
    [live, reloadSoon],
  );

  // Draw at most once a frame, whatever the number of events a read brought.
  const onBatch = useCallback(() => {
    if (drawQueued.current) return;
    drawQueued.current = true;
    requestAnimationFrame(() => {
      drawQueued.current = false;
      setVersion(live.version);
    });
  }, [live]);

  const isFinal = useCallback(async () => {
    const fresh = await api.getTask(taskId);
    setTask(fresh);
    return FINISHED_STATUSES.has(fresh.status);
  }, [taskId]);

  const recurring = task?.pattern === "recurring";
  // A recurring task's stream starts at its latest run: older runs load on demand.
  const streamUrl = task ? api.eventsUrl(taskId, recurring ? { from: "latest_run" } : {}) : null;
  const stream = useSSE(streamUrl, { onEvent, onBatch, isFinal });

  const allRuns = useMemo(
    () => (runs ? [...runs, ...olderRuns.filter((r) => !runs.some((x) => x.run_id === r.run_id))] : null),
    [runs, olderRuns],
  );
  const runsById = useMemo(() => new Map((allRuns ?? []).map((r) => [r.run_id, r])), [allRuns]);
  const runsCursor = olderRuns.length > 0 ? olderCursor : firstCursor;

  const moreRuns = useCallback(async (): Promise<Run[]> => {
    if (!runsCursor) return [];
    const page = await api.listRuns(taskId, runsCursor);
    setOlderRuns((o) => [...o, ...page.items]);
    setOlderCursor(page.next_cursor);
    return page.items;
  }, [runsCursor, taskId]);

  // The oldest event the page holds, and the run it belongs to.
  const oldest = older[0] ?? live;
  const firstSeq = oldest.firstSeq;
  const canLoadOlder = recurring && !olderDone && Number.isFinite(firstSeq) && firstSeq > 1;

  const loadOlder = useCallback(async () => {
    if (!Number.isFinite(firstSeq)) return;
    setLoadingOlder(true);
    try {
      const oldestRun = oldest.groups.find((g) => g.runId)?.runId ?? null;
      let known = allRuns ?? [];
      let index = oldestRun ? known.findIndex((r) => r.run_id === oldestRun) : -1;
      let cursor = runsCursor;
      // The runs page may not reach that far yet.
      while ((index < 0 || index + EARLIER_RUNS >= known.length) && cursor) {
        const page = await api.listRuns(taskId, cursor);
        known = [...known, ...page.items];
        setOlderRuns((o) => [...o, ...page.items]);
        setOlderCursor(page.next_cursor);
        cursor = page.next_cursor;
        if (oldestRun && index < 0) index = known.findIndex((r) => r.run_id === oldestRun);
      }
      const target = index >= 0 ? known[Math.min(index + EARLIER_RUNS, known.length - 1)] : undefined;
      const startsHere = target && index >= 0 && index + 1 <= known.length - 1;
      // Past the oldest run: the task's opening events.
      const url = startsHere
        ? api.eventsUrl(taskId, { from: `run:${target.run_id}`, before: firstSeq })
        : api.eventsUrl(taskId, { before: firstSeq });
      const events = await readEvents(url);
      const model = new TimelineModel().foldAll(events.map(fromEvent));
      rawEvents.current = [...events, ...rawEvents.current];
      if (model.size > 0) setOlder((o) => [model, ...o]);
      if (!startsHere || model.firstSeq <= 1) setOlderDone(true);
    } catch (err) {
      setActionError(err instanceof Error ? err.message : "The earlier runs could not be loaded.");
    } finally {
      setLoadingOlder(false);
    }
  }, [firstSeq, oldest, allRuns, runsCursor, taskId]);

  // Focus goes where the next step is after an action changes the buttons.
  useEffect(() => {
    const target = focusNext.current;
    if (!target) return;
    const element = document.querySelector<HTMLElement>(`[data-testid="${target}"]`);
    if (element) {
      element.focus();
      focusNext.current = null;
    }
  });

  const question = live.openQuestion;
  const questionOpen = question !== null && question.seq > answeredSeq;
  const waiting = !finished && (questionOpen || (task?.status === "waiting_input" && question === null));

  // The tab names the task; a question shows in it too.
  useEffect(() => {
    if (!task) return;
    const name = task.title || task.query.slice(0, 60);
    document.title = `${waiting ? "(?) " : ""}${name} · ${statusLabel(status)} · taskcell`;
  }, [task, status, waiting]);

  // Each question notifies once, after the first commit that shows it with the task loaded (the
  // stream may bring the question before the task): checked after every commit, as a question
  // can come in a render whose effects keyed on it were seen not to run.
  const notifiedSeq = useRef(-1);
  useEffect(() => {
    if (!task || !question || question.seq <= answeredSeq || question.seq <= notifiedSeq.current) return;
    notifiedSeq.current = question.seq;
    notifyQuestion(task, question.question);
  });

  const onTaskChanged = useCallback(
    (updated?: Task) => {
      if (updated) setTask(updated);
      reloadSoon();
    },
    [reloadSoon],
  );

  const act = async (name: string, action: () => Promise<unknown>, then?: string) => {
    setBusy(name);
    setActionError(null);
    try {
      const result = await action();
      if (result && typeof result === "object" && "task_id" in result && "status" in result) {
        setTask(result as Task);
      }
      if (then) focusNext.current = then;
      reloadSoon();
    } catch (err) {
      setActionError(err instanceof ApiError ? err.message : "The action failed.");
    } finally {
      setBusy(null);
    }
  };

  const cancel = () =>
    act(
      "cancel",
      async () => {
        const result = await api.cancelTask(taskId);
        if (!result.success) throw new ApiError(409, "The task could not be cancelled: it had already ended.");
        setConfirm(null);
        const fresh = await api.getTask(taskId);
        setTask(fresh);
        return fresh;
      },
      "task-delete",
    );

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

  const runAgain = () =>
    act("again", async () => {
      if (!task) return;
      const made = await api.createTask({
        query: task.query,
        agent_name: task.agent_name,
        title: task.title || undefined,
        max_attempts: task.max_attempts,
        pattern: "once",
      });
      bump();
      navigate(taskHref(made.task_id));
    });

  if (!task) {
    if (loadError) {
      return (
        <div className="card" data-testid="task-missing">
          <h2>
            {loadError.status === 404
              ? "Task not found"
              : loadError.status === 401
                ? "An API key is needed"
                : loadError.status === 300
                  ? "Which task?"
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

  const controllerContent = live.controller?.content ?? older.find((m) => m.controller)?.controller?.content ?? null;
  const hasController = recurring;
  const models = [...older, live];
  const hideKeys = waiting && question ? new Set([question.key]) : undefined;
  const started = (allRuns ?? []).some((r) => r.started_at) ? task.started_at : null;
  const zone = task.schedule_config?.timezone ?? null;
  // A run cut short by a crash or an outage: the task's time counts only its runs' own time.
  const cutShort = (allRuns ?? []).some((r) => r.status === "interrupted" && r.closed_by);
  const runTime = runTimeMs(allRuns ?? []);

  return (
    <article className="task-view" data-testid="task-view" data-task-id={task.task_id} aria-labelledby="task-title">
      <header className="card task-head">
        <div className="task-head-top">
          <div className="task-head-text">
            <p className="eyebrow">
              {task.agent_name} · {patternText(task)}
            </p>
            <h2 id="task-title" data-testid="task-title" tabIndex={-1}>
              {task.title || task.query}
            </h2>
          </div>
          <StatusBadge status={status} paused={task.paused} testId="task-status" />
        </div>
        {task.title && task.query !== task.title && (
          <blockquote className="query" data-testid="task-query">
            {task.query}
          </blockquote>
        )}
        <dl className="facts facts-grid">
          <Fact label="Id">
            <CopyId id={task.task_id} />
          </Fact>
          <Fact label="Created">{formatDateTime(task.created_at)}</Fact>
          {started && (
            <Fact label="Started" testId="task-started">
              {formatDateTime(started)}
            </Fact>
          )}
          {task.completed_at && finished && <Fact label="Finished">{formatDateTime(task.completed_at)}</Fact>}
          {task.completed_at && finished && started && (
            <Fact label="Took" testId="task-took">
              {cutShort ? (
                <span title="The time of the runs, without the time the server was down">
                  {formatMs(runTime)} running (the outage not counted)
                </span>
              ) : task.pattern === "once" && allRuns && allRuns.length > 0 ? (
                formatMs(runTime)
              ) : (
                tookText(started, task.completed_at)
              )}
            </Fact>
          )}
          {recurring && (
            <Fact label="Next run" testId="task-next-run">
              {finished
                ? "none"
                : task.paused
                  ? "paused"
                  : task.next_run_at
                    ? `${formatInZone(task.next_run_at, zone)} (${formatRelative(task.next_run_at)})`
                    : "—"}
            </Fact>
          )}
          {!recurring && (
            <Fact label="Attempt">
              {task.attempt} of {task.max_attempts}
            </Fact>
          )}
          <Fact label="Version" testId="task-version">
            {task.version}
          </Fact>
          <Fact label="Conversation">
            <a href={conversationHref(task.conversation_id)} data-testid="conversation-link">
              history
            </a>
          </Fact>
        </dl>
        <ErrorNote task={{ ...task, status: status as Task["status"] }} recurring={recurring} />
        <div className="button-row" role="group" aria-label="Task actions">
          {!finished && !hasController && confirm !== "cancel" && (
            <button
              type="button"
              className="button button-danger"
              disabled={busy !== null}
              onClick={() => {
                setConfirm("cancel");
                focusNext.current = "task-cancel-confirm";
              }}
              data-testid="task-cancel"
            >
              Cancel task…
            </button>
          )}
          {!finished && confirm === "cancel" && (
            <>
              <span className="confirm-text" id="cancel-q">
                Cancel this task? The agent stops.
              </span>
              <button type="button" className="button button-danger" disabled={busy !== null} onClick={cancel} data-testid="task-cancel-confirm" aria-describedby="cancel-q">
                {busy === "cancel" ? "Cancelling…" : "Yes, cancel"}
              </button>
              <button
                type="button"
                className="button"
                onClick={() => {
                  setConfirm(null);
                  focusNext.current = "task-cancel";
                }}
                data-testid="task-cancel-keep"
              >
                Keep it running
              </button>
            </>
          )}
          {finished &&
            (confirm === "delete" ? (
              <>
                <span className="confirm-text" id="delete-q">
                  Delete this task and its history?
                </span>
                <button type="button" className="button button-danger" disabled={busy !== null} onClick={remove} data-testid="task-delete-confirm" aria-describedby="delete-q">
                  Yes, delete
                </button>
                <button
                  type="button"
                  className="button"
                  onClick={() => {
                    setConfirm(null);
                    focusNext.current = "task-delete";
                  }}
                  data-testid="task-delete-keep"
                >
                  Keep it
                </button>
              </>
            ) : (
              <button
                type="button"
                className="button"
                onClick={() => {
                  setConfirm("delete");
                  focusNext.current = "task-delete-confirm";
                }}
                data-testid="task-delete"
              >
                Delete…
              </button>
            ))}
          {finished && task.pattern === "once" && (
            <button type="button" className="button" disabled={busy !== null} onClick={runAgain} data-testid="task-rerun">
              {busy === "again" ? "Starting…" : "Run again"}
            </button>
          )}
          {!finished && !editing && (
            <button type="button" className="button" disabled={busy !== null} onClick={() => setEditing(true)} data-testid="task-edit">
              Edit…
            </button>
          )}
          <a className="button button-quiet" href={cloneHref(task.task_id)} data-testid="task-clone">
            Clone…
          </a>
        </div>
        {actionError && (
          <p className="notice notice-error" role="alert" data-testid="action-error">
            {actionError}
          </p>
        )}
        {editing && !finished && (
          <EditTaskForm
            task={task}
            onSaved={(updated) => {
              setTask(updated);
              setEditing(false);
              reloadSoon();
            }}
            onClose={() => setEditing(false)}
          />
        )}
      </header>

      {recurring && (
        <>
          <Controller
            content={controllerContent ?? { task_id: task.task_id, task_title: task.title, schedule: patternText(task) }}
            task={task}
            onChanged={onTaskChanged}
          />
          {allRuns && allRuns.length > 0 && <RunStrip runs={allRuns.slice(0, 60)} />}
        </>
      )}

      <section className="activity" aria-labelledby="activity-heading">
        <div className="section-head">
          <h3 id="activity-heading">Activity</h3>
          <div className="section-tools">
            <StreamIndicator state={stream.state} error={stream.error} />
            <button type="button" className="button button-quiet button-small" aria-pressed={showRaw} onClick={() => setShowRaw((s) => !s)} data-testid="raw-toggle">
              Raw events
            </button>
            <button type="button" className="button button-quiet button-small" onClick={() => downloadLog(taskId, rawEvents.current)} data-testid="log-download">
              Download log
            </button>
          </div>
        </div>
        {showRaw ? (
          <RawEvents events={rawEvents.current} version={version} />
        ) : (
          <Timeline
            models={models}
            version={version + older.length * 1_000_000}
            runs={runsById}
            task={task}
            onTaskChanged={onTaskChanged}
            answers={answers}
            hideKeys={hideKeys}
            hideController={hasController}
            streaming={stream.state === "open" && !finished}
            emptyText={
              stream.state === "ended"
                ? "This task left no events."
                : recurring && allRuns?.length
                  ? "No events in the latest run yet."
                  : "Waiting for the first events…"
            }
            earlier={canLoadOlder ? { loading: loadingOlder, onLoad: () => void loadOlder() } : null}
          />
        )}
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
          try {
            await moreRuns();
          } catch (err) {
            setRunsError(err instanceof ApiError ? err.message : "Could not load the runs.");
          }
        }}
      />
    </article>
  );
}

/** The last events as the server sent them (JSON), newest last. */
function RawEvents({ events, version }: { events: TaskEvent[]; version: number }) {
  const shown = events.slice(-200);
  return (
    <div className="raw-events" data-testid="raw-events" data-version={version}>
      <p className="hint">
        {events.length > shown.length
          ? `The last ${shown.length} of ${events.length} events; "Download log" saves them all.`
          : `${events.length} events.`}
      </p>
      <pre tabIndex={0} aria-label="Raw events">
        {shown.map((e) => JSON.stringify(e)).join("\n")}
      </pre>
    </div>
  );
}

