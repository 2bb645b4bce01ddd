// Hash routing: #/, #/new, #/tasks/{id}, #/conversations/{id}.

import { useEffect, useState } from "react";

export type Route =
  | { name: "home" }
  | { name: "new" }
  | { name: "task"; id: string }
  | { name: "conversation"; id: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "");
  const task = /^\/tasks\/([^/?#]+)/.exec(path);
  if (task) return { name: "task", id: decodeURIComponent(task[1]) };
  const conversation = /^\/conversations\/([^/?#]+)/.exec(path);
  if (conversation) return { name: "conversation", id: decodeURIComponent(conversation[1]) };
  if (path.startsWith("/new")) return { name: "new" };
  return { name: "home" };
}

export const taskHref = (id: string) => `#/tasks/${encodeURIComponent(id)}`;
export const conversationHref = (id: string) => `#/conversations/${encodeURIComponent(id)}`;

export function navigate(href: string): void {
  window.location.hash = href.replace(/^#/, "");
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
