// Hash routing: #/, #/new, #/webhooks, #/tasks/{id}, #/conversations/{id}; a query after the path
// (#/?status=failed&q=report&page=2, #/new?from=<task id>) keeps filters and pages in the URL.

import { useEffect, useState } from "react";

export type Route =
  | { name: "home"; params: URLSearchParams }
  | { name: "new"; params: URLSearchParams }
  | { name: "task"; id: string; params: URLSearchParams }
  | { name: "conversation"; id: string; params: URLSearchParams }
  | { name: "webhooks"; params: URLSearchParams };

export function parseRoute(hash: string): Route {
  const whole = hash.replace(/^#/, "");
  const mark = whole.indexOf("?");
  const path = mark < 0 ? whole : whole.slice(0, mark);
  const params = new URLSearchParams(mark < 0 ? "" : whole.slice(mark + 1));
  const task = /^\/tasks\/([^/?#]+)/.exec(path);
  if (task) return { name: "task", id: decodeURIComponent(task[1]), params };
  const conversation = /^\/conversations\/([^/?#]+)/.exec(path);
  if (conversation) return { name: "conversation", id: decodeURIComponent(conversation[1]), params };
  if (path.startsWith("/new")) return { name: "new", params };
  if (path.startsWith("/webhooks")) return { name: "webhooks", params };
  return { name: "home", params };
}

export const taskHref = (id: string) => `#/tasks/${encodeURIComponent(id)}`;
export const conversationHref = (id: string) => `#/conversations/${encodeURIComponent(id)}`;
export const cloneHref = (id: string) => `#/new?from=${encodeURIComponent(id)}`;

export function navigate(href: string): void {
  window.location.hash = href.replace(/^#/, "");
}

/** Replaces the current URL (no history entry): for filters and a resolved short id. */
export function replaceRoute(href: string): void {
  const url = `${window.location.pathname}${window.location.search}${href.startsWith("#") ? href : `#${href}`}`;
  window.history.replaceState(null, "", url);
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}

/** The list's state kept in the URL: the route's path stays, its query changes. */
export function listParams(): URLSearchParams {
  return parseRoute(window.location.hash).params;
}

export function withParams(params: URLSearchParams): string {
  const whole = window.location.hash.replace(/^#/, "") || "/";
  const mark = whole.indexOf("?");
  const path = mark < 0 ? whole : whole.slice(0, mark);
  const text = params.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
