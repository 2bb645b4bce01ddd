"""Random concurrent operations on the SQLite store, checked against a model (hypothesis).

Each step runs a batch of operations as concurrent coroutines. The store runs each statement
when its coroutine first reaches the store, in the order the coroutines were started, so the
model applies the batch in that order. After every step the store must equal the model: no
task lost, no final state left, every reported outcome true.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from taskcell import SQLiteTaskStore, Task, TaskService, TaskStatus
from taskcell.abc import TaskFilter
from taskcell.domain.state_machine import FINAL_STATUSES, TRANSITIONS

OPS = ["start", "complete", "fail", "cancel", "wait_input", "cancel_conversation"]
TARGET = {
    "start": TaskStatus.RUNNING,
    "complete": TaskStatus.COMPLETED,
    "fail": TaskStatus.FAILED,
    "cancel": TaskStatus.CANCELLED,
    "wait_input": TaskStatus.WAITING_INPUT,
}
CONVERSATIONS = ["c1", "c2", "c3"]


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="taskcell-hyp-"))
        self.loop = asyncio.new_event_loop()
        self.store = SQLiteTaskStore(self.folder / "tasks.db")
        self.service = TaskService(self.store)
        self.model: dict[str, TaskStatus] = {}
        self.conversation: dict[str, str] = {}
        self.ids: list[str] = []

    def teardown(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @rule(conversation=st.sampled_from(CONVERSATIONS), count=st.integers(1, 4))
    def create(self, conversation: str, count: int) -> None:
        async def create_all() -> None:
            tasks = [
                Task(query="q", agent_name="echo", conversation_id=conversation)
                for _ in range(count)
            ]
            await asyncio.gather(*(self.service.create_task(t) for t in tasks))
            for task in tasks:
                self.model[task.task_id] = TaskStatus.PENDING
                self.conversation[task.task_id] = conversation
                self.ids.append(task.task_id)

        self.loop.run_until_complete(create_all())

    @precondition(lambda self: bool(self.ids))
    @rule(
        batch=st.lists(
            st.tuples(st.sampled_from(OPS), st.integers(0, 10_000), st.sampled_from(CONVERSATIONS)),
            min_size=1,
            max_size=12,
        )
    )
    def concurrent_batch(self, batch: list[tuple[str, int, str]]) -> None:
        calls = []
        for op, index, conversation in batch:
            task_id = self.ids[index % len(self.ids)]
            calls.append((op, task_id, conversation))

        async def run_batch() -> list[object]:
            return await asyncio.gather(*(self._call(op, t, conv) for op, t, conv in calls))

        results = self.loop.run_until_complete(run_batch())
        for (op, task_id, conversation), result in zip(calls, results, strict=True):
            assert result == self._apply(op, task_id, conversation), (op, task_id)

    async def _call(self, op: str, task_id: str, conversation: str) -> object:
        service = self.service
        if op == "cancel_conversation":
            return sorted(await service.cancel_conversation_tasks(conversation))
        if op == "start":
            return await service.start_task(task_id)
        if op == "complete":
            return await service.complete_task(task_id)
        if op == "fail":
            return await service.fail_task(task_id, "boom")
        if op == "cancel":
            return await service.cancel_task(task_id)
        return await service.wait_for_input(task_id)

    def _apply(self, op: str, task_id: str, conversation: str) -> object:
        if op == "cancel_conversation":
            hit = [
                t
                for t, status in self.model.items()
                if self.conversation[t] == conversation and status not in FINAL_STATUSES
            ]
            for t in hit:
                self.model[t] = TaskStatus.CANCELLED
            return sorted(hit)
        current = self.model[task_id]
        target = TARGET[op]
        allowed = target in TRANSITIONS[current]
        if op == "wait_input":
            allowed = current is TaskStatus.RUNNING
        if allowed:
            self.model[task_id] = target
            return True
        if op == "cancel":
            return current is TaskStatus.CANCELLED
        return False

    @invariant()
    def store_equals_model(self) -> None:
        async def snapshot() -> dict[str, TaskStatus]:
            page = await self.store.list_tasks(TaskFilter(), limit=10_000)
            return {t.task_id: t.status for t in page.items}

        assert self.loop.run_until_complete(snapshot()) == self.model


StoreMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreMachine = StoreMachine.TestCase
