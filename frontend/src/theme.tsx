// Light, dark, or the system's choice: kept in this browser, applied as <html data-theme>.
// The attribute always names the palette in force ("light" or "dark"): the system's choice is
// resolved here from prefers-color-scheme (and followed when it changes), so the stylesheet
// holds the dark palette once, under [data-theme="dark"].

import { useEffect, useState } from "react";

type Theme = "system" | "light" | "dark";
const KEY = "taskcell.theme";
const NEXT: Record<Theme, Theme> = { system: "dark", dark: "light", light: "system" };
const LABEL: Record<Theme, string> = { system: "Theme: system", dark: "Theme: dark", light: "Theme: light" };

function stored(): Theme {
  try {
    const value = localStorage.getItem(KEY);
    return value === "light" || value === "dark" ? value : "system";
  } catch {
    return "system";
  }
}

const DARK_QUERY = "(prefers-color-scheme: dark)";

function systemPrefersDark(): boolean {
  return typeof window.matchMedia === "function" && window.matchMedia(DARK_QUERY).matches;
}

export function applyTheme(theme: Theme = stored()): void {
  const dark = theme === "dark" || (theme === "system" && systemPrefersDark());
  document.documentElement.setAttribute("data-theme", dark ? "dark" : "light");
}

export function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(stored);
  useEffect(() => {
    applyTheme(theme);
    try {
      if (theme === "system") localStorage.removeItem(KEY);
      else localStorage.setItem(KEY, theme);
    } catch {
      /* storage unavailable: the choice lasts for this page */
    }
  }, [theme]);
  useEffect(() => {
    // While the system's choice is followed, follow it when it changes too.
    if (theme !== "system" || typeof window.matchMedia !== "function") return;
    const query = window.matchMedia(DARK_QUERY);
    const follow = () => applyTheme("system");
    query.addEventListener("change", follow);
    return () => query.removeEventListener("change", follow);
  }, [theme]);
  return (
    <button
      type="button"
      className="button button-quiet"
      onClick={() => setTheme((t) => NEXT[t])}
      data-testid="theme-toggle"
      data-theme={theme}
      title="Switch between the system's theme, dark and light"
    >
      {LABEL[theme]}
    </button>
  );
}
