// Whether the server answers: one store the whole page reads, so an outage shows one banner
// (not one box per part of the page that failed to load).

import { useSyncExternalStore } from "react";

let offline = false;
const listeners = new Set<() => void>();

function set(value: boolean): void {
  if (offline === value) return;
  offline = value;
  for (const listener of listeners) listener();
}

/** A request could not reach the server. */
export const reportUnreachable = (): void => set(true);
/** The server answered (any status). */
export const reportReached = (): void => set(false);

export const isOffline = (): boolean => offline;

export function useOffline(): boolean {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => offline,
  );
}
