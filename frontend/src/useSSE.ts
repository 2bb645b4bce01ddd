// A fetch-based Server-Sent Events hook for GET /tasks/{id}/events.
//
// Native EventSource cannot send an Authorization header, so this reads the
// stream with fetch + ReadableStream. After a dropped connection it reconnects
// with back-off, asking for the events after the last sequence number it saw
// (`?after=<seq>` and `Last-Event-ID`), and drops any message whose seq it has
// already delivered: no gap, no duplicate.

import { useEffect, useRef, useState } from "react";
import { authHeaders, notifyUnauthorized, type TaskEvent } from "./api";
import { reportReached, reportUnreachable } from "./connectivity";

export type StreamState =
  | "idle" // no url
  | "connecting" // first connection
  | "open" // receiving
  | "reconnecting" // the connection dropped; trying again
  | "ended" // the server closed the stream after `done`
  | "error"; // gave up (404, 401, …)

export interface SSEOptions {
  /** Called once per new message, in seq order. */
  onEvent: (event: TaskEvent) => void;
  /** Called after each read of the connection (a batch of messages): a page draws then. */
  onBatch?: () => void;
  /** Pass false to hold the connection closed. */
  enabled?: boolean;
  /**
   * Asked when the server closes the stream after `done`: answer true when the
   * stream is really over (the task is finished), false to reconnect (a
   * recurring task's `done` ends one run, and a restart may cut the stream).
   * Without it, a close after `done` ends the stream.
   */
  isFinal?: () => Promise<boolean>;
}

export interface SSEStatus {
  state: StreamState;
  lastSeq: number | null;
  error: string | null;
}

export interface RawMessage {
  id: string | null;
  event: string | null;
  data: string;
}

/** Splits an SSE byte stream into messages; keeps the incomplete tail between chunks. */
export class SSEParser {
  private buffer = "";
  private id: string | null = null;
  private event: string | null = null;
  private data: string[] = [];

  /** The messages `text` completes, in order (each line is cut once: linear in the input). */
  push(text: string): RawMessage[] {
    const buffer = this.buffer + text;
    const out: RawMessage[] = [];
    let start = 0;
    for (;;) {
      let end = start;
      while (end < buffer.length && buffer.charCodeAt(end) !== 10 && buffer.charCodeAt(end) !== 13) end += 1;
      if (end >= buffer.length) break;
      let width = 1;
      if (buffer.charCodeAt(end) === 13) {
        // A lone "\r" at the very end may be the first half of "\r\n": wait for more.
        if (end === buffer.length - 1) break;
        if (buffer.charCodeAt(end + 1) === 10) width = 2;
      }
      const message = this.line(buffer.slice(start, end));
      if (message) out.push(message);
      start = end + width;
    }
    this.buffer = buffer.slice(start);
    return out;
  }

  private line(line: string): RawMessage | null {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = null;
        return null;
      }
      const message = { id: this.id, event: this.event, data: this.data.join("\n") };
      this.data = [];
      this.event = null;
      return message;
    }
    if (line.startsWith(":")) return null; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "id") this.id = value;
    else if (field === "event") this.event = value;
    return null;
  }
}

export function toTaskEvent(raw: RawMessage): TaskEvent | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.data);
  } catch {
    return null;
  }
  if (!parsed || typeof parsed !== "object") return null;
  const message = parsed as Partial<TaskEvent>;
  const seq = typeof message.seq === "number" ? message.seq : Number(raw.id);
  if (!Number.isFinite(seq)) return null;
  const event = message.event ?? raw.event ?? "message";
  if (!message.data || typeof message.data !== "object") return null;
  return { seq, event, data: message.data, created_at: message.created_at ?? "" };
}

const RETRY_DELAYS_MS = [300, 1000, 2000, 3000, 5000];

function withAfter(url: string, after: number | null): string {
  if (after === null) return url;
  return `${url}${url.includes("?") ? "&" : "?"}after=${after}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

class FatalStreamError extends Error {}

/**
 * Follows an SSE url until the server ends the stream after `done`.
 * Reconnects after any other ending, resuming after the last seq seen.
 */
export function useSSE(url: string | null, options: SSEOptions): SSEStatus {
  const { enabled = true } = options;
  const onEventRef = useRef(options.onEvent);
  onEventRef.current = options.onEvent;
  const isFinalRef = useRef(options.isFinal);
  isFinalRef.current = options.isFinal;
  const onBatchRef = useRef(options.onBatch);
  onBatchRef.current = options.onBatch;
  const [status, setStatus] = useState<SSEStatus>({ state: "idle", lastSeq: null, error: null });

  useEffect(() => {
    if (!url || !enabled) {
      setStatus({ state: "idle", lastSeq: null, error: null });
      return;
    }
    const controller = new AbortController();
    const { signal } = controller;
    let lastSeq: number | null = null;
    const seen = new Set<number>();
    let failures = 0;
    let lastEvent: string | null = null; // across connections

    // Only a change of state re-renders the page (not every read of the connection).
    const update = (state: StreamState, error: string | null = null) => {
      if (signal.aborted) return;
      setStatus((old) => (old.state === state && old.error === error ? old : { state, lastSeq, error }));
    };

    // Reads one connection; answers true when the stream ended after `done`.
    const readOnce = async (): Promise<boolean> => {
      const headers: Record<string, string> = { Accept: "text/event-stream", ...authHeaders() };
      if (lastSeq !== null) headers["Last-Event-ID"] = String(lastSeq);
      let response: Response;
      try {
        response = await fetch(withAfter(url, lastSeq), { headers, signal, cache: "no-store" });
      } catch (err) {
        if (!signal.aborted) reportUnreachable();
        throw err;
      }
      if (response.status >= 502 && response.status <= 504) reportUnreachable();
      else reportReached();
      if (response.status === 401) {
        notifyUnauthorized();
        throw new FatalStreamError("The server asks for an API key.");
      }
      if (response.status === 404) throw new FatalStreamError("This task does not exist.");
      if (response.status >= 400 && response.status < 500) {
        throw new FatalStreamError(`The stream was refused (${response.status}).`);
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      update("open");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SSEParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const raw of parser.push(value)) {
          const event = toTaskEvent(raw);
          if (!event) continue;
          if (seen.has(event.seq) || (lastSeq !== null && event.seq <= lastSeq)) continue;
          lastEvent = event.event;
          seen.add(event.seq);
          lastSeq = event.seq;
          failures = 0;
          onEventRef.current(event);
        }
        onBatchRef.current?.();
        update("open");
      }
      return lastEvent === "done";
    };

    const run = async () => {
      update("connecting");
      while (!signal.aborted) {
        try {
          const afterDone = await readOnce();
          const isFinal = isFinalRef.current;
          if (afterDone && (!isFinal || (await isFinal()))) {
            update("ended");
            return;
          }
        } catch (err) {
          if (signal.aborted) return;
          if (!(err instanceof FatalStreamError)) reportUnreachable();
          if (err instanceof FatalStreamError) {
            update("error", err.message);
            return;
          }
        }
        if (signal.aborted) return;
        update("reconnecting");
        const delay = RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length - 1)];
        failures += 1;
        await sleep(delay, signal);
      }
    };
    void run();
    return () => controller.abort();
  }, [url, enabled]);

  return status;
}

/**
 * Reads a bounded part of a task's log (a url with `before=`): every event until the server
 * ends the stream. For older runs a page loads on demand.
 */
export async function readEvents(url: string, signal?: AbortSignal): Promise<TaskEvent[]> {
  const headers: Record<string, string> = { Accept: "text/event-stream", ...authHeaders() };
  let response: Response;
  try {
    response = await fetch(url, { headers, signal, cache: "no-store" });
  } catch (err) {
    if (!signal?.aborted) reportUnreachable();
    throw err;
  }
  reportReached();
  if (response.status === 401) notifyUnauthorized();
  if (!response.ok || !response.body) throw new Error(`The older events could not be read (${response.status}).`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SSEParser();
  const out: TaskEvent[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    for (const raw of parser.push(value)) {
      const event = toTaskEvent(raw);
      if (event) out.push(event);
    }
  }
  return out;
}
