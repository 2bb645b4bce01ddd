import type { Run } from "../api";
import { formatDuration, formatShort } from "../format";
import { StatusBadge } from "./StatusBadge";

interface Props {
  runs: Run[] | null;
  error: string | null;
  hasMore: boolean;
  onMore: () => void;
}

/** A task's runs, newest first. */
export function RunsTable({ runs, error, hasMore, onMore }: Props) {
  return (
    <section className="runs" aria-labelledby="runs-heading" data-testid="runs">
      <h3 id="runs-heading">Runs</h3>
      {error && <p className="notice notice-error">{error}</p>}
      {runs === null && !error && <p className="muted">Loading…</p>}
      {runs !== null && runs.length === 0 && <p className="empty" data-testid="runs-empty">No runs yet.</p>}
      {runs !== null && runs.length > 0 && (
        <div className="table-wrap" tabIndex={0} role="region" aria-labelledby="runs-heading">
          <table>
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Attempt</th>
                <th scope="col">Scheduled for</th>
                <th scope="col">Started</th>
                <th scope="col">Took</th>
                <th scope="col">Outcome</th>
              </tr>
            </thead>
            <tbody>
              {runs.map((run) => (
                <tr key={run.run_id} data-testid="run-row" data-run-id={run.run_id} data-status={run.status}>
                  <td data-label="Status">
                    <StatusBadge status={run.status} testId="run-status" />
                  </td>
                  <td className="num" data-label="Attempt">{run.attempt}</td>
                  <td data-label="Scheduled for">{formatShort(run.scheduled_for)}</td>
                  <td data-label="Started">{formatShort(run.started_at)}</td>
                  <td className="num" data-label="Took" data-testid="run-took">
                    {run.status === "interrupted" && run.closed_by ? (
                      <span title="The server stopped during this run: its time includes the outage.">cut short</span>
                    ) : run.finished_at ? (
                      formatDuration(run.started_at, run.finished_at)
                    ) : (
                      <span className="muted">{run.started_at ? "running" : "—"}</span>
                    )}
                  </td>
                  <td className="outcome" data-label="Outcome">
                    {run.error ? (
                      <span className="error-text" title={run.error}>
                        {run.error}
                      </span>
                    ) : run.result ? (
                      <span title={run.result}>{run.result}</span>
                    ) : (
                      <span className="muted">—</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {hasMore && (
        <button type="button" className="button" onClick={onMore} data-testid="runs-more">
          Show older runs
        </button>
      )}
    </section>
  );
}
