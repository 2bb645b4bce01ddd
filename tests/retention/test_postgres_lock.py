"""On PostgreSQL one process prunes at a time: a round finds the advisory lock taken and skips."""

from __future__ import annotations

from pg import empty_tables
from taskcell.engine.pruner import RetentionPolicy, prune
from taskcell.stores.postgres import PostgresTaskStore

from .fill import DAY, T0, once_task


async def test_a_second_process_skips_the_round_while_one_prunes(postgres_database: str) -> None:
    first, second = PostgresTaskStore(postgres_database), PostgresTaskStore(postgres_database)
    await empty_tables(first)
    try:
        await once_task(first, "old", created=T0 - 41 * DAY, finished=T0 - 40 * DAY)
        policy = RetentionPolicy(days=30)
        async with first.retention_lock() as mine:
            assert mine
            skipped = await prune(second, policy, now=T0)
            assert skipped.skipped and skipped.rows == 0
            assert [e.seq for e in await second.read_events("old")] == [1, 2, 3, 4, 5]
        done = await prune(second, policy, now=T0)
        assert not done.skipped and done.events == 5, done
    finally:
        await first.close()
        await second.close()
