"""Named, supervised background loops: outages are waited out, a bug stops the service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from taskcell.engine.weather import describe, retrying, weather

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Supervisor:
    """Starts loops that must run for as long as the service does.

    A loop that fails with an outage (:func:`taskcell.engine.weather.is_outage`: the database
    unreachable, the disk full...) is started again after a back-off, for as long as the outage
    lasts; its name and the reason are in :attr:`outages` meanwhile. A loop that returns or
    raises anything else is a fault (a bug): it is logged with its name, ``failed`` is set and
    ``on_failure`` is called, so the owner can stop the service instead of limping on.
    """

    def __init__(self, on_failure: Callable[[str, BaseException | None], None] | None = None):
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._on_failure = on_failure
        self.failed = asyncio.Event()
        self.failure: str | None = None
        #: Loop name -> why it waits, for each loop waiting out an outage now.
        self.outages: dict[str, str] = {}

    def start(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = asyncio.create_task(self._keep(name, loop), name=name)
        self._loops[name] = task
        task.add_done_callback(self._ended)

    async def _keep(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        async for attempt in retrying(name, on_outage=lambda exc: self._outage(name, exc)):
            with attempt:
                self.outages.pop(name, None)
                await loop()

    def _outage(self, name: str, exc: BaseException) -> None:
        self.outages[name] = describe(exc)

    async def weather(
        self,
        name: str,
        step: Callable[[], Awaitable[T]],
        *,
        cap_seconds: float = 10.0,
        on_outage: Callable[[BaseException], None] | None = None,
    ) -> T:
        """One pass of loop ``name``: ``step``, retried through outages (see
        :func:`taskcell.engine.weather.weather`), recorded in :attr:`outages` meanwhile;
        ``on_outage`` hears of each failure too."""

        def failed(exc: BaseException) -> None:
            self._outage(name, exc)
            if on_outage is not None:
                on_outage(exc)

        try:
            return await weather(name, step, cap_seconds=cap_seconds, on_outage=failed)
        finally:  # done, cancelled or failed otherwise: it no longer waits for the store
            self.outages.pop(name, None)

    def recovered(self, name: str) -> None:
        """Loop ``name`` works again (for a loop whose pass does not end, such as LISTEN)."""
        self.outages.pop(name, None)

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
