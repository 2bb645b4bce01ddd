import { useId, useState, type FormEvent } from "react";
import { api, ApiError, type Task } from "../api";
import { buildPatch, editableFields, ifMatch, valuesOf, type EditValues, type ScheduleKind } from "../editing";
import { timeZones } from "../format";

interface Props {
  task: Task;
  onSaved: (task: Task) => void;
  onClose: () => void;
}

type Errors = Record<string, string>;

/** Which of the form's fields an API field name is about ("schedule_config.cron" → "schedule"). */
function slotFor(field: string): string {
  const name = field.replace(/^body\./, "");
  if (name.startsWith("schedule_config")) return "schedule";
  if (["title", "query", "max_attempts", "metadata"].includes(name)) return name;
  return "";
}

function errorsFrom(err: unknown): { fields: Errors; top: string | null } {
  if (!(err instanceof ApiError)) return { fields: {}, top: "The edit failed. Try again." };
  if (err.status === 409) return { fields: {}, top: `${err.message}` };
  const fields: Errors = {};
  const loose: string[] = [];
  for (const { field, message } of err.fieldErrors) {
    const slot = slotFor(field);
    if (slot) fields[slot] = fields[slot] ? `${fields[slot]} ${message}` : `${field}: ${message}`;
    else loose.push(field ? `${field}: ${message}` : message);
  }
  if (err.fieldErrors.length === 0) loose.push(err.message);
  return { fields, top: loose.length ? loose.join(" ") : null };
}

function FieldError({ slot, errors }: { slot: string; errors: Errors }) {
  if (!errors[slot]) return null;
  return (
    <p className="field-error" id={`edit-err-${slot}`} data-testid={`edit-error-${slot}`} role="alert">
      {errors[slot]}
    </p>
  );
}

/** The Edit form of a task's page: PATCH /api/v1/tasks/{id} with what changed, If-Match its version. */
export function EditTaskForm({ task: current, onSaved, onClose }: Props) {
  const id = useId();
  // The task as the form was filled from it: the patch is what changed since, and If-Match its
  // version, so an edit made meanwhile elsewhere is a 409, never silently overwritten.
  const [task] = useState(current);
  const [values, setValues] = useState<EditValues>(() => valuesOf(task));
  const [errors, setErrors] = useState<Errors>({});
  const [top, setTop] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const editable = editableFields(task);
  const set = (name: keyof EditValues) => (e: { target: { value: string } }) =>
    setValues((v) => ({ ...v, [name]: e.target.value }));
  const described = (slot: string) => (errors[slot] ? `edit-err-${slot}` : undefined);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const { patch, errors: local } = buildPatch(task, values);
    setTop(null);
    if (Object.keys(local).length) {
      setErrors(local);
      return;
    }
    setErrors({});
    if (Object.keys(patch).length === 0) {
      setTop("Nothing changed.");
      return;
    }
    setBusy(true);
    try {
      onSaved(await api.editTask(task.task_id, patch, ifMatch(task)));
    } catch (err) {
      const found = errorsFrom(err);
      setErrors(found.fields);
      setTop(found.top);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="edit-form" onSubmit={submit} data-testid="edit-form" aria-label="Edit the task" noValidate>
      <div className="field">
        <label htmlFor={`${id}-title`}>Title</label>
        <input id={`${id}-title`} value={values.title} onChange={set("title")} aria-describedby={described("title")} data-testid="edit-title" />
        <FieldError slot="title" errors={errors} />
      </div>
      {editable.has("query") && (
        <div className="field">
          <label htmlFor={`${id}-query`}>Query</label>
          <textarea id={`${id}-query`} rows={3} value={values.query} onChange={set("query")} aria-describedby={described("query")} data-testid="edit-query" />
          <FieldError slot="query" errors={errors} />
        </div>
      )}
      {editable.has("schedule_config") && (
        <fieldset className="field schedule" data-testid="edit-schedule">
          <legend>Schedule</legend>
          <div className="button-row" role="radiogroup" aria-label="Kind of schedule">
            {(["every", "daily", "cron"] as ScheduleKind[]).map((kind) => (
              <label key={kind} className="inline">
                <input
                  type="radio"
                  name={`${id}-kind`}
                  checked={values.kind === kind}
                  onChange={() => setValues((v) => ({ ...v, kind }))}
                  data-testid={`edit-kind-${kind}`}
                />{" "}
                {kind === "every" ? "Every N minutes" : kind === "daily" ? "Daily at" : "Cron"}
              </label>
            ))}
          </div>
          {values.kind === "every" && (
            <input aria-label="Minutes" inputMode="numeric" value={values.every} onChange={set("every")} aria-describedby={described("schedule")} data-testid="edit-every" />
          )}
          {values.kind === "daily" && (
            <input aria-label="Time (HH:MM)" placeholder="09:30" value={values.daily} onChange={set("daily")} aria-describedby={described("schedule")} data-testid="edit-daily" />
          )}
          {values.kind === "cron" && (
            <input aria-label="Cron expression" placeholder="0 9 * * MON-FRI" value={values.cron} onChange={set("cron")} aria-describedby={described("schedule")} data-testid="edit-cron" />
          )}
          <input aria-label="Time zone" list={`${id}-zones`} placeholder="Time zone (the server's if empty)" value={values.timezone} onChange={set("timezone")} data-testid="edit-timezone" />
          <datalist id={`${id}-zones`}>
            {timeZones().map((zone) => (
              <option key={zone} value={zone} />
            ))}
          </datalist>
          <p className="hint">A new schedule starts now: its first run is its first time after you save.</p>
          <FieldError slot="schedule" errors={errors} />
        </fieldset>
      )}
      {editable.has("max_attempts") && (
        <div className="field">
          <label htmlFor={`${id}-attempts`}>Attempts per run</label>
          <input id={`${id}-attempts`} inputMode="numeric" value={values.maxAttempts} onChange={set("maxAttempts")} aria-describedby={described("max_attempts")} data-testid="edit-max-attempts" />
          <FieldError slot="max_attempts" errors={errors} />
        </div>
      )}
      <div className="field">
        <label htmlFor={`${id}-metadata`}>Metadata (JSON)</label>
        <textarea id={`${id}-metadata`} rows={3} value={values.metadata} onChange={set("metadata")} aria-describedby={described("metadata")} data-testid="edit-metadata" />
        <FieldError slot="metadata" errors={errors} />
      </div>
      {task.pattern === "once" && <p className="hint">A task that runs once can change its title and metadata only.</p>}
      <div className="button-row">
        <button type="submit" className="button button-primary" disabled={busy} data-testid="edit-save">
          {busy ? "Saving…" : "Save"}
        </button>
        <button type="button" className="button" onClick={onClose} data-testid="edit-close">
          Close
        </button>
      </div>
      <div aria-live="polite">
        {top && (
          <p className="notice notice-error" role="alert" data-testid="edit-error">
            {top}
          </p>
        )}
      </div>
    </form>
  );
}
