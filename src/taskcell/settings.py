"""Settings: environment variables with the prefix ``TASKCELL_``, then ``taskcell.toml``.

The TOML file is read from the working directory, or from the path in ``TASKCELL_CONFIG``.
Environment variables win over the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from platformdirs import user_data_dir
from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

#: How long an idle kept-alive connection stays open. Longer than HTTP clients keep idle
#: connections in their pools (httpx and many others: 5 s), so a client never sends a request
#: on a connection the server is closing at that moment; uvicorn's default is also 5 s, which
#: makes that race (seen as sporadic "connection closed" errors under load).
KEEP_ALIVE_SECONDS = 65
#: PostgreSQL connections per process, at most (``database_pool_size``): three processes stay
#: well inside the server's default ``max_connections`` (100), and one process has enough for
#: 64 runs at once.
DEFAULT_POOL_SIZE = 20
#: The default limit of a request body (``max_body_bytes``): 1 MiB.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: The default time a stream reader may take nothing before it is disconnected: 5 minutes.
DEFAULT_SSE_IDLE_SECONDS = 300.0


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs, errors and banners).

    >>> redact_url("postgresql://app:s3cret@db:5432/tasks")
    'postgresql://app:***@db:5432/tasks'
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a URL too malformed to parse may still hold a password: hide it all
        return "<unparseable URL>"
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def default_database_url() -> str:
    """``sqlite:///`` a file in the user's data directory."""
    return f"sqlite:///{Path(user_data_dir('taskcell')) / 'taskcell.db'}"


class AgentConfig(BaseModel):
    """One configured agent: a remote A2A ``url`` or an in-process ``entry`` ("module:func").

    For an in-process agent, ``run_timeout_seconds`` ends a call that has not finished (default
    one hour) and ``max_concurrent_runs`` caps how many of its tasks run at once (default three
    quarters of ``max_concurrent_runs`` of the server, leaving at least one slot to the others).
    """

    url: str | None = None
    entry: str | None = None
    description: str = ""
    run_timeout_seconds: float = Field(default=3600.0, gt=0)
    max_concurrent_runs: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> AgentConfig:
        if (self.url is None) == (self.entry is None):
            raise ValueError("an agent needs exactly one of url and entry")
        return self


class Settings(BaseSettings):
    """Everything taskcell can be told. See README.md's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="TASKCELL_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    database_url: str = Field(default_factory=default_database_url)
    #: PostgreSQL only: connections each process may open (each process also keeps one more
    #: for LISTEN). Keep processes x (pool + 1) under the server's ``max_connections``.
    database_pool_size: int = Field(default=DEFAULT_POOL_SIZE, ge=1, le=1000)
    host: str = "127.0.0.1"
    port: int = 8000
    #: "KEY:USER:ROLE,..." with ROLE user or admin; empty means no authentication (loopback).
    api_keys: str = ""
    #: Extra agents by name; the demo agents are always there unless ``demo_agents`` is false.
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    demo_agents: bool = True
    #: The public base URL of this server, used in the demo agents' cards.
    public_url: str | None = None
    lease_seconds: float = 30.0
    max_concurrent_runs: int = 64
    retry_base_seconds: float = 0.5
    retry_cap_seconds: float = 30.0
    agent_connect_timeout: float = 5.0
    agent_read_timeout: float = 300.0
    log_level: str = "INFO"
    #: The largest request body accepted, in bytes (else 413 naming this limit).
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=2**40)
    #: A stream reader whose connection takes nothing for this long is disconnected.
    sse_idle_seconds: float = Field(default=DEFAULT_SSE_IDLE_SECONDS, gt=0, le=86_400)
    #: CIDRs ("127.0.0.1/32,10.0.0.0/8") webhook URLs may resolve to beyond public addresses
    #: (loopback, private, link-local and metadata addresses are refused otherwise).
    webhook_allow: str = ""
    #: How long one webhook attempt may take (resolving, connecting, the answer), in seconds.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: Retention (taskcell.engine.pruner): a finished once task's events (and, once its
    #: conversation is as old, its items) are kept this many days after it finished; a
    #: recurring task's closed runs this many days after they finished.
    retention_days: float = Field(default=30.0, gt=0, le=36_500)
    #: A recurring task keeps the events of this many of its latest runs.
    retention_runs: int = Field(default=100, ge=1, le=1_000_000)
    #: Whether the server prunes in the background (``taskcell db prune`` works either way).
    retention_enabled: bool = True
    #: How often the server's pruner looks for what to remove.
    retention_interval_seconds: float = Field(default=3600.0, ge=1, le=7 * 86_400)
    #: The most rows one pruning write removes (it also shrinks itself to stay short).
    retention_batch_rows: int = Field(default=500, ge=1, le=100_000)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("TASKCELL_CONFIG", "taskcell.toml"))
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_path)
        return (init_settings, env_settings, toml)

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with ``values`` set (None values are ignored)."""
        return self.model_copy(update={k: v for k, v in values.items() if v is not None})


class SettingsError(ValueError):
    """Settings that cannot be used, said for a person: which setting and why."""


def load_settings(**overrides: Any) -> Settings:
    """:class:`Settings` from the environment and ``taskcell.toml``; :class:`SettingsError`
    naming each bad setting (as its environment variable and its TOML key) and why."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "settings"
            env = "TASKCELL_" + key.replace(".", "__").upper()
            problems.append(f"{env} ({key} in taskcell.toml): {error['msg']}")
        raise SettingsError("bad settings: " + "; ".join(problems)) from None
