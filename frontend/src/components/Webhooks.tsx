import { useCallback, useEffect, useId, useRef, useState, type FormEvent } from "react";
import { ApiError } from "../api";
import { formatShort } from "../format";
import {
  ALL_EVENTS,
  createBody,
  deliveryTone,
  EVENT_TYPES,
  filterText,
  formErrors,
  toggleEventType,
  webhookState,
  webhooksApi,
  type Delivery,
  type FormField,
  type Webhook,
} from "../webhooks";

const POLL_MS = 2000;

function messageOf(err: unknown): string {
  return err instanceof ApiError ? err.message : "Something went wrong. Try again.";
}

/** A secret answered this once: shown with a copy button until the reader dismisses it. */
function SecretPanel({ secret, rotated, onDone }: { secret: string; rotated: boolean; onDone: () => void }) {
  const [copied, setCopied] = useState<boolean | null>(null);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => ref.current?.focus(), [secret]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied(true);
    } catch {
      const node = document.getElementById("webhook-secret-value");
      if (node) {
        const range = document.createRange();
        range.selectNodeContents(node);
        window.getSelection()?.removeAllRanges();
        window.getSelection()?.addRange(range);
      }
      setCopied(false);
    }
  };
  return (
    <div className="notice notice-warn webhook-secret" tabIndex={-1} ref={ref} data-testid="webhook-secret-panel" aria-labelledby="webhook-secret-heading">
      <p id="webhook-secret-heading">
        <strong>{rotated ? "The new signing secret" : "The signing secret"}: copy it now, you will not see this again.</strong>
      </p>
      <p className="input-row">
        <code id="webhook-secret-value" data-testid="webhook-secret">
          {secret}
        </code>
        <button type="button" className="button button-quiet" onClick={copy} data-testid="webhook-secret-copy">
          Copy
        </button>
        <button type="button" className="button button-quiet" onClick={onDone} data-testid="webhook-secret-done">
          I have stored it
        </button>
      </p>
      <p className="sr-only" role="status">
        {copied === true ? "Copied." : copied === false ? "Selected: press Ctrl+C to copy." : ""}
      </p>
      {copied === true && <p className="hint">Copied.</p>}
    </div>
  );
}

function CreateWebhookForm({ onCreated }: { onCreated: (hook: Webhook, secret: string) => void }) {
  const uid = useId();
  const [url, setUrl] = useState("");
  const [eventTypes, setEventTypes] = useState<string[]>([ALL_EVENTS]);
  const [taskId, setTaskId] = useState("");
  const [agentName, setAgentName] = useState("");
  const [description, setDescription] = useState("");
  const [errors, setErrors] = useState<Partial<Record<FormField, string>>>({});
  const [top, setTop] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const urlRef = useRef<HTMLInputElement>(null);

  const id = (field: string) => `${uid}-${field}`;
  const describedBy = (field: FormField) => (errors[field] ? `${uid}-err-${field}` : undefined);
  const fieldError = (field: FormField) =>
    errors[field] ? (
      <p className="field-error" id={`${uid}-err-${field}`} data-testid={`webhook-error-${field}`} role="alert">
        {errors[field]}
      </p>
    ) : null;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setTop(null);
    setErrors({});
    try {
      const made = await webhooksApi.create(createBody({ url, eventTypes, taskId, agentName, description }));
      const { secret, ...hook } = made;
      setUrl("");
      setTaskId("");
      setAgentName("");
      setDescription("");
      setEventTypes([ALL_EVENTS]);
      onCreated(hook, secret);
    } catch (err) {
      const found = formErrors(err);
      setErrors(found.fields);
      setTop(found.top);
      if (found.fields.url) urlRef.current?.focus();
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card create-form" onSubmit={submit} aria-labelledby={`${uid}-heading`} data-testid="webhook-form" noValidate>
      <h3 id={`${uid}-heading`}>New subscription</h3>
      {top && (
        <p className="notice notice-error" role="alert" data-testid="webhook-form-error">
          {top}
        </p>
      )}
      <div className="field">
        <label htmlFor={id("url")}>URL</label>
        <input
          id={id("url")}
          ref={urlRef}
          type="url"
          value={url}
          placeholder="https://example.com/hooks"
          onChange={(e) => setUrl(e.target.value)}
          aria-required="true"
          aria-invalid={!!errors.url}
          aria-describedby={describedBy("url")}
          data-testid="webhook-url-input"
        />
        {fieldError("url")}
      </div>
      <fieldset className="field webhook-events" aria-describedby={describedBy("event_types")}>
        <legend>Events</legend>
        {EVENT_TYPES.map(({ type, label }) => (
          <label key={type} className="check">
            <input
              type="checkbox"
              checked={eventTypes.includes(type)}
              onChange={(e) => setEventTypes((s) => toggleEventType(s, type, e.target.checked))}
              data-testid={`webhook-event-${type === ALL_EVENTS ? "all" : type}`}
            />
            <span>{label}</span>
          </label>
        ))}
        {fieldError("event_types")}
      </fieldset>
      <div className="field">
        <label htmlFor={id("task_id")}>
          Only this task <span className="optional">optional</span>
        </label>
        <input
          id={id("task_id")}
          type="text"
          value={taskId}
          onChange={(e) => setTaskId(e.target.value)}
          aria-invalid={!!errors.task_id}
          aria-describedby={describedBy("task_id")}
          data-testid="webhook-task-input"
        />
        {fieldError("task_id")}
      </div>
      <div className="field">
        <label htmlFor={id("agent_name")}>
          Only tasks of this agent <span className="optional">optional</span>
        </label>
        <input
          id={id("agent_name")}
          type="text"
          value={agentName}
          onChange={(e) => setAgentName(e.target.value)}
          aria-invalid={!!errors.agent_name}
          aria-describedby={describedBy("agent_name")}
          data-testid="webhook-agent-input"
        />
        {fieldError("agent_name")}
      </div>
      <div className="field">
        <label htmlFor={id("description")}>
          Description <span className="optional">optional</span>
        </label>
        <input
          id={id("description")}
          type="text"
          value={description}
          onChange={(e) => setDescription(e.target.value)}
          aria-invalid={!!errors.description}
          aria-describedby={describedBy("description")}
          data-testid="webhook-description-input"
        />
        {fieldError("description")}
      </div>
      <div className="form-actions">
        <button type="submit" className="button button-primary" disabled={busy} data-testid="webhook-create">
          {busy ? "Subscribing…" : "Subscribe"}
        </button>
      </div>
    </form>
  );
}

function Deliveries({ webhookId }: { webhookId: string }) {
  const [items, setItems] = useState<Delivery[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const headingId = `deliveries-${webhookId}`;

  useEffect(() => {
    const controller = new AbortController();
    webhooksApi
      .deliveries(webhookId, controller.signal)
      .then((found) => {
        setItems(found);
        setError(null);
      })
      .catch((err: unknown) => {
        if (!controller.signal.aborted) setError(messageOf(err));
      });
    const timer = setTimeout(() => setTick((t) => t + 1), POLL_MS);
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [webhookId, tick]);

  const redeliver = async (delivery: Delivery) => {
    setNote(null);
    try {
      const again = await webhooksApi.redeliver(webhookId, delivery.delivery_id);
      setItems((list) => (list ?? []).map((d) => (d.delivery_id === again.delivery_id ? again : d)));
      setNote(`Delivery ${delivery.delivery_id} is sent again.`);
    } catch (err) {
      setNote(messageOf(err));
    }
  };

  return (
    <section className="runs" aria-labelledby={headingId} data-testid="webhook-deliveries">
      <h4 id={headingId}>Deliveries</h4>
      {error && <p className="notice notice-error">{error}</p>}
      <p className="sr-only" role="status">
        {note ?? ""}
      </p>
      {note && <p className="hint">{note}</p>}
      {items === null && !error && <p className="muted">Loading…</p>}
      {items !== null && items.length === 0 && (
        <p className="empty" data-testid="webhook-deliveries-empty">
          Nothing sent yet.
        </p>
      )}
      {items !== null && items.length > 0 && (
        <div className="table-wrap" tabIndex={0} role="region" aria-labelledby={headingId}>
          <table>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last answer</th>
                <th scope="col">Next attempt</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((d) => (
                <tr key={d.delivery_id} data-testid="delivery-row" data-delivery-id={d.delivery_id} data-status={d.status}>
                  <td data-label="Event">
                    {d.event_type}
                    <span className="muted"> · task {d.task_id.slice(0, 8)}</span>
                  </td>
                  <td data-label="Status">
                    <span className={`badge ${deliveryTone(d.status)}`} data-testid="delivery-status">
                      <span className="badge-dot" aria-hidden="true" />
                      {d.status}
                    </span>
                  </td>
                  <td className="num" data-label="Attempts" data-testid="delivery-attempts">
                    {d.attempts}
                  </td>
                  <td data-label="Last answer" data-testid="delivery-code">
                    {d.last_status_code ?? (d.last_error ? <span className="error-text">{d.last_error}</span> : "—")}
                  </td>
                  <td data-label="Next attempt">{d.status === "pending" ? formatShort(d.next_attempt_at) : "—"}</td>
                  <td>
                    <button
                      type="button"
                      className="button button-quiet"
                      disabled={d.status === "sending"}
                      onClick={() => void redeliver(d)}
                      data-testid="delivery-redeliver"
                      aria-label={`Redeliver ${d.event_type} of task ${d.task_id}`}
                    >
                      Redeliver
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function WebhookCard({
  hook,
  onRotated,
  onDeleted,
}: {
  hook: Webhook;
  onRotated: (secret: string) => void;
  onDeleted: () => void;
}) {
  const [open, setOpen] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const state = webhookState(hook);

  const rotate = async () => {
    setError(null);
    try {
      onRotated((await webhooksApi.rotate(hook.webhook_id)).secret);
    } catch (err) {
      setError(messageOf(err));
    }
  };
  const remove = async () => {
    setError(null);
    try {
      await webhooksApi.remove(hook.webhook_id);
      onDeleted();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <li className="card webhook" data-testid="webhook-row" data-webhook-id={hook.webhook_id}>
      <div className="task-head-top">
        <code className="mono-title" data-testid="webhook-url">
          {hook.url}
        </code>
        <span className={`badge badge-${state.tone}`} data-testid="webhook-state">
          <span className="badge-dot" aria-hidden="true" />
          {state.label}
        </span>
      </div>
      <dl className="facts facts-grid">
        <div>
          <dt>Events</dt>
          <dd data-testid="webhook-events">{hook.event_types.join(", ")}</dd>
        </div>
        <div>
          <dt>For</dt>
          <dd data-testid="webhook-filter">{filterText(hook)}</dd>
        </div>
        {hook.description && (
          <div>
            <dt>Description</dt>
            <dd>{hook.description}</dd>
          </div>
        )}
        {hook.failing_since && !hook.disabled_at && (
          <div>
            <dt>Failing since</dt>
            <dd>{formatShort(hook.failing_since)}</dd>
          </div>
        )}
        {hook.disabled_at && (
          <div>
            <dt>Disabled</dt>
            <dd data-testid="webhook-disabled-reason">
              {formatShort(hook.disabled_at)}
              {state.detail ? `: ${state.detail}` : ""}
            </dd>
          </div>
        )}
      </dl>
      {error && (
        <p className="notice notice-error" role="alert">
          {error}
        </p>
      )}
      <div className="button-row">
        <button type="button" className="button button-quiet" aria-expanded={open} onClick={() => setOpen((o) => !o)} data-testid="webhook-deliveries-toggle">
          {open ? "Hide deliveries" : "Deliveries"}
        </button>
        <button type="button" className="button button-quiet" onClick={() => void rotate()} data-testid="webhook-rotate">
          Rotate secret
        </button>
        {confirming ? (
          <>
            <span className="confirm-text">Delete this subscription and its deliveries?</span>
            <button type="button" className="button button-danger" onClick={() => void remove()} data-testid="webhook-delete-confirm" autoFocus>
              Delete
            </button>
            <button type="button" className="button button-quiet" onClick={() => setConfirming(false)}>
              Keep
            </button>
          </>
        ) : (
          <button type="button" className="button button-quiet" onClick={() => setConfirming(true)} data-testid="webhook-delete">
            Delete…
          </button>
        )}
      </div>
      {open && <Deliveries webhookId={hook.webhook_id} />}
    </li>
  );
}

/** The caller's webhook subscriptions: create, list, rotate, delete, and each one's deliveries. */
export function Webhooks() {
  const [hooks, setHooks] = useState<Webhook[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ value: string; rotated: boolean } | null>(null);
  const [status, setStatus] = useState("");

  const load = useCallback(async (signal?: AbortSignal) => {
    try {
      setHooks(await webhooksApi.list(signal));
      setError(null);
    } catch (err) {
      if (!signal?.aborted) setError(messageOf(err));
    }
  }, []);

  useEffect(() => {
    const controller = new AbortController();
    void load(controller.signal);
    return () => controller.abort();
  }, [load]);

  return (
    <section className="task-view webhooks-view" aria-labelledby="webhooks-heading" data-testid="webhooks">
      <h2 id="webhooks-heading">Webhooks</h2>
      <p className="notice notice-quiet">
        A subscription is sent an HTTP POST, signed with its secret (Standard Webhooks), when your tasks finish, fail or wait for
        input.
      </p>
      <p className="sr-only" role="status">
        {status}
      </p>
      {secret && <SecretPanel secret={secret.value} rotated={secret.rotated} onDone={() => setSecret(null)} />}
      <CreateWebhookForm
        onCreated={(hook, value) => {
          setHooks((list) => [...(list ?? []), hook]);
          setSecret({ value, rotated: false });
          setStatus(`Subscribed ${hook.url}.`);
        }}
      />
      <h3>Your subscriptions</h3>
      {error && (
        <p className="notice notice-error" role="alert">
          {error}
        </p>
      )}
      {hooks === null && !error && <p className="muted">Loading…</p>}
      {hooks !== null && hooks.length === 0 && (
        <p className="empty" data-testid="webhooks-empty">
          No subscriptions yet.
        </p>
      )}
      {hooks !== null && hooks.length > 0 && (
        <ul className="webhook-list" data-testid="webhook-list">
          {hooks.map((hook) => (
            <WebhookCard
              key={hook.webhook_id}
              hook={hook}
              onRotated={(value) => {
                setSecret({ value, rotated: true });
                setStatus("The secret is rotated.");
              }}
              onDeleted={() => {
                setHooks((list) => (list ?? []).filter((h) => h.webhook_id !== hook.webhook_id));
                setStatus(`Deleted ${hook.url}.`);
              }}
            />
          ))}
        </ul>
      )}
    </section>
  );
}
