import { describe, expect, it } from "vitest";
import type { TaskEvent } from "../api";
import { runTimeMs } from "../format";
import { fromEvent, statusByEvents, TimelineModel, type MessageEntry, type ToolEntry } from "../timeline";

let seq = 0;
function ev(event: string, data: Partial<TaskEvent["data"]> = {}): TaskEvent {
  seq += 1;
  return {
    seq,
    event,
    created_at: "2026-11-30T10:00:00+00:00",
    data: { item_id: `i${seq}`, role: "agent", payload: null, run_id: null, ...data },
  };
}

function fold(events: TaskEvent[]): TimelineModel {
  return new TimelineModel().foldAll(events.map(fromEvent));
}

describe("TimelineModel", () => {
  it("joins chunks of one item into one message, and a whole message replaces", () => {
    seq = 0;
    const model = fold([
      ev("message", { role: "user", item_id: "q", payload: { content: "hi" } }),
      ev("message_chunk", { item_id: "a", run_id: "r1", payload: { content: "hel" } }),
      ev("message_chunk", { item_id: "a", run_id: "r1", payload: { content: "lo" } }),
    ]);
    const answer = model.entries.get("msg:a") as MessageEntry;
    expect(answer.text).toBe("hello");
    expect(answer.pieces).toBe(2);
    model.fold(fromEvent(ev("message", { item_id: "a", run_id: "r1", payload: { content: "final" } })));
    expect((model.entries.get("msg:a") as MessageEntry).text).toBe("final");
  });

  it("replaces only the entry that changed (the others keep their identity)", () => {
    seq = 0;
    const model = fold([
      ev("message", { role: "user", item_id: "q", payload: { content: "hi" } }),
      ev("message_chunk", { item_id: "a", run_id: "r1", payload: { content: "x" } }),
    ]);
    const question = model.entries.get("msg:q");
    const before = model.entries.get("msg:a");
    const version = model.version;
    model.fold(fromEvent(ev("message_chunk", { item_id: "a", run_id: "r1", payload: { content: "y" } })));
    expect(model.entries.get("msg:q")).toBe(question);
    expect(model.entries.get("msg:a")).not.toBe(before);
    expect(model.version).toBeGreaterThan(version);
  });

  it("groups entries by run, events of no run staying with the run before them", () => {
    seq = 0;
    const model = fold([
      ev("thread_started"),
      ev("message", { role: "user", item_id: "q", payload: { content: "go" } }),
      ev("tool_call_started", { run_id: "r1", payload: { tool_call_id: "c1", tool_name: "connect_agent" } }),
      ev("tool_call_completed", { run_id: "r1", payload: { tool_call_id: "c1", tool_name: "connect_agent", tool_result: "error: 503" } }),
      ev("message", { role: "system", item_id: "retry", run_id: "r1", payload: { content: "Attempt 1 of 3 failed" } }),
      ev("tool_call_started", { run_id: "r2", payload: { tool_call_id: "c2", tool_name: "connect_agent" } }),
      ev("tool_call_completed", { run_id: "r2", payload: { tool_call_id: "c2", tool_name: "connect_agent", tool_result: "connected" } }),
      ev("task_completed", { role: "system", run_id: "r2" }),
      ev("done", { role: "system" }),
    ]);
    expect(model.groups.map((g) => g.runId)).toEqual([null, "r1", "r2"]);
    const failed = model.entries.get("tool:c1") as ToolEntry;
    const ok = model.entries.get("tool:c2") as ToolEntry;
    expect([failed.done, failed.failed, ok.done, ok.failed]).toEqual([true, true, true, false]);
    const rows = model.rows();
    expect(rows.filter((r) => r.type === "run").map((r) => r.group.runId)).toEqual(["r1", "r2"]);
    expect(statusByEvents(model)).toBe("completed");
  });

  it("folds each event once (a repeated seq is dropped)", () => {
    seq = 0;
    const first = ev("message_chunk", { item_id: "a", payload: { content: "one " } });
    const model = fold([first]);
    expect(model.fold(fromEvent(first))).toBe(false);
    expect((model.entries.get("msg:a") as MessageEntry).text).toBe("one ");
  });

  it("tells an open question until the agent speaks again, and keeps the latest controller aside", () => {
    seq = 0;
    const model = fold([
      ev("plan_require_user_input", { item_id: "ask", payload: { content: "Name?" } }),
      ev("message", { role: "user", item_id: "reply", payload: { content: "Ada" } }),
    ]);
    expect(model.openQuestion?.question).toBe("Name?");
    model.fold(fromEvent(ev("message_chunk", { item_id: "b", payload: { content: "Hello" } })));
    expect(model.openQuestion).toBeNull();
    model.fold(fromEvent(ev("component_generator", { item_id: "t:controller", payload: { component_type: "scheduled_task_controller", content: '{"task_id":"t","paused":true}' } })));
    expect(model.controller?.content).toEqual({ task_id: "t", paused: true });
  });

  it("folds 20,000 chunks in linear time", () => {
    seq = 0;
    const model = new TimelineModel();
    for (let i = 0; i < 20_000; i += 1) {
      model.fold(fromEvent(ev("message_chunk", { item_id: "long", run_id: "r", payload: { content: `tick ${i} ` } })));
    }
    const entry = model.entries.get("msg:long") as MessageEntry;
    expect(entry.pieces).toBe(20_000);
    expect(model.rows()).toHaveLength(2);
  });

  it("a run started after a terminal event is not finished", () => {
    seq = 0;
    const model = fold([ev("task_failed", { run_id: "r1" }), ev("task_started", { run_id: "r2" })]);
    expect(statusByEvents(model)).toBeNull();
  });
});

describe("runTimeMs", () => {
  const run = (status: string, start: string, end: string, closedBy: string | null = null) => ({
    status,
    started_at: `2026-11-30T10:${start}Z`,
    finished_at: `2026-11-30T10:${end}Z`,
    closed_by: closedBy,
  });

  it("sums the runs' own times, without the downtime of a run recovered after a crash", () => {
    const runs = [run("interrupted", "00:00", "05:00", "vm:2:b"), run("completed", "05:01", "05:03.5")];
    expect(runTimeMs(runs)).toBe(2500);
  });

  it("counts a run its own server closed as it stopped gracefully", () => {
    const runs = [run("interrupted", "00:00", "00:02"), run("completed", "03:00", "03:01")];
    expect(runTimeMs(runs)).toBe(3000);
  });

  it("leaves out a run still going", () => {
    expect(runTimeMs([{ status: "running", started_at: "2026-11-30T10:00:00Z", finished_at: null, closed_by: null }])).toBe(0);
  });
});
