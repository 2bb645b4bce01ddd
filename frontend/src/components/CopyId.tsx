import { useState } from "react";

/** A task id, short, with a button that copies the whole id. */
export function CopyId({ id }: { id: string }) {
  const [copied, setCopied] = useState<boolean | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(id);
      setCopied(true);
    } catch {
      // No clipboard here (an insecure origin): select the id so the reader can copy it.
      const range = document.createRange();
      const node = document.getElementById(`id-${id}`);
      if (node) {
        range.selectNodeContents(node);
        window.getSelection()?.removeAllRanges();
        window.getSelection()?.addRange(range);
      }
      setCopied(false);
    }
  };
  return (
    <span className="copy-id">
      <code id={`id-${id}`} title={id} data-testid="task-id">
        {id.slice(0, 12)}
      </code>
      <button type="button" className="link-button" onClick={copy} data-testid="copy-id" aria-label={`Copy the task id ${id}`}>
        copy
      </button>
      <span className="sr-only" role="status">
        {copied === true ? "Copied." : copied === false ? "Selected: press Ctrl+C to copy." : ""}
      </span>
      {copied === true && (
        <span className="muted" aria-hidden="true">
          {" "}
          copied
        </span>
      )}
    </span>
  );
}
