"""Execution plans: a guidance message and tasks run in order, honouring ``depends_on``.

A task starts once every task it depends on completed, and gets their results as context
(``metadata["current_context"]["dependency_results"]``). A task whose dependency failed (or was
cancelled) is cancelled with a reason that names it. Independent tasks run at once, at most
``max_parallel`` at a time. Plan-level events (the guidance message, ``plan_failed``, the
``subagent_conversation`` components) go to the plan's own log, keyed by ``plan_id``.

A task handed over from a super agent (``handoff_from_super_agent``) runs in its own
conversation, opened with ``thread_started``; the plan's conversation gets a
``subagent_conversation`` component with phase ``start`` before it and phase ``end`` after it,
the end emitted exactly once even when the task fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from taskcell.domain.events import Event, EventType
from taskcell.domain.models import Task, new_id
from taskcell.domain.state_machine import FINAL_STATUSES, TaskStatus
from taskcell.engine.responses import SUBAGENT_CONVERSATION, ResponseFactory


class PlanHost(Protocol):
    """What a plan needs of the engine: its public API (``Engine`` is one)."""

    async def submit(self, task: Task) -> Task:
        """Store a new task, emit its opening events, and run it."""
        ...

    def subscribe(self, task_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """The task's events after ``after``: replayed from the log, then live."""
        ...

    async def require_task(self, task_id: str) -> Task:
        """The task; :class:`~taskcell.service.TaskNotFound` if there is none."""
        ...

    async def latest_result(self, task_id: str) -> str:
        """The result of the task's newest run ("" with none)."""
        ...

    async def add_cancelled(self, task: Task, reason: str) -> Task:
        """Store a task that will never run, cancelled with ``reason``, and its closing
        events; answers it as stored."""
        ...

    async def emit(self, *events: Event) -> None:
        """Append events that belong to no task's run (a plan's own), durably."""
        ...


@dataclass(slots=True)
class ExecutionPlan:
    """What a planner decided: a guidance message and the tasks to run."""

    conversation_id: str
    guidance_message: str
    tasks: list[Task]
    depends_on: dict[str, list[str]] = field(default_factory=dict)
    plan_id: str = field(default_factory=new_id)
    thread_id: str = field(default_factory=new_id)
    user_id: str = "default_user"
    max_parallel: int = 4

    def check(self) -> None:
        """Refuse dependencies on tasks outside the plan, and cycles."""
        ids = [t.task_id for t in self.tasks]
        known = set(ids)
        for task_id, deps in self.depends_on.items():
            unknown = [d for d in deps if d not in known]
            if task_id not in known or unknown:
                raise ValueError(f"depends_on names tasks outside the plan: {unknown or task_id}")
        order = {task_id: index for index, task_id in enumerate(ids)}
        for task_id, deps in self.depends_on.items():
            if any(order[d] >= order[task_id] for d in deps):
                raise ValueError(f"task {task_id} depends on a task that does not come before it")


@dataclass(slots=True)
class PlanResult:
    plan_id: str
    statuses: dict[str, TaskStatus]

    @property
    def succeeded(self) -> bool:
        return all(s is TaskStatus.COMPLETED for s in self.statuses.values())


class _PlanRun:
    def __init__(self, engine: PlanHost, plan: ExecutionPlan) -> None:
        self.engine = engine
        self.plan = plan
        self.finished = {t.task_id: asyncio.Event() for t in plan.tasks}
        self.outcome: dict[str, Task] = {}
        self.slots = asyncio.Semaphore(plan.max_parallel)
        self.factory = ResponseFactory(
            Task(
                task_id=plan.plan_id,
                query=plan.guidance_message or "plan",
                agent_name="plan",
                conversation_id=plan.conversation_id,
                thread_id=plan.thread_id,
                user_id=plan.user_id,
            )
        )

    async def step(self, task: Task) -> None:
        try:
            deps = self.plan.depends_on.get(task.task_id, [])
            for dep in deps:
                await self.finished[dep].wait()
            broken = [d for d in deps if self.outcome[d].status is not TaskStatus.COMPLETED]
            if broken:
                await self._cancel_unstarted(task, broken[0])
                return
            results = {d: await self._result_of(d) for d in deps}
            if results:
                context = dict(task.metadata.get("current_context", {}))
                context["dependency_results"] = results
                task.metadata = {**task.metadata, "current_context": context}
            async with self.slots:
                if task.handoff_from_super_agent:
                    await self._handed_over(task)
                else:
                    await self._run(task)
        finally:
            self.finished[task.task_id].set()

    async def _run(self, task: Task) -> None:
        await self.engine.submit(task)
        async for event in self.engine.subscribe(task.task_id):
            if event.event is EventType.DONE:
                break
        self.outcome[task.task_id] = await self.engine.require_task(task.task_id)

    async def _handed_over(self, task: Task) -> None:
        if task.conversation_id == self.plan.conversation_id:
            task.conversation_id = new_id()
        item_id = f"{task.task_id}:subagent"
        content = {
            "conversation_id": task.conversation_id,
            "agent_name": task.agent_name,
            "title": task.title,
            "phase": "start",
        }
        emit = self.engine.emit
        await emit(self.factory.component(SUBAGENT_CONVERSATION, content, item_id=item_id))
        try:
            await self._run(task)
        finally:
            content["phase"] = "end"
            event = self.factory.component(SUBAGENT_CONVERSATION, content, item_id=item_id)
            await asyncio.shield(emit(event))

    async def _result_of(self, task_id: str) -> str:
        return await self.engine.latest_result(task_id)

    async def _cancel_unstarted(self, task: Task, broken: str) -> None:
        status = self.outcome[broken].status.value
        reason = f"cancelled: it depends on task {broken}, which {status}"
        self.outcome[task.task_id] = await self.engine.add_cancelled(task, reason)


async def execute_plan(engine: PlanHost, plan: ExecutionPlan) -> PlanResult:
    """Run ``plan`` to the end (see the module docstring); answers each task's final status."""
    plan.check()
    run = _PlanRun(engine, plan)
    await engine.emit(run.factory.message(plan.guidance_message))
    await asyncio.gather(*(run.step(task) for task in plan.tasks))
    statuses = {task_id: task.status for task_id, task in run.outcome.items()}
    failed = [t for t, s in statuses.items() if s in FINAL_STATUSES - {TaskStatus.COMPLETED}]
    closing = [run.factory.done()]
    if failed:
        closing.insert(0, run.factory.plan_failed(f"tasks that did not complete: {failed}"))
    await engine.emit(*closing)
    return PlanResult(plan.plan_id, statuses)
