import { useState } from "react";
import { api, ApiError, TASK_STATUSES, type Agent, type Task, type TaskFilters } from "../api";
import { formatRelative, formatShort, patternText, statusLabel } from "../format";
import { usePoll, useRefresh } from "../hooks";
import { taskHref } from "../route";
import { StatusBadge } from "./StatusBadge";

interface Props {
  agents: Agent[];
  selectedId: string | null;
}

const POLL_MS = 3000;
const PAGE_SIZE = 25;

/** The caller's tasks, newest first, with filters and cursor paging; reloads every few seconds. */
export function TaskList({ agents, selectedId }: Props) {
  const { version } = useRefresh();
  const [filters, setFilters] = useState<TaskFilters>({});
  // cursors[i] is the cursor of page i (null for the first page).
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const page = cursors.length - 1;

  usePoll(
    async (signal) => {
      try {
        const result = await api.listTasks(filters, cursors[page], PAGE_SIZE, signal);
        if (signal.aborted) return;
        setTasks(result.items);
        setNextCursor(result.next_cursor);
        setError(null);
        setNow(Date.now());
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ApiError && err.status === 401) setError("Enter an API key to see your tasks.");
        else setError(err instanceof ApiError ? err.message : "Could not load the tasks.");
      }
    },
    POLL_MS,
    [filters, cursors, version],
  );

  const setFilter = (name: keyof TaskFilters, value: string) => {
    setFilters((f) => ({ ...f, [name]: value || undefined }));
    setCursors([null]);
    setTasks(null);
  };

  const agentNames = [...new Set([...agents.map((a) => a.name), ...(filters.agent_name ? [filters.agent_name] : [])])];

  return (
    <section className="task-list" aria-labelledby="tasks-heading">
      <div className="list-head">
        <h2 id="tasks-heading">Tasks</h2>
        <a className="button button-primary" href="#/new" data-testid="new-task">
          New task
        </a>
      </div>
      <div className="filters" role="group" aria-label="Filter tasks">
        <label>
          <span>Status</span>
          <select
            data-testid="filter-status"
            value={filters.status ?? ""}
            onChange={(e) => setFilter("status", e.target.value)}
          >
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
          <select
            data-testid="filter-agent"
            value={filters.agent_name ?? ""}
            onChange={(e) => setFilter("agent_name", e.target.value)}
          >
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
          <select
            data-testid="filter-pattern"
            value={filters.pattern ?? ""}
            onChange={(e) => setFilter("pattern", e.target.value)}
          >
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

      {tasks === null && !error && <p className="muted pad">Loading…</p>}
      {tasks !== null && tasks.length === 0 && (
        <p className="empty" data-testid="list-empty">
          {Object.values(filters).some(Boolean) ? "No task matches these filters." : "No tasks yet. Create one to get started."}
        </p>
      )}

      {tasks !== null && tasks.length > 0 && (
        <ul className="rows" data-testid="task-list">
          {tasks.map((task) => (
            <li key={task.task_id}>
              <a
                href={taskHref(task.task_id)}
                className={`row${task.task_id === selectedId ? " row-selected" : ""}`}
                aria-current={task.task_id === selectedId ? "page" : undefined}
                data-testid="task-row"
                data-task-id={task.task_id}
                data-status={task.status}
              >
                <span className="row-top">
                  <span className="row-title">{task.title || task.query}</span>
                  <StatusBadge status={task.status} paused={task.paused} />
                </span>
                <span className="row-meta">
                  <span className="chip" data-testid="row-agent">{task.agent_name}</span>
                  <span data-testid="row-pattern">{patternText(task)}</span>
                  {task.pattern === "recurring" && task.next_run_at && !task.paused && task.status !== "cancelled" ? (
                    <span title={formatShort(task.next_run_at)} data-testid="row-next-run">
                      next {formatRelative(task.next_run_at, now)}
                    </span>
                  ) : (
                    <span title={formatShort(task.created_at)}>created {formatRelative(task.created_at, now)}</span>
                  )}
                </span>
              </a>
            </li>
          ))}
        </ul>
      )}

      {(page > 0 || nextCursor) && (
        <nav className="pager" aria-label="Task pages">
          <button
            type="button"
            className="button"
            disabled={page === 0}
            onClick={() => setCursors((c) => c.slice(0, -1))}
            data-testid="page-prev"
          >
            ← Newer
          </button>
          <span className="muted">Page {page + 1}</span>
          <button
            type="button"
            className="button"
            disabled={!nextCursor}
            onClick={() => nextCursor && setCursors((c) => [...c, nextCursor])}
            data-testid="page-next"
          >
            Older →
          </button>
        </nav>
      )}
    </section>
  );
}
