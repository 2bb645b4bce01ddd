import { useId, useState, type FormEvent } from "react";
import { getApiKey, setApiKey } from "../api";

interface Props {
  required: boolean;
  onSaved: () => void;
  onClose: () => void;
}

/** The API key field: kept in localStorage, sent as `Authorization: Bearer <key>`. */
export function ApiKeyPanel({ required, onSaved, onClose }: Props) {
  const id = useId();
  const [key, setKey] = useState(getApiKey);
  const stored = getApiKey();

  const save = (e: FormEvent) => {
    e.preventDefault();
    setApiKey(key.trim());
    onSaved();
  };

  return (
    <form className="key-panel" onSubmit={save} data-testid="api-key-panel">
      {required && (
        <p className="notice notice-warn" role="alert" data-testid="api-key-required">
          {stored ? "The server refused this API key." : "This server needs an API key."}
        </p>
      )}
      <label htmlFor={`${id}-key`}>API key</label>
      <div className="input-row">
        <input
          id={`${id}-key`}
          type="password"
          autoComplete="off"
          value={key}
          onChange={(e) => setKey(e.target.value)}
          placeholder="Your API key"
          data-testid="api-key-input"
          autoFocus
        />
        <button type="submit" className="button button-primary" data-testid="api-key-save">
          Save
        </button>
        {stored && (
          <button
            type="button"
            className="button"
            onClick={() => {
              setApiKey("");
              setKey("");
              onSaved();
            }}
          >
            Forget
          </button>
        )}
        {!required && (
          <button type="button" className="button button-quiet" onClick={onClose}>
            Close
          </button>
        )}
      </div>
      <p className="hint">Kept in this browser only and sent with every request.</p>
    </form>
  );
}
