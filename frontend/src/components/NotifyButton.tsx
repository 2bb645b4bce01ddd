import { useState } from "react";

/** Asks the browser for notifications, so a question from an agent reaches a hidden tab. */
export function NotifyButton() {
  const supported = typeof Notification !== "undefined";
  const [permission, setPermission] = useState(supported ? Notification.permission : "denied");
  if (!supported || permission !== "default") return null;
  return (
    <button
      type="button"
      className="button button-quiet"
      onClick={async () => setPermission(await Notification.requestPermission())}
      data-testid="notify-toggle"
      title="A notification when an agent asks you something while this tab is hidden"
    >
      Notify me
    </button>
  );
}
