// The Edit form's logic (PATCH /api/v1/tasks/{id}): the form's values from a task, and the patch
// of what changed. Only changed fields are sent; the server checks the values (400/422 naming
// the field), and If-Match carries the version the form was filled from.
import type { ScheduleConfig, Task } from "./api";

export type ScheduleKind = "every" | "daily" | "cron";

export interface EditValues {
  title: string;
  query: string;
  kind: ScheduleKind;
  every: string;
  daily: string;
  cron: string;
  timezone: string;
  maxAttempts: string;
  metadata: string;
}

/** What a task of this pattern may change (docs/api.md, PATCH /tasks/{task_id}). */
export function editableFields(task: Task): Set<string> {
  return task.pattern === "recurring"
    ? new Set(["title", "query", "schedule_config", "max_attempts", "metadata"])
    : new Set(["title", "metadata"]);
}

export function valuesOf(task: Task): EditValues {
  const schedule = task.schedule_config ?? {};
  const kind: ScheduleKind = schedule.cron ? "cron" : schedule.daily_time ? "daily" : "every";
  return {
    title: task.title,
    query: task.query,
    kind,
    every: schedule.interval_minutes != null ? String(schedule.interval_minutes) : "",
    daily: schedule.daily_time ?? "",
    cron: schedule.cron ?? "",
    timezone: schedule.timezone ?? "",
    maxAttempts: String(task.max_attempts),
    metadata: JSON.stringify(task.metadata ?? {}, null, 2),
  };
}

function scheduleOf(values: EditValues): ScheduleConfig {
  const zone = values.timezone.trim() || null;
  if (values.kind === "every") {
    const text = values.every.trim();
    // Not a whole number: sent as typed, so the server names the field (422).
    const minutes = /^\d+$/.test(text) ? Number(text) : (text as unknown as number);
    return zone ? { interval_minutes: minutes, timezone: zone } : { interval_minutes: minutes };
  }
  if (values.kind === "daily") return { daily_time: values.daily.trim(), timezone: zone };
  return { cron: values.cron.trim(), timezone: zone };
}

function sameSchedule(a: ScheduleConfig | null, b: ScheduleConfig): boolean {
  const norm = (s: ScheduleConfig | null) => [
    s?.interval_minutes ?? null,
    s?.daily_time ?? null,
    s?.cron ?? null,
    s?.timezone ?? null,
  ];
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}

export interface PatchResult {
  patch: Record<string, unknown>;
  /** Errors found before sending (by field, as the API names it). */
  errors: Record<string, string>;
}

/** The patch of what ``values`` change on ``task``; errors for what cannot be sent at all. */
export function buildPatch(task: Task, values: EditValues): PatchResult {
  const editable = editableFields(task);
  const patch: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  if (values.title !== task.title) patch.title = values.title;
  if (editable.has("query") && values.query !== task.query) patch.query = values.query;
  if (editable.has("max_attempts") && values.maxAttempts.trim() !== String(task.max_attempts)) {
    const text = values.maxAttempts.trim();
    patch.max_attempts = /^-?\d+$/.test(text) ? Number(text) : text;
  }
  if (editable.has("schedule_config")) {
    const schedule = scheduleOf(values);
    if (!sameSchedule(task.schedule_config, schedule)) patch.schedule_config = schedule;
  }
  let metadata: unknown;
  try {
    metadata = JSON.parse(values.metadata.trim() || "{}");
  } catch {
    errors.metadata = "Enter a JSON object, such as {\"team\": \"ops\"}.";
  }
  if (!("metadata" in errors)) {
    if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
      errors.metadata = "Enter a JSON object, such as {\"team\": \"ops\"}.";
    } else if (JSON.stringify(metadata) !== JSON.stringify(task.metadata ?? {})) {
      patch.metadata = metadata;
    }
  }
  return { patch, errors };
}

/** The If-Match header of an edit made against ``task``. */
export function ifMatch(task: Task): string {
  return `"${task.version}"`;
}
