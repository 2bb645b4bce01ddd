import { describe, expect, it } from "vitest";
import { ApiError } from "../api";
import { createBody, deliveryTone, filterText, formErrors, toggleEventType, webhookState, type Webhook } from "../webhooks";

function hook(fields: Partial<Webhook> = {}): Webhook {
  return {
    webhook_id: "wh_1",
    user_id: "alice",
    url: "https://example.com/hooks",
    event_types: ["*"],
    task_id: null,
    agent_name: null,
    description: "",
    created_at: "2026-11-30T12:00:00+00:00",
    failing_since: null,
    disabled_at: null,
    disabled_reason: null,
    ...fields,
  };
}

describe("toggleEventType", () => {
  it("ticking * keeps only *", () => {
    expect(toggleEventType(["task_failed", "task_completed"], "*", true)).toEqual(["*"]);
  });
  it("ticking an event clears * and keeps the list's order", () => {
    expect(toggleEventType(["*"], "task_failed", true)).toEqual(["task_failed"]);
    expect(toggleEventType(["task_failed"], "task_completed", true)).toEqual(["task_completed", "task_failed"]);
  });
  it("unticking removes it (none left is the API's to refuse)", () => {
    expect(toggleEventType(["task_failed"], "task_failed", false)).toEqual([]);
  });
});

describe("createBody", () => {
  it("trims and leaves out empty optional fields", () => {
    const form = { url: " https://x.test/h ", eventTypes: ["*"], taskId: " ", agentName: "", description: "" };
    expect(createBody(form)).toEqual({ url: "https://x.test/h", event_types: ["*"] });
  });
  it("sends the filters that are set", () => {
    const form = { url: "https://x.test/h", eventTypes: ["task_failed"], taskId: "t1", agentName: "echo", description: "ops" };
    expect(createBody(form)).toEqual({
      url: "https://x.test/h",
      event_types: ["task_failed"],
      task_id: "t1",
      agent_name: "echo",
      description: "ops",
    });
  });
});

describe("formErrors", () => {
  it("puts a field's message beside its field", () => {
    const err = new ApiError(422, "url: not allowed", [{ field: "url", message: "resolves to a loopback address" }]);
    expect(formErrors(err)).toEqual({ fields: { url: "resolves to a loopback address" }, top: null });
  });
  it("maps an indexed location to its field and keeps unknown ones for the form", () => {
    const err = new ApiError(422, "bad", [
      { field: "event_types.0", message: "unknown" },
      { field: "other", message: "odd" },
    ]);
    expect(formErrors(err)).toEqual({ fields: { event_types: "unknown" }, top: "other: odd" });
  });
  it("shows an error without fields for the form", () => {
    expect(formErrors(new ApiError(0, "The server cannot be reached."))).toEqual({
      fields: {},
      top: "The server cannot be reached.",
    });
  });
});

describe("states", () => {
  it("tells enabled, failing and disabled apart", () => {
    expect(webhookState(hook()).label).toBe("enabled");
    expect(webhookState(hook({ failing_since: "2026-11-30T12:00:00+00:00" })).label).toBe("failing");
    expect(webhookState(hook({ failing_since: "x", disabled_at: "y", disabled_reason: "failing for 3 days" }))).toEqual({
      label: "disabled",
      tone: "failed",
      detail: "failing for 3 days",
    });
  });
  it("names delivery badges and filters", () => {
    expect(deliveryTone("delivered")).toBe("badge-completed");
    expect(deliveryTone("sending")).toBe("badge-running");
    expect(filterText(hook())).toBe("all your tasks");
    expect(filterText(hook({ task_id: "t1", agent_name: "echo" }))).toBe("task t1, agent echo");
  });
});
