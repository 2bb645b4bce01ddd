import { useCallback, useEffect, useMemo, useState } from "react";
import { api, ApiError, getApiKey, onUnauthorized, type Agent } from "./api";
import { ApiKeyPanel } from "./components/ApiKeyPanel";
import { ConversationView } from "./components/ConversationView";
import { CreateTaskForm } from "./components/CreateTaskForm";
import { TaskList } from "./components/TaskList";
import { TaskView } from "./components/TaskView";
import { RefreshContext } from "./hooks";
import { useRoute } from "./route";

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

  // The tab title follows the route.
  useEffect(() => {
    document.title =
      route.name === "task" ? "Task · taskcell" : route.name === "conversation" ? "Conversation · taskcell" : "taskcell";
  }, [route]);

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
        <a className="brand" href="#/" aria-label="taskcell home">
          <span className="brand-mark" aria-hidden="true" />
          <span className="brand-name">taskcell</span>
        </a>
        <span className="brand-tag">durable tasks for AI agents</span>
        <div className="header-actions">
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
      {keyPanelOpen && (
        <div className="key-bar">
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
        </div>
      )}
      <div className="layout" key={keyEpoch}>
        <aside className="sidebar" aria-label="Task list">
          <TaskList agents={agents} selectedId={selectedId} />
        </aside>
        <main className="detail" id="main-detail" tabIndex={-1}>
          {route.name === "task" && <TaskView key={route.id} taskId={route.id} />}
          {route.name === "conversation" && <ConversationView key={route.id} conversationId={route.id} />}
          {(route.name === "home" || route.name === "new") && (
            <CreateTaskForm agents={agents} agentsError={agentsError} />
          )}
        </main>
      </div>
    </RefreshContext.Provider>
  );
}
