// Light, dark, or the system's choice: kept in this browser, applied as <html data-theme>.

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

export function applyTheme(theme: Theme = stored()): void {
  if (theme === "system") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.setAttribute("data-theme", theme);
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
