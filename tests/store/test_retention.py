"""The retention sweep, on both stores: events received before the retention leave the log,
partition by partition, but only those the partition's fold has applied (at or below its
checkpoint), never the newest; what the folds keep stays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailpulse.observe import Metrics
from mailpulse.privacy.retention import forget_old_events, keep_retention
from mailpulse.store import EventLog, FoldCommit, StateStore
from mailpulse.store.postgres import PostgresEventLog, PostgresStateStore
from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore
from mailpulse.types import Event

DAY = 86400.0


@pytest.fixture(params=["sqlite", "postgres"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[EventLog, StateStore]]:
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        log: EventLog = PostgresEventLog(dsn, partitions=2)
        state: StateStore = PostgresStateStore(dsn)
    else:
        log, state = SqliteEventLog(tmp_path / "log.db"), SqliteStateStore(tmp_path / "state.db")
    await log.open()
    await state.open()
    yield log, state
    await state.close()
    await log.close()


def event(n: int, at: float, contact: str = "u1") -> Event:
    return Event(
        type="track",
        message_id=f"m{contact}{n}",
        contact_key=contact,
        user_id=contact,
        event="Viewed",
        received_at=at,
        timestamp=at,
    )


async def test_only_old_folded_events_are_deleted(stores: tuple[EventLog, StateStore]) -> None:
    log, state = stores
    now = 1000 * DAY
    ages = [500, 450, 401, 399, 10, 1]  # days
    written = await log.append([event(n, now - age * DAY) for n, age in enumerate(ages)])
    partition = written[0].partition
    # The fold has applied the first five.
    await state.commit(FoldCommit(checkpoint=written[4].offset, partition=partition))
    assert await forget_old_events(log, state, 400 * DAY, now) == 3
    left = await log.read(0, 100, partition)
    assert [e.message_id for e in left] == [e.message_id for e in written[3:]]

    # A fold behind keeps its events, however old: here one that applied nothing.
    await state.commit(FoldCommit(checkpoint=0, partition=partition))
    assert await forget_old_events(log, state, DAY / 2, now) == 0
    # Everything old and folded: all but the newest.
    await state.commit(FoldCommit(checkpoint=written[-1].offset, partition=partition))
    assert await forget_old_events(log, state, DAY / 2, now) == 2
    assert [e.message_id for e in await log.read(0, 100, partition)] == [written[-1].message_id]
    assert await forget_old_events(log, state, DAY / 2, now) == 0


def forgotten(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("mailpulse_events_forgotten_total") or 0.0


async def test_the_sweep_runs_by_itself(stores: tuple[EventLog, StateStore]) -> None:
    log, state = stores
    written = await log.append([event(n, 1.0) for n in range(3)])
    await state.commit(FoldCommit(checkpoint=written[-1].offset, partition=written[0].partition))
    metrics = Metrics()
    sweeping = asyncio.create_task(keep_retention(log, state, 10.0, metrics, lambda: 100.0))
    try:
        async with asyncio.timeout(10):
            while forgotten(metrics) < 2:  # noqa: ASYNC110 (the sweep has no event to wait on)
                await asyncio.sleep(0.01)
    finally:
        sweeping.cancel()
    assert len(await log.read(0, 10, written[0].partition)) == 1
