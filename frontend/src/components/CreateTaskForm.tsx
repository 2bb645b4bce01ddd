import { useEffect, useId, useMemo, useRef, useState, type FormEvent } from "react";
import { api, ApiError, type Agent, type CreateTaskBody } from "../api";
import { browserTimeZone, timeZones } from "../format";
import { useRefresh } from "../hooks";
import { navigate, taskHref } from "../route";

interface Props {
  agents: Agent[];
  agentsError: string | null;
  /** A task whose fields fill the form (Clone). */
  cloneOf?: string | null;
}

type Errors = Record<string, string>;

// The form's fields, as the API names them; longest first for matching words in a message.
const FIELDS = [
  "schedule_config.interval_minutes",
  "schedule_config.daily_time",
  "schedule_config.cron",
  "schedule_config.timezone",
  "schedule_config",
  "run_immediately",
  "run_timeout_seconds",
  "max_attempts",
  "agent_name",
  "pattern",
  "query",
  "title",
] as const;

const FIELD_ALIASES: [RegExp, string][] = [
  [/\binterval_minutes\b|\binterval\b/i, "schedule_config.interval_minutes"],
  [/\bdaily_time\b|\bdaily time\b/i, "schedule_config.daily_time"],
  [/\bcron\b/i, "schedule_config.cron"],
  [/\btimezone\b|\btime zone\b/i, "schedule_config.timezone"],
  [/\brun_timeout_seconds\b|\btime-out\b/i, "run_timeout_seconds"],
  [/\bmax_attempts\b/i, "max_attempts"],
  [/\bagent_name\b|\bagent\b/i, "agent_name"],
  [/\bschedule_config\b|\bschedule\b/i, "schedule_config"],
  [/\bpattern\b/i, "pattern"],
  [/\bquery\b/i, "query"],
  [/\btitle\b/i, "title"],
];

/** Which form field an API field name (or, failing that, a message) is about; "" for none. */
export function fieldFor(field: string, message = ""): string {
  const name = field.replace(/^body\./, "");
  if ((FIELDS as readonly string[]).includes(name)) return name;
  const tail = name.split(".").pop() ?? "";
  const byTail = FIELDS.find((f) => f.endsWith(`.${tail}`) || f === tail);
  if (tail && byTail) return byTail;
  for (const [pattern, target] of FIELD_ALIASES) if (name && pattern.test(name)) return target;
  for (const [pattern, target] of FIELD_ALIASES) if (pattern.test(message)) return target;
  return "";
}

/** "schedule_config.timezone: unknown time zone" → "unknown time zone", shown under that field. */
function withoutFieldPrefix(message: string, field: string): string {
  const tail = field.split(".").pop() ?? field;
  for (const prefix of [field, `body.${field}`, tail]) {
    if (message.toLowerCase().startsWith(`${prefix.toLowerCase()}:`)) {
      const rest = message.slice(prefix.length + 1).trim();
      return rest ? rest.charAt(0).toUpperCase() + rest.slice(1) : message;
    }
  }
  return message;
}

// The API's validation wording (pydantic's), said the way a person would.
const FRIENDLY: [RegExp, (m: RegExpMatchArray) => string][] = [
  [/valid integer, got a number with a fractional part/i, () => "Enter a whole number (no decimals)."],
  [/valid integer/i, () => "Enter a whole number."],
  [/valid number/i, () => "Enter a number."],
  [/greater than or equal to (\d+)/i, (m) => `Enter ${m[1]} or more.`],
  [/less than or equal to (\d+)/i, (m) => `Enter ${m[1]} or less.`],
  [/greater than (\d+)/i, (m) => `Enter more than ${m[1]}.`],
  [/at least (\d+) characters?/i, () => "This cannot be empty."],
  [/field required|missing/i, () => "This is needed."],
  [/string should have at most (\d+) characters/i, (m) => `Keep it to ${m[1]} characters or fewer.`],
  [/input should be 'once' or 'recurring'/i, () => "Choose once or recurring."],
];

export function friendly(message: string): string {
  for (const [pattern, say] of FRIENDLY) {
    const match = pattern.exec(message);
    if (match) return say(match);
  }
  return message.replace(/^(Value error|Assertion failed),\s*/i, "");
}

/** A zone the browser knows that differs from `text` only in case ("europe/berlin"). */
export function zoneSuggestion(text: string, zones: string[]): string | null {
  const wanted = text.trim().toLowerCase();
  if (!wanted || zones.includes(text.trim())) return null;
  return zones.find((z) => z.toLowerCase() === wanted) ?? zones.find((z) => z.toLowerCase().endsWith(`/${wanted}`)) ?? null;
}

function errorsFrom(err: unknown): { fields: Errors; top: string | null } {
  if (!(err instanceof ApiError)) return { fields: {}, top: "Something went wrong. Try again." };
  if (err.isNetwork) return { fields: {}, top: err.message };
  const fields: Errors = {};
  const loose: string[] = [];
  for (const { field, message } of err.fieldErrors) {
    const target = fieldFor(field, message);
    const text = friendly(target ? withoutFieldPrefix(message, target) : message);
    if (target) fields[target] = fields[target] ? `${fields[target]} ${text}` : text;
    else loose.push(field ? `${field}: ${message}` : message);
  }
  if (err.fieldErrors.length === 0) {
    const target = err.status === 400 || err.status === 422 ? fieldFor("", err.message) : "";
    if (target) fields[target] = friendly(withoutFieldPrefix(err.message, target));
    else loose.push(err.message);
  }
  return { fields, top: loose.length ? loose.join(" ") : null };
}

function FieldError({ field, errors }: { field: string; errors: Errors }) {
  const message = errors[field];
  if (!message) return null;
  return (
    <p className="field-error" id={`err-${field}`} data-testid={`field-error-${field}`} role="alert">
      {message}
    </p>
  );
}

const describedBy = (field: string, errors: Errors, extra?: string) =>
  [errors[field] ? `err-${field}` : "", extra ?? ""].filter(Boolean).join(" ") || undefined;

/** The form that creates a task: POST /api/v1/tasks. */
export function CreateTaskForm({ agents, agentsError, cloneOf }: Props) {
  const { bump } = useRefresh();
  const uid = useId();
  const zones = useMemo(timeZones, []);
  const [agentName, setAgentName] = useState("");
  const [query, setQuery] = useState("");
  const [title, setTitle] = useState("");
  const [pattern, setPattern] = useState<"once" | "recurring">("once");
  const [scheduleKind, setScheduleKind] = useState<"interval" | "daily" | "cron">("interval");
  const [interval, setIntervalText] = useState("60");
  const [dailyTime, setDailyTime] = useState("09:00");
  const [cron, setCron] = useState("0 9 * * MON-FRI");
  const [timezone, setTimezone] = useState(browserTimeZone);
  const [runImmediately, setRunImmediately] = useState(true);
  const [maxAttempts, setMaxAttempts] = useState("3");
  const [runTimeout, setRunTimeout] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [topError, setTopError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [advancedOpen, setAdvancedOpen] = useState(false);
  const [cloneNote, setCloneNote] = useState<string | null>(null);
  const focusField = useRef<string | null>(null);
  const zoneHint = pattern === "recurring" ? zoneSuggestion(timezone, zones) : null;

  // Clone: the fields of another task.
  useEffect(() => {
    if (!cloneOf) return;
    const controller = new AbortController();
    api
      .getTask(cloneOf, controller.signal)
      .then((task) => {
        setAgentName(task.agent_name);
        setQuery(task.query);
        setTitle(task.title ? `${task.title} (copy)` : "");
        setPattern(task.pattern);
        setMaxAttempts(String(task.max_attempts));
        setRunTimeout(task.run_timeout_seconds ? String(task.run_timeout_seconds) : "");
        const schedule = task.schedule_config;
        if (schedule?.interval_minutes) {
          setScheduleKind("interval");
          setIntervalText(String(schedule.interval_minutes));
        } else if (schedule?.daily_time) {
          setScheduleKind("daily");
          setDailyTime(schedule.daily_time);
        } else if (schedule?.cron) {
          setScheduleKind("cron");
          setCron(schedule.cron);
        }
        if (schedule?.timezone) setTimezone(schedule.timezone);
        setCloneNote(`A copy of “${task.title || task.query.slice(0, 60)}”: change what you need, then create it.`);
      })
      .catch(() => setCloneNote("The task to copy could not be loaded: the form starts empty."));
    return () => controller.abort();
  }, [cloneOf]);

  // After an error, the first field at fault takes the focus (once it is shown).
  useEffect(() => {
    const field = focusField.current;
    if (!field) return;
    const element = document.getElementById(`${uid}-${field}`) ?? document.getElementById(`${uid}-form-error`);
    if (element) {
      element.focus();
      focusField.current = null;
    }
  });

  const chosen = agentName || agents[0]?.name || "";
  const agent = agents.find((a) => a.name === chosen);

  const clear = (field: string) => {
    if (errors[field]) setErrors(({ [field]: _, ...rest }) => rest);
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    const body: CreateTaskBody = { query, agent_name: chosen, pattern };
    if (title.trim()) body.title = title.trim();
    const attempts = Number(maxAttempts);
    if (maxAttempts.trim() && Number.isFinite(attempts)) body.max_attempts = attempts;
    const seconds = Number(runTimeout);
    if (runTimeout.trim() && Number.isFinite(seconds)) body.run_timeout_seconds = seconds;
    if (pattern === "recurring") {
      const zone = timezone.trim() || null;
      body.schedule_config =
        scheduleKind === "interval"
          ? { interval_minutes: interval.trim() === "" ? null : Number(interval), timezone: zone }
          : scheduleKind === "daily"
            ? { daily_time: dailyTime, timezone: zone }
            : { cron: cron.trim(), timezone: zone };
      body.run_immediately = runImmediately;
    }
    setBusy(true);
    setErrors({});
    setTopError(null);
    try {
      const task = await api.createTask(body);
      bump();
      navigate(taskHref(task.task_id));
    } catch (err) {
      const { fields, top } = errorsFrom(err);
      setErrors(fields);
      setTopError(top);
      const first = FIELDS.find((f) => fields[f]);
      if (first === "max_attempts" || first === "run_timeout_seconds") setAdvancedOpen(true);
      focusField.current = first ?? (top ? "form-error" : null);
    } finally {
      setBusy(false);
    }
  };

  const id = (field: string) => `${uid}-${field}`;

  return (
    <form className="card create-form" onSubmit={submit} noValidate aria-labelledby={`${uid}-h`} data-testid="create-form">
      <h2 id={`${uid}-h`}>New task</h2>
      {cloneNote && (
        <p className="notice notice-quiet" data-testid="clone-note">
          {cloneNote}
        </p>
      )}
      {topError && (
        <p className="notice notice-error" role="alert" data-testid="form-error" id={`${uid}-form-error`} tabIndex={-1}>
          {topError}
        </p>
      )}

      <div className="field">
        <label htmlFor={id("agent_name")}>Agent</label>
        <select
          id={id("agent_name")}
          value={chosen}
          onChange={(e) => {
            setAgentName(e.target.value);
            clear("agent_name");
          }}
          aria-invalid={!!errors.agent_name}
          aria-describedby={describedBy("agent_name", errors, `${uid}-agent-desc`)}
          data-testid="agent-select"
        >
          {agents.length === 0 && <option value="">{agentsError ? "Agents unavailable" : "Loading agents…"}</option>}
          {agents.map((a) => (
            <option key={a.name} value={a.name}>
              {a.name}
              {a.reachable ? "" : " (unreachable)"}
            </option>
          ))}
        </select>
        <p className="hint" id={`${uid}-agent-desc`} data-testid="agent-description">
          {agent ? agent.description || "No description." : agentsError ?? ""}
          {agent && !agent.reachable && <span className="warn"> This agent cannot be reached right now.</span>}
        </p>
        <FieldError field="agent_name" errors={errors} />
      </div>

      <div className="field">
        <label htmlFor={id("query")}>Query</label>
        <textarea
          id={id("query")}
          rows={4}
          value={query}
          placeholder="What should the agent do?"
          onChange={(e) => {
            setQuery(e.target.value);
            clear("query");
          }}
          aria-required="true"
          aria-invalid={!!errors.query}
          aria-describedby={describedBy("query", errors)}
          data-testid="query-input"
        />
        <FieldError field="query" errors={errors} />
      </div>

      <div className="field">
        <label htmlFor={id("title")}>
          Title <span className="optional">optional</span>
        </label>
        <input
          id={id("title")}
          type="text"
          value={title}
          onChange={(e) => {
            setTitle(e.target.value);
            clear("title");
          }}
          aria-invalid={!!errors.title}
          aria-describedby={describedBy("title", errors)}
          data-testid="title-input"
        />
        <FieldError field="title" errors={errors} />
      </div>

      <fieldset className="field">
        <legend>When</legend>
        <div className="segmented">
          <label>
            <input
              type="radio"
              name={id("pattern")}
              id={id("pattern")}
              value="once"
              checked={pattern === "once"}
              onChange={() => setPattern("once")}
              data-testid="pattern-once"
            />
            <span>Once</span>
          </label>
          <label>
            <input
              type="radio"
              name={id("pattern")}
              value="recurring"
              checked={pattern === "recurring"}
              onChange={() => setPattern("recurring")}
              data-testid="pattern-recurring"
            />
            <span>Recurring</span>
          </label>
        </div>
        <FieldError field="pattern" errors={errors} />
      </fieldset>

      {pattern === "recurring" && (
        <fieldset className="field schedule" data-testid="schedule-fields">
          <legend>Schedule</legend>
          <div className="schedule-row">
            <label className="inline">
              <input
                type="radio"
                name={id("kind")}
                checked={scheduleKind === "interval"}
                onChange={() => setScheduleKind("interval")}
                data-testid="schedule-interval"
              />
              <span>Every</span>
            </label>
            <input
              id={id("schedule_config.interval_minutes")}
              className="narrow"
              type="number"
              min={1}
              inputMode="numeric"
              value={interval}
              disabled={scheduleKind !== "interval"}
              onChange={(e) => {
                setIntervalText(e.target.value);
                clear("schedule_config.interval_minutes");
              }}
              aria-label="Interval in minutes"
              aria-invalid={!!errors["schedule_config.interval_minutes"]}
              aria-describedby={describedBy("schedule_config.interval_minutes", errors)}
              data-testid="interval-input"
            />
            <span>minutes</span>
          </div>
          <FieldError field="schedule_config.interval_minutes" errors={errors} />
          <div className="schedule-row">
            <label className="inline">
              <input
                type="radio"
                name={id("kind")}
                checked={scheduleKind === "daily"}
                onChange={() => setScheduleKind("daily")}
                data-testid="schedule-daily"
              />
              <span>Daily at</span>
            </label>
            <input
              id={id("schedule_config.daily_time")}
              className="narrow"
              type="time"
              value={dailyTime}
              disabled={scheduleKind !== "daily"}
              onChange={(e) => {
                setDailyTime(e.target.value);
                clear("schedule_config.daily_time");
              }}
              aria-label="Daily time (HH:MM)"
              aria-invalid={!!errors["schedule_config.daily_time"]}
              aria-describedby={describedBy("schedule_config.daily_time", errors)}
              data-testid="daily-time-input"
            />
          </div>
          <FieldError field="schedule_config.daily_time" errors={errors} />
          <div className="schedule-row">
            <label className="inline">
              <input
                type="radio"
                name={id("kind")}
                checked={scheduleKind === "cron"}
                onChange={() => setScheduleKind("cron")}
                data-testid="schedule-cron"
              />
              <span>Cron</span>
            </label>
            <input
              id={id("schedule_config.cron")}
              type="text"
              value={cron}
              autoComplete="off"
              spellCheck={false}
              disabled={scheduleKind !== "cron"}
              onChange={(e) => {
                setCron(e.target.value);
                clear("schedule_config.cron");
              }}
              aria-label="Cron expression (minute hour day month weekday)"
              aria-invalid={!!errors["schedule_config.cron"]}
              aria-describedby={describedBy("schedule_config.cron", errors, `${uid}-cron-hint`)}
              data-testid="cron-input"
            />
          </div>
          {scheduleKind === "cron" && (
            <p className="hint" id={`${uid}-cron-hint`}>
              Five fields: minute, hour, day of month, month, day of week (“0 9 * * MON-FRI”), or
              @hourly, @daily, @weekly, @monthly, @yearly.
            </p>
          )}
          <FieldError field="schedule_config.cron" errors={errors} />
          <div className="field nested">
            <label htmlFor={id("schedule_config.timezone")}>Time zone</label>
            <input
              id={id("schedule_config.timezone")}
              type="text"
              list={`${uid}-zones`}
              value={timezone}
              autoComplete="off"
              spellCheck={false}
              onChange={(e) => {
                setTimezone(e.target.value);
                clear("schedule_config.timezone");
              }}
              aria-invalid={!!errors["schedule_config.timezone"]}
              aria-describedby={describedBy("schedule_config.timezone", errors)}
              data-testid="timezone-input"
            />
            <datalist id={`${uid}-zones`}>
              {zones.map((z) => (
                <option key={z} value={z} />
              ))}
            </datalist>
            {zoneHint && (
              <p className="hint" data-testid="zone-suggestion">
                Did you mean{" "}
                <button
                  type="button"
                  className="link-button"
                  onClick={() => {
                    setTimezone(zoneHint);
                    clear("schedule_config.timezone");
                    document.getElementById(id("schedule_config.timezone"))?.focus();
                  }}
                  data-testid="zone-suggestion-apply"
                >
                  {zoneHint}
                </button>
                ? Zone names are case-sensitive.
              </p>
            )}
            <FieldError field="schedule_config.timezone" errors={errors} />
          </div>
          <FieldError field="schedule_config" errors={errors} />
          <label className="inline check">
            <input
              type="checkbox"
              checked={runImmediately}
              onChange={(e) => setRunImmediately(e.target.checked)}
              data-testid="run-immediately"
            />
            <span>Run once right away (otherwise wait for the first scheduled time)</span>
          </label>
          <FieldError field="run_immediately" errors={errors} />
        </fieldset>
      )}

      <details
        className="advanced"
        open={advancedOpen}
        onToggle={(e) => setAdvancedOpen((e.currentTarget as HTMLDetailsElement).open)}
        data-testid="advanced"
      >
        <summary>Advanced</summary>
        <div className="field">
          <label htmlFor={id("max_attempts")}>Attempts before giving up</label>
          <input
            id={id("max_attempts")}
            className="narrow"
            type="number"
            min={1}
            max={20}
            value={maxAttempts}
            onChange={(e) => {
              setMaxAttempts(e.target.value);
              clear("max_attempts");
            }}
            aria-invalid={!!errors.max_attempts}
            aria-describedby={describedBy("max_attempts", errors)}
            data-testid="max-attempts-input"
          />
          <FieldError field="max_attempts" errors={errors} />
        </div>
        <div className="field">
          <label htmlFor={id("run_timeout_seconds")}>Run time-out in seconds (empty: none)</label>
          <input
            id={id("run_timeout_seconds")}
            className="narrow"
            type="number"
            min={1}
            value={runTimeout}
            onChange={(e) => {
              setRunTimeout(e.target.value);
              clear("run_timeout_seconds");
            }}
            aria-invalid={!!errors.run_timeout_seconds}
            aria-describedby={describedBy("run_timeout_seconds", errors)}
            data-testid="run-timeout-input"
          />
          <FieldError field="run_timeout_seconds" errors={errors} />
        </div>
      </details>

      <div className="form-actions">
        <button type="submit" className="button button-primary" disabled={busy} data-testid="create-submit">
          {busy ? "Creating…" : "Create task"}
        </button>
      </div>
    </form>
  );
}
