"""The Python client's controls against a real server: create with a run time-out, pause with
a note, bulk by ids and by a filter with the cursor followed, a refused body raised."""

from __future__ import annotations

import pytest

from taskcell.client import AsyncClient, BulkOutcome, ValidationFailed

SCHEDULE = {"interval_minutes": 30}


async def test_the_client_controls(base_url: str) -> None:
    async with AsyncClient(base_url) as client:
        made = [
            await client.tasks.create(
                "report",
                agent="echo",
                schedule=SCHEDULE,
                run_immediately=False,
                run_timeout_seconds=45,
            )
            for _ in range(3)
        ]
        assert all(t.run_timeout_seconds == 45 for t in made)
        paused = await client.tasks.pause(made[0].task_id, note="night freeze")
        assert paused.paused and paused.pause_note == "night freeze"
        outcome = await client.tasks.bulk("resume", ids=[made[0].task_id, "nope"])
        assert isinstance(outcome, BulkOutcome)
        assert [(r.ok, r.code) for r in outcome.results] == [(True, 0), (False, 404)]
        seen: list[str] = []
        cursor = None
        while True:
            outcome = await client.tasks.bulk(
                "pause", filter={"pattern": "recurring"}, note="freeze", limit=2, cursor=cursor
            )
            seen += [r.task_id for r in outcome.results if r.ok]
            cursor = outcome.next_cursor
            if cursor is None:
                break
        assert sorted(seen) == sorted(t.task_id for t in made)
        for task in made:
            assert (await client.tasks.get(task.task_id)).pause_note == "freeze"
        with pytest.raises(ValidationFailed) as refused:
            await client.tasks.bulk("pause", ids=[made[0].task_id], note="two\nlines")
        assert any(f.field == "note" for f in refused.value.fields)
