// Types and fetch helpers for the taskcell HTTP API (/api/v1).
// Every JSON answer is an envelope {code, msg, data}; errors carry the HTTP status.

import { reportReached, reportUnreachable } from "./connectivity";

export const API_PREFIX = "/api/v1";

export type TaskStatus =
  | "pending"
  | "running"
  | "waiting_input"
  | "completed"
  | "failed"
  | "cancelled";

export const TASK_STATUSES: TaskStatus[] = [
  "pending",
  "running",
  "waiting_input",
  "completed",
  "failed",
  "cancelled",
];

export const FINISHED_STATUSES: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);

export type Pattern = "once" | "recurring";

export interface ScheduleConfig {
  interval_minutes?: number | null;
  daily_time?: string | null;
  cron?: string | null;
  timezone?: string | null;
}

export interface Task {
  task_id: string;
  title: string;
  query: string;
  conversation_id: string;
  thread_id: string;
  user_id: string;
  agent_name: string;
  status: TaskStatus;
  pattern: Pattern;
  schedule_config: ScheduleConfig | null;
  paused: boolean;
  next_run_at: string | null;
  attempt: number;
  max_attempts: number;
  remote_task_ids: string[];
  handoff_from_super_agent: boolean;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  updated_at: string;
  error_message: string | null;
  metadata: Record<string, unknown>;
  /** One more at each edit (PATCH); the task's ETag. */
  version: number;
}

export interface Run {
  run_id: string;
  attempt: number;
  scheduled_for: string | null;
  started_at: string | null;
  finished_at: string | null;
  status: string;
  error: string | null;
  result: string | null;
  /** The process that closed the run for another (a recovery after a crash), else null. */
  closed_by?: string | null;
  /** The task's version the run ran. */
  version?: number;
}

export interface Agent {
  name: string;
  description: string;
  skills: unknown[];
  url: string;
  reachable: boolean;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export type Role = "user" | "agent" | "system";

/** The `data` of one SSE message. */
export interface EventData {
  conversation_id?: string;
  thread_id?: string;
  task_id?: string;
  run_id?: string | null;
  item_id: string;
  role: Role;
  agent_name?: string | null;
  payload: Record<string, unknown> | null;
  metadata?: Record<string, unknown> | null;
}

/** One SSE message of GET /tasks/{id}/events. */
export interface TaskEvent {
  seq: number;
  event: string;
  data: EventData;
  created_at: string;
}

/** One item of GET /conversations/{id}/items. */
export interface ConversationItem {
  item_id: string;
  role: Role;
  event: string;
  payload: Record<string, unknown> | null;
  created_at: string;
  task_id?: string | null;
  thread_id?: string | null;
  conversation_id?: string | null;
  run_id?: string | null;
  agent_name?: string | null;
  metadata?: Record<string, unknown> | null;
}

export interface CreateTaskBody {
  query: string;
  agent_name: string;
  title?: string;
  conversation_id?: string;
  pattern?: Pattern;
  schedule_config?: ScheduleConfig;
  run_immediately?: boolean;
  max_attempts?: number;
}

export interface CancelResult {
  task_id: string;
  success: boolean;
  updated_component_ids: string[];
}

export interface FieldError {
  field: string;
  message: string;
}

/** An error answer of the API, or a network failure (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: number;
  readonly fieldErrors: FieldError[];

  constructor(status: number, msg: string, fieldErrors: FieldError[] = [], code?: number) {
    super(msg);
    this.name = "ApiError";
    this.status = status;
    this.code = code ?? status;
    this.fieldErrors = fieldErrors;
  }

  get isNetwork(): boolean {
    return this.status === 0;
  }
}

// ---- API key -------------------------------------------------------------

const KEY_STORAGE = "taskcell.apiKey";

export function getApiKey(): string {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    return "";
  }
}

export function setApiKey(key: string): void {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage unavailable: the key lives for this page only */
  }
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();

/** Called whenever an answer is 401, so the page can ask for a key. */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export function notifyUnauthorized(): void {
  for (const listener of unauthorizedListeners) listener();
}

export function authHeaders(): Record<string, string> {
  const key = getApiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// ---- requests --------------------------------------------------------------

/** Strips the "body." prefix FastAPI-style locations may carry. */
export function normaliseField(field: string): string {
  return field.replace(/^body\./, "");
}

function parseFieldErrors(data: unknown): FieldError[] {
  if (!Array.isArray(data)) return [];
  const out: FieldError[] = [];
  for (const entry of data) {
    if (entry && typeof entry === "object") {
      const e = entry as Record<string, unknown>;
      const field = Array.isArray(e.field) ? e.field.join(".") : String(e.field ?? "");
      const message = String(e.message ?? e.msg ?? "");
      out.push({ field: normaliseField(field), message });
    }
  }
  return out;
}

export async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  signal?: AbortSignal,
  extraHeaders: Record<string, string> = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", ...authHeaders(), ...extraHeaders };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(API_PREFIX + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    reportUnreachable();
    throw new ApiError(0, "The server cannot be reached.");
  }
  // A proxy's 502/503/504 while the server restarts is an outage too.
  if (response.status === 502 || response.status === 503 || response.status === 504) reportUnreachable();
  else reportReached();
  let envelope: { code?: number; msg?: string; data?: unknown } | null = null;
  try {
    envelope = await response.json();
  } catch {
    envelope = null;
  }
  if (!response.ok) {
    if (response.status === 401) notifyUnauthorized();
    const msg =
      envelope && typeof envelope.msg === "string" && envelope.msg
        ? envelope.msg
        : `${response.status} ${response.statusText || "error"}`;
    throw new ApiError(response.status, msg, parseFieldErrors(envelope?.data), envelope?.code);
  }
  if (envelope && typeof envelope === "object" && "data" in envelope) return envelope.data as T;
  return envelope as T;
}

function query(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export interface TaskFilters {
  status?: string;
  agent_name?: string;
  pattern?: string;
  conversation_id?: string;
}

const enc = encodeURIComponent;

export const api = {
  listTasks(filters: TaskFilters, cursor?: string | null, limit = 25, signal?: AbortSignal) {
    return request<Page<Task>>("GET", `/tasks${query({ ...filters, cursor, limit })}`, undefined, signal);
  },
  getTask(taskId: string, signal?: AbortSignal) {
    return request<Task>("GET", `/tasks/${enc(taskId)}`, undefined, signal);
  },
  createTask(body: CreateTaskBody) {
    return request<Task>("POST", "/tasks", body);
  },
  /** PATCH: only the fields given change; with ``ifMatch`` (the version, quoted) a stale edit is 409. */
  editTask(taskId: string, patch: Record<string, unknown>, ifMatch?: string) {
    return request<Task>("PATCH", `/tasks/${enc(taskId)}`, patch, undefined, ifMatch ? { "If-Match": ifMatch } : {});
  },
  cancelTask(taskId: string) {
    return request<CancelResult>("POST", `/tasks/${enc(taskId)}/cancel`, {});
  },
  pauseTask(taskId: string) {
    return request<Task>("POST", `/tasks/${enc(taskId)}/pause`, {});
  },
  resumeTask(taskId: string) {
    return request<Task>("POST", `/tasks/${enc(taskId)}/resume`, {});
  },
  runTask(taskId: string) {
    return request<Run>("POST", `/tasks/${enc(taskId)}/run`, {});
  },
  sendInput(taskId: string, text: string) {
    return request<Task>("POST", `/tasks/${enc(taskId)}/input`, { text });
  },
  deleteTask(taskId: string) {
    return request<{ task_id: string; deleted: boolean }>("DELETE", `/tasks/${enc(taskId)}`);
  },
  listRuns(taskId: string, cursor?: string | null, signal?: AbortSignal) {
    return request<Page<Run>>("GET", `/tasks/${enc(taskId)}/runs${query({ cursor })}`, undefined, signal);
  },
  async listAgents(signal?: AbortSignal): Promise<Agent[]> {
    const data = await request<Agent[] | { items: Agent[] }>("GET", "/agents", undefined, signal);
    return Array.isArray(data) ? data : (data?.items ?? []);
  },
  conversationItems(conversationId: string, cursor?: string | null, signal?: AbortSignal) {
    return request<Page<ConversationItem>>(
      "GET",
      `/conversations/${enc(conversationId)}/items${query({ cursor })}`,
      undefined,
      signal,
    );
  },
  /** The events stream; `from` and `before` read a long log in parts (docs/api.md). */
  eventsUrl(taskId: string, params: { from?: string; before?: number } = {}): string {
    return `${API_PREFIX}/tasks/${enc(taskId)}/events${query(params)}`;
  },
  /** Every task id starting with `prefix` among the caller's newest tasks (a short id's link). */
  async findByPrefix(prefix: string, signal?: AbortSignal): Promise<string[]> {
    const found: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page += 1) {
      const result: Page<Task> = await request<Page<Task>>(
        "GET",
        `/tasks${query({ cursor, limit: 200 })}`,
        undefined,
        signal,
      );
      for (const task of result.items) if (task.task_id.startsWith(prefix)) found.push(task.task_id);
      cursor = result.next_cursor;
      if (!cursor || found.length > 1) break;
    }
    return found;
  },
};
