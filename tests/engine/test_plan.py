"""Execution plans: order, depends_on with results as context, failure cancels dependents."""

from __future__ import annotations

from taskcell import Task, TaskStatus
from taskcell.domain.events import EventType
from taskcell.engine.engine import Engine
from taskcell.engine.plan import ExecutionPlan
from taskcell.engine.responses import SUBAGENT_CONVERSATION


def task(query: str, agent: str = "echo", **fields: object) -> Task:
    return Task(query=query, agent_name=agent, conversation_id="plan-conv", **fields)  # type: ignore[arg-type]


async def test_third_task_runs_after_the_first_two_with_their_results(engine: Engine) -> None:
    first, second, third = task("alpha one"), task("beta two"), task("gamma three")
    plan = ExecutionPlan(
        conversation_id="plan-conv",
        guidance_message="Two lookups, then a summary.",
        tasks=[first, second, third],
        depends_on={third.task_id: [first.task_id, second.task_id]},
    )
    result = await engine.execute_plan(plan)
    assert result.succeeded
    stored = {t.task_id: await engine.service.require_task(t.task_id) for t in plan.tasks}
    last = stored[third.task_id]
    context = last.metadata["current_context"]["dependency_results"]
    assert context == {first.task_id: "alpha one", second.task_id: "beta two"}
    assert last.started_at is not None
    for dep in (first, second):
        done_at = stored[dep.task_id].completed_at
        assert done_at is not None and done_at <= last.started_at
    plan_events = await engine.store.read_events(plan.plan_id)
    assert plan_events[0].event is EventType.MESSAGE
    assert plan_events[0].payload == {"content": "Two lookups, then a summary."}
    assert plan_events[-1].event is EventType.DONE


async def test_a_failed_dependency_cancels_its_dependents_with_a_reason(engine: Engine) -> None:
    broken = task("fail 9 times", agent="flaky", max_attempts=1)
    fine = task("still fine")
    dependent = task("needs both")
    plan = ExecutionPlan(
        conversation_id="plan-conv",
        guidance_message="This plan will fail.",
        tasks=[broken, fine, dependent],
        depends_on={dependent.task_id: [broken.task_id, fine.task_id]},
    )
    result = await engine.execute_plan(plan)
    assert result.statuses == {
        broken.task_id: TaskStatus.FAILED,
        fine.task_id: TaskStatus.COMPLETED,
        dependent.task_id: TaskStatus.CANCELLED,
    }
    cancelled = await engine.service.require_task(dependent.task_id)
    assert (
        cancelled.error_message == f"cancelled: it depends on task {broken.task_id}, which failed"
    )
    plan_events = [e.event for e in await engine.store.read_events(plan.plan_id)]
    assert plan_events[-2:] == [EventType.PLAN_FAILED, EventType.DONE]


async def test_a_handed_over_task_runs_in_its_own_conversation(engine: Engine) -> None:
    handed = task(
        "fail 9 times",
        agent="flaky",
        max_attempts=1,
        title="Sub agent",
        handoff_from_super_agent=True,
    )
    plan = ExecutionPlan(conversation_id="plan-conv", guidance_message="Hand over.", tasks=[handed])
    result = await engine.execute_plan(plan)
    assert result.statuses[handed.task_id] is TaskStatus.FAILED
    stored = await engine.service.require_task(handed.task_id)
    assert stored.conversation_id != "plan-conv"
    own = await engine.store.read_events(handed.task_id)
    assert [e.event for e in own[:2]] == [EventType.CONVERSATION_STARTED, EventType.THREAD_STARTED]
    assert own[1].payload == {"content": "Sub agent"}
    phases = [
        e.payload["content"]
        for e in await engine.store.read_events(plan.plan_id)
        if e.event is EventType.COMPONENT_GENERATOR and e.payload
    ]
    assert [('"phase": "start"' in p, '"phase": "end"' in p) for p in phases] == [
        (True, False),
        (False, True),
    ]
    items = (await engine.store.list_items("plan-conv")).items
    sub = [i for i in items if i.component_type == SUBAGENT_CONVERSATION]
    assert len(sub) == 1 and '"phase": "end"' in str((sub[0].payload or {})["content"])
