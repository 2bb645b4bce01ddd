import { useState } from "react";
import { api, ApiError, FINISHED_STATUSES, type Task, type Upcoming } from "../api";
import { fireTimeParts, formatRelative, formatShort } from "../format";
import { usePoll, useRefresh } from "../hooks";
import { StatusBadge } from "./StatusBadge";

interface Props {
  content: Record<string, unknown>;
  /** The task, when the page already follows it (fresher than the component). */
  task?: Task | null;
  onChanged?: (task?: Task) => void;
}

const text = (value: unknown): string => (typeof value === "string" ? value : value == null ? "" : String(value));

type Action = "pause" | "resume" | "run" | "cancel";

/** The scheduled_task_controller component: a recurring task's state and its buttons. */
export function Controller({ content, task, onChanged }: Props) {
  const { bump } = useRefresh();
  const taskId = text(content.task_id);
  const [own, setOwn] = useState<Task | null>(null);
  const [busy, setBusy] = useState<Action | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [pauseNote, setPauseNote] = useState("");
  const [upcoming, setUpcoming] = useState<Upcoming | null>(null);
  const follows = task !== undefined && task?.task_id === taskId;

  // Outside a task's page (a conversation's history), follow the task here.
  usePoll(
    async (signal) => {
      if (follows || !taskId) return;
      try {
        const fresh = await api.getTask(taskId, signal);
        if (!signal.aborted) setOwn(fresh);
      } catch {
        /* keep what the component says */
      }
    },
    5000,
    [taskId, follows],
  );

  const live = follows ? task : own;
  const status = live?.status ?? (text(content.task_status) || "pending");
  const paused = live ? live.paused : content.paused === true;
  const finished = FINISHED_STATUSES.has(status);
  const shown = paused && !finished ? "paused" : status;
  const nextRun = live ? live.next_run_at : text(content.next_run_at) || null;
  // A cancelled task's reason is not an error worth a red box.
  const lastError = status === "cancelled" ? null : (live?.error_message ?? text(content.last_error)) || null;
  const title = text(content.task_title) || live?.title || "Scheduled task";
  const schedule = text(content.schedule);
  const noteShown = paused ? (live ? live.pause_note : text(content.pause_note)) || null : null;
  const timeout = live ? live.run_timeout_seconds : content.run_timeout_seconds;

  // The next few fire times (in the schedule's zone and UTC), again when the schedule moves.
  usePoll(
    async (signal) => {
      if (!taskId || finished) {
        setUpcoming(null);
        return;
      }
      try {
        const found = await api.upcoming(taskId, 3, signal);
        if (!signal.aborted) setUpcoming(found);
      } catch {
        if (!signal.aborted) setUpcoming(null);
      }
    },
    60000,
    [taskId, finished, paused, nextRun],
  );

  const act = async (action: Action) => {
    setBusy(action);
    setError(null);
    setNote(null);
    try {
      let updated: Task | undefined;
      if (action === "pause") {
        updated = await api.pauseTask(taskId, pauseNote);
        setPauseNote("");
      }
      else if (action === "resume") updated = await api.resumeTask(taskId);
      else if (action === "run") {
        await api.runTask(taskId);
        setNote("A run was started.");
      } else {
        const result = await api.cancelTask(taskId);
        if (!result.success) setError("The task could not be cancelled.");
      }
      if (updated && !follows) setOwn(updated);
      if (!updated || follows) {
        try {
          const fresh = await api.getTask(taskId);
          updated = fresh;
          if (!follows) setOwn(fresh);
        } catch {
          /* the next poll will tell */
        }
      }
      onChanged?.(updated);
      bump();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : "The action failed.");
    } finally {
      setBusy(null);
    }
  };

  return (
    <section className="card controller" data-testid="controller" data-task-id={taskId} aria-label={`Schedule of ${title}`}>
      <header className="controller-head">
        <div>
          <p className="eyebrow">Scheduled task</p>
          <h3 className="controller-title">{title}</h3>
        </div>
        <span data-testid="controller-status" data-status={shown} className="controller-status">
          <StatusBadge status={status} paused={paused} testId="controller-badge" />
        </span>
      </header>
      <dl className="facts">
        {schedule && (
          <div>
            <dt>Schedule</dt>
            <dd data-testid="controller-schedule">{schedule}</dd>
          </div>
        )}
        <div>
          <dt>Next run</dt>
          <dd data-testid="controller-next-run">
            {finished ? "none" : paused ? "paused" : nextRun ? (
              <>
                {formatShort(nextRun)} <span className="muted">({formatRelative(nextRun)})</span>
              </>
            ) : (
              "—"
            )}
          </dd>
        </div>
        {typeof timeout === "number" && (
          <div>
            <dt>Run time-out</dt>
            <dd data-testid="controller-timeout">{timeout} s</dd>
          </div>
        )}
      </dl>
      {upcoming && upcoming.items.length > 0 && (
        <div className="upcoming" data-testid="controller-upcoming">
          <p className="eyebrow">{upcoming.paused ? "Next fires once resumed" : "Next fires"}</p>
          <ol>
            {upcoming.items.map((item) => {
              const [there, utc] = fireTimeParts(item.at, upcoming.timezone);
              return (
                <li key={item.at} data-testid="controller-upcoming-item" data-at={item.at}>
                  {there} <span className="muted">({upcoming.timezone}) · {utc}</span>
                </li>
              );
            })}
          </ol>
        </div>
      )}
      {noteShown && (
        <p className="notice" data-testid="controller-pause-note">
          Paused: {noteShown}
        </p>
      )}
      {lastError && (
        <p className="notice notice-error" data-testid="controller-error">
          Last error: {lastError}
        </p>
      )}
      <div className="button-row" role="group" aria-label="Schedule actions">
        {paused ? (
          <button type="button" className="button" disabled={finished || busy !== null} onClick={() => act("resume")} data-testid="controller-resume">
            {busy === "resume" ? "Resuming…" : "Resume"}
          </button>
        ) : (
          <>
            <input
              className="pause-note"
              type="text"
              maxLength={500}
              placeholder="Why pause? (optional)"
              aria-label="Pause note"
              value={pauseNote}
              disabled={finished || busy !== null}
              onChange={(e) => setPauseNote(e.target.value)}
              data-testid="controller-pause-note-input"
            />
            <button type="button" className="button" disabled={finished || busy !== null} onClick={() => act("pause")} data-testid="controller-pause">
              {busy === "pause" ? "Pausing…" : "Pause"}
            </button>
          </>
        )}
        <button type="button" className="button" disabled={finished || busy !== null} onClick={() => act("run")} data-testid="controller-run">
          {busy === "run" ? "Starting…" : "Run now"}
        </button>
        {confirming && !finished ? (
          <>
            <span className="confirm-text">Cancel the schedule? No run starts again.</span>
            <button
              type="button"
              className="button button-danger"
              disabled={busy !== null}
              autoFocus
              onClick={async () => {
                await act("cancel");
                setConfirming(false);
              }}
              data-testid="controller-cancel-confirm"
            >
              {busy === "cancel" ? "Cancelling…" : "Yes, cancel"}
            </button>
            <button type="button" className="button" onClick={() => setConfirming(false)} data-testid="controller-cancel-keep">
              Keep it
            </button>
          </>
        ) : (
          <button type="button" className="button button-danger" disabled={finished || busy !== null} onClick={() => setConfirming(true)} data-testid="controller-cancel">
            Cancel…
          </button>
        )}
      </div>
      <div aria-live="polite">
        {note && <p className="hint" data-testid="controller-note">{note}</p>}
        {error && (
          <p className="notice notice-error" role="alert" data-testid="controller-action-error">
            {error}
          </p>
        )}
      </div>
    </section>
  );
}
