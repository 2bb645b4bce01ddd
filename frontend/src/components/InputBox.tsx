import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import { api, ApiError, type Task } from "../api";

interface Props {
  taskId: string;
  question: string;
  onAnswered: (text: string, task: Task) => void;
}

/** Shown while the agent waits for an answer: POST /tasks/{id}/input. */
export function InputBox({ taskId, question, onAnswered }: Props) {
  const id = useId();
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const ref = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    ref.current?.focus();
  }, [question]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!text.trim() || busy) {
      if (!text.trim()) setError("Write an answer first.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const task = await api.sendInput(taskId, text);
      onAnswered(text, task);
      setText("");
    } catch (err) {
      setError(err instanceof ApiError ? err.message : "The answer could not be sent.");
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card input-box" onSubmit={submit} data-testid="input-box" aria-labelledby={`${id}-q`}>
      <p className="eyebrow">The agent is waiting for you</p>
      <p className="question" id={`${id}-q`} data-testid="input-question">
        {question}
      </p>
      <label htmlFor={`${id}-text`} className="sr-only">
        Your answer
      </label>
      <div className="input-row">
        <textarea
          id={`${id}-text`}
          ref={ref}
          rows={2}
          value={text}
          placeholder="Your answer"
          onChange={(e) => setText(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) {
              e.preventDefault();
              e.currentTarget.form?.requestSubmit();
            }
          }}
          aria-describedby={error ? `${id}-err` : `${id}-hint`}
          data-testid="input-text"
        />
        <button type="submit" className="button button-primary" disabled={busy} data-testid="input-send">
          {busy ? "Sending…" : "Send"}
        </button>
      </div>
      <p className="hint" id={`${id}-hint`}>
        Enter sends, Shift+Enter adds a line.
      </p>
      {error && (
        <p className="field-error" id={`${id}-err`} role="alert" data-testid="input-error">
          {error}
        </p>
      )}
    </form>
  );
}
