import { formatDateTime } from "../format";

interface Props {
  content: Record<string, unknown>;
}

/** The scheduled_task_result component: what one run of a recurring task produced. */
export function ResultCard({ content }: Props) {
  const result = typeof content.result === "string" ? content.result : JSON.stringify(content.result ?? "");
  const created = typeof content.create_time === "string" ? content.create_time : null;
  return (
    <article className="card result-card" data-testid="result-card">
      <header className="result-head">
        <span className="eyebrow">Run result</span>
        {created && <time dateTime={created}>{formatDateTime(created)}</time>}
      </header>
      <p className="prose" data-testid="result-text">
        {result || "Task completed without output."}
      </p>
    </article>
  );
}
