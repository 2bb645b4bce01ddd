// Folds task events (live) or conversation items (history) into the entries a
// page shows: messages merged by item_id, reasoning, tool calls with their
// results, components replaced in place, questions, status lines, grouped by
// the run they belong to.
//
// The model is mutable so that folding one event costs the same however long
// the timeline is: an entry that changes is replaced by a new object (so a
// memoised row re-renders only when its own entry changed), the others are
// kept as they are, and `version` grows at each change.

import type { ConversationItem, Role, TaskEvent } from "./api";

export interface MessageEntry {
  kind: "message";
  key: string;
  role: Role;
  agentName: string | null;
  text: string;
  /** The pieces the text was built from (a chunk appends one). */
  pieces: number;
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
  /** The tool call ended in an error (`connect_agent` answers "error: <reason>"). */
  failed: boolean;
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

/** The entries of one run (or, with `runId` null, those before any run). */
export interface Group {
  key: string;
  runId: string | null;
  firstSeq: number;
  keys: string[];
}

/** One row of the list a page draws: a run's heading, or an entry. */
export type Row =
  | { type: "run"; key: string; group: Group }
  | { type: "entry"; key: string; entry: Entry; group: Group };

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
  // Retention removed the oldest events: the stream starts with this one.
  history_truncated: "Older events were removed",
};

/** The events that end a task (a once task's last run, or a cancel). */
export const TERMINAL_EVENTS: Record<string, "completed" | "failed" | "cancelled"> = {
  task_completed: "completed",
  task_failed: "failed",
  task_cancelled: "cancelled",
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

export const CONTROLLER = "scheduled_task_controller";

export class TimelineModel {
  readonly entries = new Map<string, Entry>();
  readonly groups: Group[] = [];
  /** Grows at each change: a view re-reads the model when it moves. */
  version = 0;
  firstSeq = Number.POSITIVE_INFINITY;
  lastSeq = -1;
  /** The last question asked and not yet followed by agent output. */
  openQuestion: QuestionEntry | null = null;
  /** The latest terminal event (task_completed, task_failed, task_cancelled) and its seq. */
  terminal: { event: string; seq: number } | null = null;
  /** The seq of the latest task_started. */
  lastStartSeq = -1;
  /** The latest scheduled_task_controller component. */
  controller: ComponentEntry | null = null;
  private readonly groupOf = new Map<string, Group>();
  private readonly groupByRun = new Map<string, Group>();
  private rowsCache: { version: number; rows: Row[] } | null = null;

  /** Folds one event in; answers whether anything a page shows changed. */
  fold(f: Fold): boolean {
    if (f.seq <= this.lastSeq && !f.merged) return false; // already folded
    this.lastSeq = Math.max(this.lastSeq, f.seq);
    this.firstSeq = Math.min(this.firstSeq, f.seq);
    this.version += 1;
    switch (f.event) {
      case "message_chunk":
      case "message":
        this.foldMessage(f);
        break;
      case "reasoning_started":
      case "reasoning":
      case "reasoning_completed":
        this.foldReasoning(f);
        break;
      case "tool_call_started":
      case "tool_call_completed":
        this.foldTool(f);
        break;
      case "component_generator":
        this.foldComponent(f);
        break;
      case "plan_require_user_input": {
        const question: QuestionEntry = {
          kind: "question",
          key: `ask:${f.itemId}`,
          taskId: f.taskId,
          question: str(f.payload?.content) || "The agent needs an answer.",
          seq: f.seq,
        };
        this.put(question, f);
        this.openQuestion = question;
        return true;
      }
      default:
        if (f.event in STATUS_TEXT) {
          const reason = str(f.payload?.content);
          this.put(
            {
              kind: "status",
              key: `status:${f.event}:${f.itemId}:${f.seq}`,
              event: f.event,
              text: reason && !QUIET_REASON.has(f.event) ? reason : STATUS_TEXT[f.event],
              runId: f.runId,
              at: f.at,
            },
            f,
          );
          if (f.event in TERMINAL_EVENTS) this.terminal = { event: f.event, seq: f.seq };
          if (f.event === "task_started") this.lastStartSeq = f.seq;
        }
    }
    if (CLOSES_QUESTION.has(f.event) && f.role !== "user") this.openQuestion = null;
    return true;
  }

  foldAll(folds: Iterable<Fold>): this {
    for (const f of folds) this.fold(f);
    return this;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every entry key, in the order they first appeared. */
  get order(): string[] {
    return this.groups.flatMap((g) => g.keys);
  }

  /** The rows to draw: each run's heading (runs only), then its entries. */
  rows(options: { hideKeys?: ReadonlySet<string> } = {}): Row[] {
    const hide = options.hideKeys;
    if (!hide && this.rowsCache?.version === this.version) return this.rowsCache.rows;
    const rows: Row[] = [];
    for (const group of this.groups) {
      if (group.runId) rows.push({ type: "run", key: `run:${group.key}`, group });
      for (const key of group.keys) {
        if (hide?.has(key)) continue;
        const entry = this.entries.get(key);
        if (entry) rows.push({ type: "entry", key, entry, group });
      }
    }
    if (!hide) this.rowsCache = { version: this.version, rows };
    return rows;
  }

  /** Whether a user's message follows the entry `key` (an answer the stream echoed). */
  hasLaterUserMessage(key: string): boolean {
    const order = this.order;
    const index = order.indexOf(key);
    return order.slice(index + 1).some((k) => {
      const e = this.entries.get(k);
      return e?.kind === "message" && e.role === "user";
    });
  }

  private group(f: Fold): Group {
    const last = this.groups[this.groups.length - 1];
    // An event of no run (an opening event, a controller update) stays with the run before it.
    if (!f.runId) {
      if (last) return last;
    } else {
      const known = this.groupByRun.get(f.runId);
      if (known) return known;
    }
    const group: Group = { key: f.runId ?? `seq-${f.seq}`, runId: f.runId, firstSeq: f.seq, keys: [] };
    this.groups.push(group);
    if (f.runId) this.groupByRun.set(f.runId, group);
    return group;
  }

  private put(entry: Entry, f: Fold): void {
    if (!this.entries.has(entry.key)) {
      const group = this.group(f);
      group.keys.push(entry.key);
      this.groupOf.set(entry.key, group);
    }
    this.entries.set(entry.key, entry);
  }

  private foldMessage(f: Fold): void {
    const key = `msg:${f.itemId}`;
    const prev = this.entries.get(key) as MessageEntry | undefined;
    const piece = str(f.payload?.content);
    // A chunk appends; a whole message (or a merged history item) replaces.
    const replace = f.event === "message" || f.merged || !prev;
    this.put(
      {
        kind: "message",
        key,
        role: f.role,
        agentName: f.agentName ?? prev?.agentName ?? null,
        text: replace ? piece : prev.text + piece,
        pieces: replace ? 1 : prev.pieces + 1,
      },
      f,
    );
  }

  private foldReasoning(f: Fold): void {
    const key = `reason:${f.itemId}`;
    const prev = this.entries.get(key) as ReasoningEntry | undefined;
    const piece = str(f.payload?.content);
    let text = prev?.text ?? "";
    if (f.event === "reasoning") text = f.merged ? piece : text + piece;
    else if (f.event === "reasoning_completed" && !text) text = piece;
    const done = f.event === "reasoning_completed" || f.merged || (prev?.done ?? false);
    this.put({ kind: "reasoning", key, text, done }, f);
  }

  private foldTool(f: Fold): void {
    const callId = str(f.payload?.tool_call_id) || f.itemId;
    const key = `tool:${callId}`;
    const prev = this.entries.get(key) as ToolEntry | undefined;
    const completed = f.event === "tool_call_completed";
    const result = f.payload && "tool_result" in f.payload ? str(f.payload.tool_result) : null;
    const shown = result ?? prev?.result ?? null;
    this.put(
      {
        kind: "tool",
        key,
        toolName: str(f.payload?.tool_name) || prev?.toolName || "tool",
        result: shown,
        // A history item keeps the started event with the result merged in: a result means done.
        done: completed || result !== null || (prev?.done ?? false),
        failed: shown !== null && /^error\b/i.test(shown.trim()),
      },
      f,
    );
  }

  private foldComponent(f: Fold): void {
    const { content, raw } = parseContent(f.payload?.content);
    const entry: ComponentEntry = {
      kind: "component",
      key: `comp:${f.itemId}`,
      componentType: str(f.payload?.component_type) || "component",
      content,
      raw,
      taskId: f.taskId,
    };
    if (entry.componentType === CONTROLLER) this.controller = entry;
    this.put(entry, f);
  }
}

/** A new model with `folds` folded in. */
export function foldAll(folds: Iterable<Fold>): TimelineModel {
  return new TimelineModel().foldAll(folds);
}

/**
 * What the task's status is by its events: the latest terminal event, when no run started after
 * it. A page shows this over a task it read a moment before the event (the events are the truth).
 */
export function statusByEvents(model: TimelineModel): "completed" | "failed" | "cancelled" | null {
  const terminal = model.terminal;
  if (!terminal || terminal.seq < model.lastStartSeq) return null;
  return TERMINAL_EVENTS[terminal.event] ?? null;
}
