import { describe, expect, it } from "vitest";
import type { Task } from "../api";
import { buildPatch, editableFields, ifMatch, valuesOf } from "../editing";

function task(fields: Partial<Task> = {}): Task {
  return {
    task_id: "t1",
    title: "Standup",
    query: "what is new?",
    conversation_id: "c1",
    thread_id: "th1",
    user_id: "default_user",
    agent_name: "clock",
    status: "running",
    pattern: "recurring",
    schedule_config: { interval_minutes: 60, daily_time: null, cron: null, timezone: null },
    paused: false,
    next_run_at: "2026-12-01T09:00:00Z",
    attempt: 1,
    max_attempts: 3,
    remote_task_ids: [],
    handoff_from_super_agent: false,
    created_at: "2026-11-30T09:00:00Z",
    started_at: "2026-11-30T09:00:00Z",
    completed_at: null,
    updated_at: "2026-11-30T09:00:00Z",
    error_message: null,
    metadata: { team: "ops" },
    version: 4,
    ...fields,
  };
}

describe("the Edit form's patch", () => {
  it("is empty when nothing changed", () => {
    const t = task();
    expect(buildPatch(t, valuesOf(t))).toEqual({ patch: {}, errors: {} });
  });

  it("holds only the fields that changed", () => {
    const t = task();
    const values = { ...valuesOf(t), title: "Morning", kind: "cron" as const, cron: "0 9 * * MON-FRI", timezone: "Europe/Berlin" };
    expect(buildPatch(t, values).patch).toEqual({
      title: "Morning",
      schedule_config: { cron: "0 9 * * MON-FRI", timezone: "Europe/Berlin" },
    });
  });

  it("sends numbers as numbers, and what is not one as typed (the server names the field)", () => {
    const t = task();
    expect(buildPatch(t, { ...valuesOf(t), maxAttempts: "5", every: "10" }).patch).toEqual({
      max_attempts: 5,
      schedule_config: { interval_minutes: 10 },
    });
    expect(buildPatch(t, { ...valuesOf(t), maxAttempts: "five" }).patch).toEqual({ max_attempts: "five" });
  });

  it("refuses metadata that is not a JSON object before sending", () => {
    const t = task();
    for (const text of ["[1]", "{nope", "null", "3"]) {
      const { patch, errors } = buildPatch(t, { ...valuesOf(t), metadata: text });
      expect(errors.metadata).toContain("JSON object");
      expect(patch.metadata).toBeUndefined();
    }
    expect(buildPatch(t, { ...valuesOf(t), metadata: '{"team": "dev"}' }).patch).toEqual({ metadata: { team: "dev" } });
  });

  it("lets a once task change its title and metadata only", () => {
    const t = task({ pattern: "once", schedule_config: null, next_run_at: null });
    expect([...editableFields(t)].sort()).toEqual(["metadata", "title"]);
    const values = { ...valuesOf(t), title: "renamed", query: "other", maxAttempts: "9", every: "5" };
    expect(buildPatch(t, values).patch).toEqual({ title: "renamed" });
  });

  it("fills the form from a daily schedule and sends If-Match with the version", () => {
    const t = task({ schedule_config: { daily_time: "08:30", timezone: "America/New_York" } });
    const values = valuesOf(t);
    expect([values.kind, values.daily, values.timezone]).toEqual(["daily", "08:30", "America/New_York"]);
    expect(buildPatch(t, values).patch).toEqual({});
    expect(ifMatch(t)).toBe('"4"');
  });
});
