"""The engine: running tasks against agents, the event log, and the scheduler."""
