"""Agents: the clients taskcell runs tasks against, and the bundled demo agents."""
