// Dates, durations and schedules in words, in the browser's time zone.

import type { Run, ScheduleConfig, Task } from "./api";

export const browserTimeZone = (): string => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
};

export function timeZones(): string[] {
  let zones: string[] = [];
  try {
    const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
    zones = intl.supportedValuesOf ? intl.supportedValuesOf("timeZone") : [];
  } catch {
    zones = [];
  }
  const set = new Set(zones);
  set.add("UTC");
  set.add(browserTimeZone());
  return [...set].sort();
}

function toDate(value: string | null | undefined): Date | null {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function formatDateTime(value: string | null | undefined): string {
  const date = toDate(value);
  return date ? dateTime.format(date) : "—";
}

/** Today's times as a clock time, others with their date. */
export function formatShort(value: string | null | undefined): string {
  const date = toDate(value);
  if (!date) return "—";
  const now = new Date();
  if (date.toDateString() === now.toDateString()) return timeOnly.format(date);
  return dateTime.format(date);
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** "in 5 minutes", "2 hours ago". */
export function formatRelative(value: string | null | undefined, now = Date.now()): string {
  const date = toDate(value);
  if (!date) return "—";
  const seconds = Math.round((date.getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return seconds > 5 ? "in a few seconds" : "just now";
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

export function formatDuration(start: string | null, end: string | null): string {
  const a = toDate(start);
  const b = toDate(end);
  if (!a || !b) return "—";
  return formatMs(b.getTime() - a.getTime());
}

/** A duration in milliseconds in words: "850 ms", "12.5 s", "3 min 4 s". */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

export function scheduleText(config: ScheduleConfig | null | undefined): string {
  if (!config) return "";
  const zone = config.timezone ? ` (${config.timezone})` : "";
  if (config.interval_minutes) {
    const n = config.interval_minutes;
    if (n % 1440 === 0) return n === 1440 ? "every day" : `every ${n / 1440} days`;
    if (n % 60 === 0) return n === 60 ? "every hour" : `every ${n / 60} hours`;
    return n === 1 ? "every minute" : `every ${n} minutes`;
  }
  if (config.daily_time) return `daily at ${config.daily_time}${zone}`;
  if (config.cron) return `cron ${config.cron}${zone}`;
  return "";
}

export function patternText(task: Task): string {
  if (task.pattern !== "recurring") return "once";
  return scheduleText(task.schedule_config) || "recurring";
}

/** "waiting_input" → "Waiting input". */
export function statusLabel(status: string): string {
  const words = status.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * A time in a named zone with the zone's name ("22:00 GMT+9"), and, when the browser is
 * elsewhere, the browser's own time too ("14:00 your time"). Today's times show no date.
 */
export function formatInZone(value: string | null | undefined, zone: string | null | undefined): string {
  const date = toDate(value);
  if (!date) return "—";
  const own = browserTimeZone();
  const target = zone || own;
  const sameDay = (z: string) =>
    new Intl.DateTimeFormat("en-CA", { timeZone: z, dateStyle: "short" }).format(date) ===
    new Intl.DateTimeFormat("en-CA", { timeZone: z, dateStyle: "short" }).format(new Date());
  const fmt = (z: string) => {
    try {
      return new Intl.DateTimeFormat(undefined, {
        timeZone: z,
        ...(sameDay(z) ? {} : { month: "short", day: "numeric" }),
        hour: "2-digit",
        minute: "2-digit",
        timeZoneName: "short",
      }).format(date);
    } catch {
      return dateTime.format(date);
    }
  };
  const there = `${fmt(target)}${zone ? ` (${zone})` : ""}`;
  if (!zone || zone === own) return there;
  return `${there} · ${fmt(own)} your time`;
}

/** A finished task's or run's duration, "—" while it goes on. */
export function tookText(start: string | null, end: string | null): string {
  return start && end ? formatDuration(start, end) : "—";
}

/** The time a task spent running, in ms: the sum of its finished runs' own times. A run cut
 * short by a crash or an outage is left out: another process closed it (`closed_by`) when it
 * noticed, so its time would include the downtime. A run its own server closed as it stopped
 * gracefully counts (it ended at the stop); runs still going do not. */
export function runTimeMs(runs: readonly Pick<Run, "status" | "started_at" | "finished_at" | "closed_by">[]): number {
  let total = 0;
  for (const run of runs) {
    if (!run.started_at || !run.finished_at) continue;
    if (run.status === "interrupted" && run.closed_by) continue;
    total += Math.max(0, Date.parse(run.finished_at) - Date.parse(run.started_at));
  }
  return total;
}

/** A fire time as the schedule's zone and UTC show it: ["Tue 1 Dec, 09:00", "08:00 UTC"]. */
export function fireTimeParts(at: string, zone: string): [string, string] {
  const date = toDate(at);
  if (!date) return ["—", "—"];
  const show = (timeZone: string, withDay: boolean) => {
    try {
      return new Intl.DateTimeFormat("en-GB", {
        timeZone,
        ...(withDay ? { weekday: "short", day: "numeric", month: "short" } : {}),
        hour: "2-digit",
        minute: "2-digit",
      }).format(date);
    } catch {
      return dateTime.format(date);
    }
  };
  return [show(zone, true), `${show("UTC", zone !== "UTC" && zone !== "Etc/UTC")} UTC`];
}
