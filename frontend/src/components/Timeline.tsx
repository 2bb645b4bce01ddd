import { useWindowVirtualizer } from "@tanstack/react-virtual";
import { memo, useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import type { Run, Task } from "../api";
import { formatDuration, formatShort } from "../format";
import {
  CONTROLLER,
  type ComponentEntry,
  type Entry,
  type Group,
  type MessageEntry,
  type Row,
  type TimelineModel,
} from "../timeline";
import { Controller } from "./Controller";
import { Markdown } from "./Markdown";
import { ResultCard } from "./ResultCard";
import { StatusBadge } from "./StatusBadge";

interface Props {
  /** The parts of the log the page holds, oldest first (older runs loaded on demand, then live). */
  models: TimelineModel[];
  /** Grows whenever a model changed (the models are mutable). */
  version: number;
  /** The task's runs by id, for each run's heading (attempt, status, took). */
  runs?: ReadonlyMap<string, Run>;
  /** The task the page follows, handed to its controller components. */
  task?: Task | null;
  onTaskChanged?: (task?: Task) => void;
  /** Answers sent from this page, by question key, until the stream echoes them. */
  answers?: Record<string, string>;
  /** Entries drawn elsewhere (the question the input box shows). */
  hideKeys?: ReadonlySet<string>;
  /** The controller is drawn above the timeline, not in it. */
  hideController?: boolean;
  /** Shows a blinking caret on the last agent message while it is still growing. */
  streaming?: boolean;
  emptyText?: string;
  /** Older runs not loaded yet: a button loads the next ones. */
  earlier?: { loading: boolean; onLoad: () => void } | null;
}

/** Longer messages show their end, and the whole text on demand. */
export const MESSAGE_PREVIEW = 6000;
/** Past this many rows only those near the viewport are drawn. */
const VIRTUAL_FROM = 80;

function Message({ entry, growing }: { entry: MessageEntry; growing: boolean }) {
  const [all, setAll] = useState(false);
  const mine = entry.role === "user";
  const who = mine ? "You" : entry.role === "system" ? "System" : entry.agentName || "Agent";
  const long = entry.text.length > MESSAGE_PREVIEW;
  const shown = long && !all ? entry.text.slice(-MESSAGE_PREVIEW) : entry.text;
  // Markdown once the message is whole (a growing one is drawn as text: cheap at every piece).
  const markdown = entry.role === "agent" && !growing && (!long || all) && entry.text.length < 100_000;
  return (
    <div
      className={`message message-${entry.role}`}
      data-testid="message"
      data-role={entry.role}
      data-item-id={entry.key.slice(4)}
      data-length={entry.text.length}
    >
      <span className="message-who">{who}</span>
      {long && !all && (
        <button type="button" className="link-button" onClick={() => setAll(true)} data-testid="message-show-all">
          Show the first {(entry.text.length - MESSAGE_PREVIEW).toLocaleString()} characters too
        </button>
      )}
      <div className={`bubble${growing ? " growing" : ""}${markdown ? " markdown" : ""}`} data-testid="message-text">
        {long && !all && "… "}
        {markdown ? <Markdown text={shown} /> : shown}
      </div>
    </div>
  );
}

function GenericComponent({ entry }: { entry: ComponentEntry }) {
  const fields = entry.content ? Object.entries(entry.content) : [];
  return (
    <section className="card component" data-testid="component" data-component-type={entry.componentType}>
      <p className="eyebrow">{entry.componentType.replace(/_/g, " ")}</p>
      {fields.length > 0 ? (
        <dl className="facts">
          {fields.map(([name, value]) => (
            <div key={name}>
              <dt>{name.replace(/_/g, " ")}</dt>
              <dd>{typeof value === "string" ? value : JSON.stringify(value)}</dd>
            </div>
          ))}
        </dl>
      ) : (
        <p className="prose">{entry.raw}</p>
      )}
    </section>
  );
}

interface EntryProps {
  entry: Entry;
  growing: boolean;
  answer: string | undefined;
  answerEchoed: boolean;
  task?: Task | null;
  onTaskChanged?: (task?: Task) => void;
}

const EntryView = memo(function EntryView({ entry, growing, answer, answerEchoed, task, onTaskChanged }: EntryProps) {
  switch (entry.kind) {
    case "message":
      return <Message entry={entry} growing={growing} />;
    case "reasoning":
      return (
        <details className="reasoning" data-testid="reasoning">
          <summary>
            {entry.done ? "Reasoning" : "Reasoning…"}
            {!entry.done && <span className="spinner" aria-hidden="true" />}
          </summary>
          <p className="prose muted">{entry.text || "…"}</p>
        </details>
      );
    case "tool": {
      const state = entry.failed ? "failed" : entry.done ? "finished" : "running";
      return (
        <details
          className={`tool${entry.done ? " tool-done" : ""}${entry.failed ? " tool-failed" : ""}`}
          data-testid="tool-call"
          data-tool-name={entry.toolName}
          data-state={state}
        >
          <summary>
            <span className="tool-icon" aria-hidden="true">
              {entry.failed ? "✕" : entry.done ? "✓" : "⋯"}
            </span>
            <span>
              Tool <code>{entry.toolName}</code> {state}
            </span>
          </summary>
          <pre className="tool-result" data-testid="tool-result">
            {entry.result ?? (entry.done ? "No result." : "Waiting for the result…")}
          </pre>
        </details>
      );
    }
    case "component":
      if (entry.componentType === CONTROLLER && entry.content) {
        return <Controller content={entry.content} task={task} onChanged={onTaskChanged} />;
      }
      if (entry.componentType === "scheduled_task_result" && entry.content) {
        return <ResultCard content={entry.content} />;
      }
      return <GenericComponent entry={entry} />;
    case "question":
      return (
        <div className="message message-agent question-entry" data-testid="question">
          <span className="message-who">Question</span>
          <div className="bubble bubble-question">{entry.question}</div>
          {answer && !answerEchoed && (
            <div className="message message-user" data-testid="local-answer">
              <span className="message-who">You</span>
              <div className="bubble">{answer}</div>
            </div>
          )}
        </div>
      );
    case "status":
      return (
        <div className={`divider divider-${entry.event}`} data-testid="event-status" data-event={entry.event} role="note">
          <span>
            {entry.text}
            {entry.at && <time dateTime={entry.at}> · {formatShort(entry.at)}</time>}
          </span>
        </div>
      );
  }
});

/** A run's heading: which attempt or occurrence, its status and how long it took. */
const RunHeading = memo(function RunHeading({ group, run, task }: { group: Group; run: Run | undefined; task?: Task | null }) {
  const once = task?.pattern !== "recurring";
  const label = run
    ? once
      ? `Attempt ${run.attempt}${task ? ` of ${task.max_attempts}` : ""}`
      : `Run of ${formatShort(run.scheduled_for ?? run.started_at)}`
    : "Run";
  // A run closed by another process after a crash: its end was noticed after the downtime.
  const interrupted = run?.status === "interrupted" && Boolean(run.closed_by);
  return (
    <div className="run-heading" data-testid="run-heading" data-run-id={group.runId ?? ""} data-status={run?.status ?? ""}>
      <span className="run-heading-label">{label}</span>
      {run && <StatusBadge status={run.status} testId="run-heading-status" />}
      {run && run.finished_at && !interrupted && (
        <span className="muted">took {formatDuration(run.started_at, run.finished_at)}</span>
      )}
    </div>
  );
});

/** The mark under a run cut short: by a graceful stop (its own server closed it) or a crash
 * or outage (another process closed it when it noticed), and what became of the task. */
function RunEnd({ run, task }: { run: Run; task?: Task | null }) {
  const lastAttempt = task?.pattern === "once" && task.status === "failed" && run.attempt >= task.max_attempts;
  const when = run.finished_at ? (run.closed_by ? ` (noticed ${formatShort(run.finished_at)})` : ` (at ${formatShort(run.finished_at)})`) : "";
  return (
    <div className="run-end" data-testid="run-interrupted" role="note">
      <span aria-hidden="true">⚠ </span>
      Interrupted: the server stopped while this run was going{when}, not the agent. What it sent before is above;{" "}
      {lastAttempt
        ? "it was the last attempt, so the task stopped here."
        : task?.pattern === "recurring"
          ? "the schedule went on."
          : "the task went on when the server came back."}
    </div>
  );
}

interface ViewRow {
  key: string;
  render: () => React.ReactNode;
  className: string;
}

function useViewRows(props: Props): ViewRow[] {
  const { models, runs, task, onTaskChanged, answers = {}, hideKeys, hideController, streaming = false } = props;
  const out: ViewRow[] = [];
  const lastModel = models[models.length - 1];
  let lastKey: string | null = null;
  if (lastModel) {
    const order = lastModel.groups[lastModel.groups.length - 1]?.keys;
    lastKey = order ? order[order.length - 1] ?? null : null;
  }
  for (const model of models) {
    const rows: Row[] = model.rows();
    let current: Group | null = null;
    const closeGroup = () => {
      const run = current?.runId ? runs?.get(current.runId) : undefined;
      if (run?.status === "interrupted") {
        out.push({ key: `end:${run.run_id}`, className: "entry entry-run-end", render: () => <RunEnd run={run} task={task} /> });
      }
    };
    for (const row of rows) {
      if (row.group !== current) {
        closeGroup();
        current = row.group;
      }
      if (row.type === "run") {
        const group = row.group;
        const run = group.runId ? runs?.get(group.runId) : undefined;
        out.push({
          key: row.key,
          className: "entry entry-run",
          render: () => <RunHeading group={group} run={run} task={task} />,
        });
        continue;
      }
      const entry = row.entry;
      if (hideKeys?.has(entry.key)) continue;
      if (hideController && entry.kind === "component" && entry.componentType === CONTROLLER) continue;
      const growing = streaming && model === lastModel && entry.key === lastKey && entry.kind === "message";
      const answer = answers[entry.key];
      const echoed = answer ? model.hasLaterUserMessage(entry.key) : false;
      out.push({
        key: entry.key,
        className: `entry entry-${entry.kind}`,
        render: () => (
          <EntryView
            entry={entry}
            growing={growing}
            answer={answer}
            answerEchoed={echoed}
            task={task}
            onTaskChanged={onTaskChanged}
          />
        ),
      });
    }
    closeGroup();
  }
  return out;
}

const atBottom = () =>
  window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 80;

/** The events of a task or conversation, as a person reads them, grouped by run. */
export function Timeline(props: Props) {
  const { emptyText = "Nothing has happened yet.", earlier, version } = props;
  const rows = useViewRows(props);
  const listRef = useRef<HTMLOListElement>(null);
  const [margin, setMargin] = useState(0);
  const [following, setFollowing] = useState(false);
  const [behind, setBehind] = useState(false);
  const virtual = rows.length > VIRTUAL_FROM;

  const virtualizer = useWindowVirtualizer({
    count: virtual ? rows.length : 0,
    estimateSize: () => 72,
    overscan: 6,
    scrollMargin: margin,
    getItemKey: (index) => rows[index]?.key ?? index,
  });

  useLayoutEffect(() => {
    const list = listRef.current;
    if (!list) return;
    const top = Math.round(list.getBoundingClientRect().top + window.scrollY);
    if (top !== margin) setMargin(top);
  });

  // Follow the end while the reader is there; else offer to jump to it.
  useEffect(() => {
    const onScroll = () => {
      const bottom = atBottom();
      setFollowing(bottom);
      if (bottom) setBehind(false);
    };
    window.addEventListener("scroll", onScroll, { passive: true });
    return () => window.removeEventListener("scroll", onScroll);
  }, []);

  useEffect(() => {
    if (rows.length === 0) return;
    if (following) {
      window.scrollTo({ top: document.documentElement.scrollHeight });
      return;
    }
    const list = listRef.current;
    if (list && list.getBoundingClientRect().bottom > window.innerHeight + 40) setBehind(true);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [version, rows.length]);

  const jump = useCallback(() => {
    if (virtual) virtualizer.scrollToIndex(rows.length - 1, { align: "end" });
    window.scrollTo({ top: document.documentElement.scrollHeight });
    setFollowing(true);
    setBehind(false);
    listRef.current?.focus({ preventScroll: true });
  }, [virtual, virtualizer, rows.length]);

  if (rows.length === 0) {
    return (
      <p className="empty" data-testid="timeline-empty">
        {emptyText}
      </p>
    );
  }

  const earlierButton = earlier && (
    <button type="button" className="button earlier" onClick={earlier.onLoad} disabled={earlier.loading} data-testid="timeline-earlier">
      {earlier.loading ? "Loading earlier runs…" : "Show earlier runs"}
    </button>
  );

  const list = virtual ? (
    <ol
      ref={listRef}
      className="timeline timeline-virtual"
      data-testid="timeline"
      data-rows={rows.length}
      tabIndex={-1}
      aria-label="Activity"
      style={{ height: virtualizer.getTotalSize() }}
    >
      {virtualizer.getVirtualItems().map((item) => {
        const row = rows[item.index];
        return (
          <li
            key={row.key}
            data-index={item.index}
            ref={virtualizer.measureElement}
            className={row.className}
            style={{ transform: `translateY(${item.start - margin}px)` }}
          >
            {row.render()}
          </li>
        );
      })}
    </ol>
  ) : (
    <ol ref={listRef} className="timeline" data-testid="timeline" data-rows={rows.length} tabIndex={-1} aria-label="Activity">
      {rows.map((row) => (
        <li key={row.key} className={row.className}>
          {row.render()}
        </li>
      ))}
    </ol>
  );

  return (
    <>
      {earlierButton}
      {list}
      {behind && !following && (
        <button type="button" className="button button-primary jump-latest" onClick={jump} data-testid="jump-latest">
          Jump to latest ↓
        </button>
      )}
    </>
  );
}
