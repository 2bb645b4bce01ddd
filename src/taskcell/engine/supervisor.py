"""Named, supervised background loops: if one dies, the service says so and stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class Supervisor:
    """Starts loops that must run for as long as the service does.

    A loop that returns or raises is a fault: it is logged with its name, ``failed`` is set and
    ``on_failure`` is called, so the owner can stop the service instead of limping on.
    """

    def __init__(self, on_failure: Callable[[str, BaseException | None], None] | None = None):
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._on_failure = on_failure
        self.failed = asyncio.Event()
        self.failure: str | None = None

    def start(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = asyncio.create_task(loop(), name=name)
        self._loops[name] = task
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping or task.cancelled():
            return
        error = task.exception()
        self.failure = f"background loop {task.get_name()!r} stopped: {error or 'it returned'}"
        logger.critical(
            "background loop died",
            extra={"loop": task.get_name(), "error": repr(error)},
            exc_info=error,
        )
        self.failed.set()
        if self._on_failure is not None:
            self._on_failure(task.get_name(), error)

    def alive(self, name: str) -> bool:
        task = self._loops.get(name)
        return task is not None and not task.done()

    async def stop(self) -> None:
        self._stopping = True
        for task in self._loops.values():
            task.cancel()
        await asyncio.gather(*self._loops.values(), return_exceptions=True)
        self._loops.clear()
