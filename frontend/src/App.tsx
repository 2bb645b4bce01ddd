import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, ApiError, getApiKey, onUnauthorized, type Agent } from "./api";
import { ApiKeyPanel } from "./components/ApiKeyPanel";
import { ConversationView } from "./components/ConversationView";
import { CreateTaskForm } from "./components/CreateTaskForm";
import { NotifyButton } from "./components/NotifyButton";
import { TaskList } from "./components/TaskList";
import { TaskView } from "./components/TaskView";
import { Webhooks } from "./components/Webhooks";
import { useOffline } from "./connectivity";
import { RefreshContext } from "./hooks";
import { useRoute } from "./route";
import { ThemeToggle } from "./theme";

export function App() {
  const route = useRoute();
  const [version, setVersion] = useState(0);
  const [keyEpoch, setKeyEpoch] = useState(0);
  const [needKey, setNeedKey] = useState(false);
  const [showKey, setShowKey] = useState(false);
  const [agents, setAgents] = useState<Agent[]>([]);
  const [agentsError, setAgentsError] = useState<string | null>(null);

  const bump = useCallback(() => setVersion((v) => v + 1), []);
  const refresh = useMemo(() => ({ version, bump }), [version, bump]);

  useEffect(() => onUnauthorized(() => setNeedKey(true)), []);

  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const list = await api.listAgents(controller.signal);
        setAgents(list);
        setAgentsError(null);
      } catch (err) {
        if (controller.signal.aborted) return;
        setAgentsError(err instanceof ApiError ? err.message : "Could not load the agents.");
        timer = setTimeout(load, 5000);
      }
    };
    void load();
    return () => {
      controller.abort();
      if (timer) clearTimeout(timer);
    };
  }, [keyEpoch]);

  // The tab title follows the route (a task's page names its task itself).
  useEffect(() => {
    if (route.name === "task") return;
    document.title =
      route.name === "conversation"
        ? "Conversation · taskcell"
        : route.name === "new"
          ? "New task · taskcell"
          : route.name === "webhooks"
            ? "Webhooks · taskcell"
            : "Tasks · taskcell";
  }, [route]);

  // Every route change (not a change of the list's filters) moves focus and scroll to the main part.
  const routeKey = route.name === "task" || route.name === "conversation" ? `${route.name}:${route.id}` : route.name;
  const firstRoute = useRef(true);
  useEffect(() => {
    if (firstRoute.current) {
      firstRoute.current = false;
      return;
    }
    window.scrollTo({ top: 0 });
    const target = route.name === "home" ? document.getElementById("tasks-heading") : document.getElementById("main-detail");
    target?.focus({ preventScroll: true });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [routeKey]);

  const offline = useOffline();
  const selectedId = route.name === "task" ? route.id : null;
  const keyPanelOpen = needKey || showKey;

  return (
    <RefreshContext.Provider value={refresh}>
      <a className="skip-link" href="#main-detail" onClick={(e) => {
        e.preventDefault();
        document.getElementById("main-detail")?.focus();
      }}>
        Skip to content
      </a>
      <header className="app-header">
        <h1 className="brand-heading">
          <a className="brand" href="#/">
            <span className="brand-mark" aria-hidden="true" />
            <span className="brand-name">taskcell</span>
            <span className="sr-only"> home</span>
          </a>
        </h1>
        <span className="brand-tag">durable tasks for AI agents</span>
        <div className="header-actions">
          <a
            className="button button-quiet"
            href="#/webhooks"
            aria-current={route.name === "webhooks" ? "page" : undefined}
            data-testid="nav-webhooks"
          >
            Webhooks
          </a>
          <NotifyButton />
          <ThemeToggle />
          <button
            type="button"
            className={`button button-quiet${getApiKey() ? " has-key" : ""}`}
            aria-expanded={keyPanelOpen}
            onClick={() => setShowKey((s) => !s)}
            data-testid="api-key-toggle"
          >
            {getApiKey() ? "API key ✓" : "API key"}
          </button>
        </div>
      </header>
      {offline && (
        <section className="offline-bar" aria-label="Connection" data-testid="offline-banner">
          <p role="alert">
            <span className="spinner" aria-hidden="true" /> The server cannot be reached. The page keeps what it
            shows and tries again; live streams resume where they stopped.
          </p>
        </section>
      )}
      {keyPanelOpen && (
        <section className="key-bar" aria-label="API key">
          <ApiKeyPanel
            required={needKey}
            onSaved={() => {
              setNeedKey(false);
              setShowKey(false);
              setKeyEpoch((e) => e + 1);
              bump();
            }}
            onClose={() => setShowKey(false)}
          />
        </section>
      )}
      <div className={`layout layout-${route.name}`} key={keyEpoch}>
        <aside className="sidebar" aria-label="Task list">
          <TaskList agents={agents} selectedId={selectedId} route={route} />
        </aside>
        <main className="detail" id="main-detail" tabIndex={-1} aria-label={route.name === "home" ? "New task" : undefined}>
          {route.name !== "home" && (
            <a className="back-link" href={`#/${route.params.toString() ? `?${route.params.toString()}` : ""}`} data-testid="back">
              ← Tasks
            </a>
          )}
          {route.name === "task" && <TaskView key={route.id} taskId={route.id} />}
          {route.name === "conversation" && <ConversationView key={route.id} conversationId={route.id} />}
          {route.name === "webhooks" && <Webhooks />}
          {(route.name === "home" || route.name === "new") && (
            <CreateTaskForm agents={agents} agentsError={agentsError} cloneOf={route.params.get("from")} />
          )}
        </main>
      </div>
    </RefreshContext.Provider>
  );
}
