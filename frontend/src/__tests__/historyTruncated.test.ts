import { describe, expect, it } from "vitest";
import type { TaskEvent } from "../api";
import { fromEvent, TimelineModel, type StatusEntry } from "../timeline";

describe("a stream whose oldest events retention removed", () => {
  it("shows that older events were removed, then the events that follow", () => {
    const truncated: TaskEvent = {
      seq: 11,
      event: "history_truncated",
      created_at: "2026-11-30T10:00:00+00:00",
      data: {
        item_id: "history-truncated-t1",
        role: "system",
        run_id: null,
        payload: { first_seq: 12, content: "older events were removed (the log now starts at 12)" },
      },
    };
    const next: TaskEvent = {
      seq: 12,
      event: "message",
      created_at: "2026-11-30T10:00:01+00:00",
      data: { item_id: "m12", role: "agent", run_id: "r9", payload: { content: "hello" } },
    };
    const model = new TimelineModel().foldAll([truncated, next].map(fromEvent));
    const notice = [...model.entries.values()].find((e) => e.kind === "status") as StatusEntry;
    expect(notice.event).toBe("history_truncated");
    expect(notice.text).toContain("older events were removed");
    expect(model.entries.get("msg:m12")).toBeDefined();
    expect(model.lastSeq).toBe(12);
  });
});
