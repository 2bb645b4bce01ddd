import type { Run } from "../api";
import { formatShort, statusLabel } from "../format";

/** A recurring task's latest runs at a glance: one square per run, oldest left. */
export function RunStrip({ runs }: { runs: Run[] }) {
  const shown = [...runs].reverse();
  const failed = runs.filter((r) => r.status === "failed" || r.status === "interrupted").length;
  return (
    <section className="card run-strip" aria-label="Latest runs" data-testid="run-strip">
      <p className="eyebrow">
        Latest {runs.length} runs · {runs.length - failed} ok · {failed} failed or cut short
      </p>
      <ol className="strip">
        {shown.map((run) => (
          <li
            key={run.run_id}
            className={`strip-cell strip-${run.status}`}
            data-testid="strip-cell"
            data-status={run.status}
            title={`${formatShort(run.scheduled_for ?? run.started_at)} · ${statusLabel(run.status)}${run.error ? ` · ${run.error}` : ""}`}
          >
            <span className="sr-only">
              {formatShort(run.scheduled_for ?? run.started_at)}: {statusLabel(run.status)}
            </span>
          </li>
        ))}
      </ol>
    </section>
  );
}
