import { describe, expect, it } from "vitest";
import { SSEParser, toTaskEvent } from "../useSSE";

const frame = (seq: number, event: string, content: string) =>
  `id: ${seq}\r\ndata: ${JSON.stringify({ seq, event, data: { item_id: "m", role: "agent", payload: { content } }, created_at: "" })}\r\n\r\n`;

describe("SSEParser", () => {
  it("splits messages on every line ending and keeps ids and event names", () => {
    const parser = new SSEParser();
    const out = parser.push("id: 1\nevent: a\ndata: x\n\nid: 2\rdata: y\r\rid: 3\r\ndata: z\r\n\r\n");
    expect(out).toEqual([
      { id: "1", event: "a", data: "x" },
      { id: "2", event: null, data: "y" },
      { id: "3", event: null, data: "z" },
    ]);
  });

  it("joins a message cut anywhere, even between \\r and \\n", () => {
    const text = frame(1, "message_chunk", "hello ") + frame(2, "message_chunk", "world");
    for (let cut = 0; cut <= text.length; cut += 1) {
      const parser = new SSEParser();
      const out = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
      expect(out.map((m) => toTaskEvent(m)?.seq)).toEqual([1, 2]);
    }
  });

  it("ignores comments (keep-alives) and joins multi-line data", () => {
    const parser = new SSEParser();
    expect(parser.push(": ping - 2026\r\n\r\ndata: a\ndata: b\n\n")).toEqual([{ id: null, event: null, data: "a\nb" }]);
  });

  it("reads a 20,000-message stream in one push in linear time", () => {
    const text = Array.from({ length: 20_000 }, (_, i) => frame(i + 1, "message_chunk", `tick ${i + 1} `)).join("");
    const parser = new SSEParser();
    const out = parser.push(text);
    expect(out).toHaveLength(20_000);
    expect(toTaskEvent(out[19_999])?.seq).toBe(20_000);
  });

  it("drops a message whose data is not an event", () => {
    expect(toTaskEvent({ id: "1", event: null, data: "not json" })).toBeNull();
    expect(toTaskEvent({ id: "x", event: null, data: "{}" })).toBeNull();
  });
});
