// Folds task events (live) or conversation items (history) into the entries a
// page shows: messages merged by item_id, reasoning, tool calls with their
// results, components replaced in place, questions, and run boundaries.

import type { ConversationItem, Role, TaskEvent } from "./api";

export interface MessageEntry {
  kind: "message";
  key: string;
  role: Role;
  agentName: string | null;
  text: string;
}

export interface ReasoningEntry {
  kind: "reasoning";
  key: string;
  text: string;
  done: boolean;
}

export interface ToolEntry {
  kind: "tool";
  key: string;
  toolName: string;
  result: string | null;
  done: boolean;
}

export interface ComponentEntry {
  kind: "component";
  key: string;
  componentType: string;
  content: Record<string, unknown> | null;
  raw: string;
  taskId: string | null;
}

export interface QuestionEntry {
  kind: "question";
  key: string;
  taskId: string | null;
  question: string;
  seq: number;
}

export interface StatusEntry {
  kind: "status";
  key: string;
  event: string;
  text: string;
  runId: string | null;
  at: string;
}

export type Entry =
  | MessageEntry
  | ReasoningEntry
  | ToolEntry
  | ComponentEntry
  | QuestionEntry
  | StatusEntry;

export interface Timeline {
  order: string[];
  entries: Record<string, Entry>;
  /** The seq of the last event folded in (live view only). */
  lastSeq: number;
  /** The last question asked and not yet followed by agent output. */
  openQuestion: QuestionEntry | null;
}

export const emptyTimeline: Timeline = { order: [], entries: {}, lastSeq: -1, openQuestion: null };

/** One event in a shape both sources share. */
export interface Fold {
  seq: number;
  event: string;
  itemId: string;
  role: Role;
  agentName: string | null;
  taskId: string | null;
  runId: string | null;
  payload: Record<string, unknown> | null;
  at: string;
  /** History items hold merged text: set, do not append. */
  merged: boolean;
}

export function fromEvent(event: TaskEvent): Fold {
  const d = event.data;
  return {
    seq: event.seq,
    event: event.event,
    itemId: d.item_id ?? `seq-${event.seq}`,
    role: d.role ?? "agent",
    agentName: d.agent_name ?? null,
    taskId: d.task_id ?? null,
    runId: d.run_id ?? null,
    payload: d.payload ?? null,
    at: event.created_at,
    merged: false,
  };
}

export function fromItem(item: ConversationItem, index: number): Fold {
  return {
    seq: index,
    event: item.event,
    itemId: item.item_id ?? `item-${index}`,
    role: item.role ?? "agent",
    agentName: item.agent_name ?? null,
    taskId: item.task_id ?? null,
    runId: item.run_id ?? null,
    payload: item.payload ?? null,
    at: item.created_at,
    merged: true,
  };
}

function str(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

function parseContent(raw: unknown): { content: Record<string, unknown> | null; raw: string } {
  if (raw && typeof raw === "object") return { content: raw as Record<string, unknown>, raw: str(raw) };
  const text = str(raw);
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      return { content: parsed as Record<string, unknown>, raw: text };
    }
  } catch {
    /* not JSON: shown as text */
  }
  return { content: null, raw: text };
}

const STATUS_TEXT: Record<string, string> = {
  task_started: "Run started",
  task_completed: "Completed",
  task_failed: "Failed",
  task_cancelled: "Cancelled",
  plan_failed: "Plan failed",
  system_failed: "System error",
};

// Events whose payload is not a reason worth showing.
const QUIET_REASON = new Set(["task_started", "task_completed"]);

// Events that answer an open question: once the agent speaks again, it is not waiting.
const CLOSES_QUESTION = new Set([
  "task_started",
  "message_chunk",
  "message",
  "reasoning_started",
  "tool_call_started",
  "task_completed",
  "task_failed",
  "task_cancelled",
  "plan_failed",
  "system_failed",
]);

function put(t: Timeline, entry: Entry): Timeline {
  const exists = entry.key in t.entries;
  return {
    ...t,
    order: exists ? t.order : [...t.order, entry.key],
    entries: { ...t.entries, [entry.key]: entry },
  };
}

function foldMessage(t: Timeline, f: Fold): Timeline {
  const key = `msg:${f.itemId}`;
  const prev = t.entries[key] as MessageEntry | undefined;
  const piece = str(f.payload?.content);
  // A chunk appends; a whole message (or a merged history item) replaces.
  const replace = f.event === "message" || f.merged || !prev;
  const text = replace ? piece : prev.text + piece;
  return put(t, {
    kind: "message",
    key,
    role: f.role,
    agentName: f.agentName ?? prev?.agentName ?? null,
    text,
  });
}

function foldReasoning(t: Timeline, f: Fold): Timeline {
  const key = `reason:${f.itemId}`;
  const prev = t.entries[key] as ReasoningEntry | undefined;
  const piece = str(f.payload?.content);
  let text = prev?.text ?? "";
  if (f.event === "reasoning") text = f.merged ? piece : text + piece;
  else if (f.event === "reasoning_completed" && !text) text = piece;
  const done = f.event === "reasoning_completed" || f.merged || (prev?.done ?? false);
  return put(t, { kind: "reasoning", key, text, done });
}

function foldTool(t: Timeline, f: Fold): Timeline {
  const callId = str(f.payload?.tool_call_id) || f.itemId;
  const key = `tool:${callId}`;
  const prev = t.entries[key] as ToolEntry | undefined;
  const completed = f.event === "tool_call_completed";
  const result = f.payload && "tool_result" in f.payload ? str(f.payload.tool_result) : null;
  return put(t, {
    kind: "tool",
    key,
    toolName: str(f.payload?.tool_name) || prev?.toolName || "tool",
    result: result ?? prev?.result ?? null,
    // A history item keeps the started event with the result merged in: a result means done.
    done: completed || result !== null || (prev?.done ?? false),
  });
}

function foldComponent(t: Timeline, f: Fold): Timeline {
  const { content, raw } = parseContent(f.payload?.content);
  return put(t, {
    kind: "component",
    key: `comp:${f.itemId}`,
    componentType: str(f.payload?.component_type) || "component",
    content,
    raw,
    taskId: f.taskId,
  });
}

/** Folds one event into the timeline. */
export function fold(t: Timeline, f: Fold): Timeline {
  let next = t;
  switch (f.event) {
    case "message_chunk":
    case "message":
      next = foldMessage(t, f);
      break;
    case "reasoning_started":
    case "reasoning":
    case "reasoning_completed":
      next = foldReasoning(t, f);
      break;
    case "tool_call_started":
    case "tool_call_completed":
      next = foldTool(t, f);
      break;
    case "component_generator":
      next = foldComponent(t, f);
      break;
    case "plan_require_user_input": {
      const question: QuestionEntry = {
        kind: "question",
        key: `ask:${f.itemId}`,
        taskId: f.taskId,
        question: str(f.payload?.content) || "The agent needs an answer.",
        seq: f.seq,
      };
      next = { ...put(t, question), openQuestion: question };
      return { ...next, lastSeq: Math.max(t.lastSeq, f.seq) };
    }
    default:
      if (f.event in STATUS_TEXT) {
        const reason = str(f.payload?.content);
        next = put(t, {
          kind: "status",
          key: `status:${f.event}:${f.itemId}:${f.seq}`,
          event: f.event,
          text: reason && !QUIET_REASON.has(f.event) ? reason : STATUS_TEXT[f.event],
          runId: f.runId,
          at: f.at,
        });
      }
  }
  const openQuestion = CLOSES_QUESTION.has(f.event) && f.role !== "user" ? null : next.openQuestion;
  return { ...next, openQuestion, lastSeq: Math.max(t.lastSeq, f.seq) };
}

export function foldAll(folds: Fold[], start: Timeline = emptyTimeline): Timeline {
  return folds.reduce(fold, start);
}
