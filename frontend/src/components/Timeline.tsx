import type { Task } from "../api";
import { formatShort } from "../format";
import type { ComponentEntry, Entry, MessageEntry, Timeline as TimelineData } from "../timeline";
import { Controller } from "./Controller";
import { ResultCard } from "./ResultCard";

interface Props {
  timeline: TimelineData;
  /** The task the page follows, handed to its controller components. */
  task?: Task | null;
  onTaskChanged?: (task?: Task) => void;
  /** Answers sent from this page, by question key, until the stream echoes them. */
  answers?: Record<string, string>;
  /** The question the input box below shows: not repeated in the list. */
  hideQuestionKey?: string | null;
  /** Shows a blinking caret on the last agent message while it is still growing. */
  streaming?: boolean;
  emptyText?: string;
}

function Message({ entry, growing }: { entry: MessageEntry; growing: boolean }) {
  const mine = entry.role === "user";
  const who = mine ? "You" : entry.role === "system" ? "System" : entry.agentName || "Agent";
  return (
    <div className={`message message-${entry.role}`} data-testid="message" data-role={entry.role} data-item-id={entry.key.slice(4)}>
      <span className="message-who">{who}</span>
      <div className={`bubble${growing ? " growing" : ""}`} data-testid="message-text">
        {entry.text}
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

function hasLaterUserMessage(timeline: TimelineData, key: string): boolean {
  const index = timeline.order.indexOf(key);
  return timeline.order.slice(index + 1).some((k) => {
    const e = timeline.entries[k];
    return e.kind === "message" && e.role === "user";
  });
}

function renderEntry(entry: Entry, props: Props, growing: boolean) {
  const { timeline, task, onTaskChanged, answers = {} } = props;
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
    case "tool":
      return (
        <details className={`tool${entry.done ? " tool-done" : ""}`} data-testid="tool-call" data-tool-name={entry.toolName}>
          <summary>
            <span className="tool-icon" aria-hidden="true">
              {entry.done ? "✓" : "⋯"}
            </span>
            <span>
              Tool <code>{entry.toolName}</code> {entry.done ? "finished" : "running"}
            </span>
          </summary>
          <pre className="tool-result" data-testid="tool-result">
            {entry.result ?? (entry.done ? "No result." : "Waiting for the result…")}
          </pre>
        </details>
      );
    case "component":
      if (entry.componentType === "scheduled_task_controller" && entry.content) {
        return <Controller content={entry.content} task={task} onChanged={onTaskChanged} />;
      }
      if (entry.componentType === "scheduled_task_result" && entry.content) {
        return <ResultCard content={entry.content} />;
      }
      return <GenericComponent entry={entry} />;
    case "question": {
      const answer = answers[entry.key];
      return (
        <div className="message message-agent question-entry" data-testid="question">
          <span className="message-who">Question</span>
          <div className="bubble bubble-question">{entry.question}</div>
          {answer && !hasLaterUserMessage(timeline, entry.key) && (
            <div className="message message-user" data-testid="local-answer">
              <span className="message-who">You</span>
              <div className="bubble">{answer}</div>
            </div>
          )}
        </div>
      );
    }
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
}

/** The events of a task or conversation, as a person reads them. */
export function Timeline(props: Props) {
  const { timeline, streaming = false, emptyText = "Nothing has happened yet." } = props;
  if (timeline.order.length === 0) {
    return <p className="empty" data-testid="timeline-empty">{emptyText}</p>;
  }
  const lastKey = timeline.order[timeline.order.length - 1];
  return (
    <ol className="timeline" data-testid="timeline" aria-live="polite" aria-relevant="additions">
      {timeline.order.map((key) => {
        if (key === props.hideQuestionKey) return null;
        const entry = timeline.entries[key];
        const growing = streaming && key === lastKey && entry.kind === "message";
        return (
          <li key={key} className={`entry entry-${entry.kind}`}>
            {renderEntry(entry, props, growing)}
          </li>
        );
      })}
    </ol>
  );
}
