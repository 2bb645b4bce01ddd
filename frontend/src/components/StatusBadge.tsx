import { statusLabel } from "../format";

interface Props {
  status: string;
  paused?: boolean;
  testId?: string;
}

/** A coloured pill for a task or run status; a paused schedule shows "paused". */
export function StatusBadge({ status, paused = false, testId = "status-badge" }: Props) {
  const shown = paused && !["completed", "failed", "cancelled"].includes(status) ? "paused" : status;
  return (
    <span className={`badge badge-${shown}`} data-testid={testId} data-status={shown}>
      <span className="badge-dot" aria-hidden="true" />
      {statusLabel(shown)}
    </span>
  );
}
