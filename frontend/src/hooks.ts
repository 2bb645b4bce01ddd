// Small shared hooks: polling, a refresh signal shared by the page's parts.

import { createContext, useContext, useEffect, useRef } from "react";

/** Bumped when something changed (a task created, paused, cancelled…): lists reload. */
export const RefreshContext = createContext<{ version: number; bump: () => void }>({
  version: 0,
  bump: () => {},
});

export const useRefresh = () => useContext(RefreshContext);

/**
 * Calls `fn` now and every `ms` while the page is visible; `deps` restart it.
 * The AbortSignal is aborted when the effect ends.
 */
export function usePoll(
  fn: (signal: AbortSignal) => Promise<void> | void,
  ms: number,
  deps: unknown[],
): void {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      if (controller.signal.aborted) return;
      if (document.visibilityState !== "hidden") {
        try {
          await fnRef.current(controller.signal);
        } catch {
          /* the callback reports its own errors */
        }
      }
      if (!controller.signal.aborted) timer = setTimeout(tick, ms);
    };
    void tick();
    return () => {
      controller.abort();
      if (timer) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ms, ...deps]);
}
