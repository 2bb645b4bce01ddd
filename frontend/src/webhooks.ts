// Webhook subscriptions and their deliveries (docs/api.md, "Webhooks"): the API's shapes, its
// calls, and the page's pure logic (the create form's body, event-type choice, states).

import { ApiError, request } from "./api";

export interface Webhook {
  webhook_id: string;
  user_id: string;
  url: string;
  event_types: string[];
  task_id: string | null;
  agent_name: string | null;
  description: string;
  created_at: string | null;
  failing_since: string | null;
  disabled_at: string | null;
  disabled_reason: string | null;
}

/** ``POST /webhooks`` answers the secret this once. */
export interface WebhookCreated extends Webhook {
  secret: string;
}

export interface WebhookSecret {
  webhook_id: string;
  secret: string;
}

export type DeliveryStatus = "pending" | "sending" | "delivered" | "failed";

export interface Delivery {
  delivery_id: string;
  webhook_id: string;
  task_id: string;
  seq: number;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  created_at: string;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status_code: number | null;
  last_response: string | null;
  last_error: string | null;
  delivered_at: string | null;
}

export interface WebhookCreateBody {
  url: string;
  event_types: string[];
  task_id?: string;
  agent_name?: string;
  description?: string;
}

export const ALL_EVENTS = "*";

/** The event types a subscription can ask for, "*" (all of them) first. */
export const EVENT_TYPES: readonly { type: string; label: string }[] = [
  { type: ALL_EVENTS, label: "All events (*)" },
  { type: "task_completed", label: "Task completed" },
  { type: "task_failed", label: "Task failed" },
  { type: "task_cancelled", label: "Task cancelled" },
  { type: "plan_require_user_input", label: "Agent asks for input" },
  { type: "scheduled_task_result", label: "Recurring run result" },
  { type: "run_failed", label: "Recurring run failed" },
  { type: "task_paused", label: "Recurring task paused" },
];

const enc = encodeURIComponent;

export const webhooksApi = {
  list(signal?: AbortSignal) {
    return request<{ items: Webhook[] }>("GET", "/webhooks", undefined, signal).then((page) => page.items);
  },
  create(body: WebhookCreateBody) {
    return request<WebhookCreated>("POST", "/webhooks", body);
  },
  remove(webhookId: string) {
    return request<{ webhook_id: string; deleted: boolean }>("DELETE", `/webhooks/${enc(webhookId)}`);
  },
  rotate(webhookId: string) {
    return request<WebhookSecret>("POST", `/webhooks/${enc(webhookId)}/rotate`, {});
  },
  deliveries(webhookId: string, signal?: AbortSignal) {
    return request<{ items: Delivery[] }>("GET", `/webhooks/${enc(webhookId)}/deliveries?limit=50`, undefined, signal).then(
      (page) => page.items,
    );
  },
  redeliver(webhookId: string, deliveryId: string) {
    return request<Delivery>("POST", `/webhooks/${enc(webhookId)}/deliveries/${enc(deliveryId)}/redeliver`, {});
  },
};

/** Ticking "*" means all events (the others are cleared); ticking one event clears "*". */
export function toggleEventType(selected: readonly string[], type: string, on: boolean): string[] {
  if (!on) return selected.filter((t) => t !== type);
  if (type === ALL_EVENTS) return [ALL_EVENTS];
  const rest = selected.filter((t) => t !== ALL_EVENTS && t !== type);
  return EVENT_TYPES.map((e) => e.type).filter((t) => t === type || rest.includes(t));
}

export interface WebhookForm {
  url: string;
  eventTypes: string[];
  taskId: string;
  agentName: string;
  description: string;
}

/** The body of ``POST /webhooks``: trimmed, optional fields left out when empty. */
export function createBody(form: WebhookForm): WebhookCreateBody {
  const body: WebhookCreateBody = { url: form.url.trim(), event_types: form.eventTypes };
  const taskId = form.taskId.trim();
  const agentName = form.agentName.trim();
  const description = form.description.trim();
  if (taskId) body.task_id = taskId;
  if (agentName) body.agent_name = agentName;
  if (description) body.description = description;
  return body;
}

export const FORM_FIELDS = ["url", "event_types", "task_id", "agent_name", "description"] as const;
export type FormField = (typeof FORM_FIELDS)[number];

/** An error answer split into messages beside the form's fields and one for the form. */
export function formErrors(err: unknown): { fields: Partial<Record<FormField, string>>; top: string | null } {
  if (!(err instanceof ApiError)) return { fields: {}, top: "Something went wrong. Try again." };
  const fields: Partial<Record<FormField, string>> = {};
  const loose: string[] = [];
  for (const { field, message } of err.fieldErrors) {
    const name = FORM_FIELDS.find((f) => field === f || field.startsWith(`${f}.`));
    if (name) fields[name] = fields[name] ? `${fields[name]} ${message}` : message;
    else loose.push(field ? `${field}: ${message}` : message);
  }
  if (err.fieldErrors.length === 0) loose.push(err.message);
  return { fields, top: loose.length ? loose.join(" ") : null };
}

export type WebhookState = { label: string; tone: "completed" | "paused" | "failed"; detail: string | null };

/** Enabled, failing (every attempt since a time failed) or disabled (with its reason). */
export function webhookState(hook: Webhook): WebhookState {
  if (hook.disabled_at) return { label: "disabled", tone: "failed", detail: hook.disabled_reason };
  if (hook.failing_since) return { label: "failing", tone: "paused", detail: null };
  return { label: "enabled", tone: "completed", detail: null };
}

/** A delivery's status as a badge class of styles.css. */
export function deliveryTone(status: DeliveryStatus): string {
  return { pending: "badge-pending", sending: "badge-running", delivered: "badge-completed", failed: "badge-failed" }[status];
}

/** Who a subscription hears about, in words. */
export function filterText(hook: Pick<Webhook, "task_id" | "agent_name">): string {
  const parts: string[] = [];
  if (hook.task_id) parts.push(`task ${hook.task_id}`);
  if (hook.agent_name) parts.push(`agent ${hook.agent_name}`);
  return parts.length ? parts.join(", ") : "all your tasks";
}
