"""Partition leases on real PostgreSQL: fair shares, and the fence between an owner cut off
with sends in flight and the worker that takes its partitions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from mailpulse.runtime.leases import PartitionLeases
from mailpulse.store.postgres import migrate

GRACE = 0.5


@pytest.fixture
async def leases(postgres_dsn: str) -> AsyncIterator[Callable[[], PartitionLeases]]:
    await migrate(postgres_dsn)
    made: list[PartitionLeases] = []

    def make() -> PartitionLeases:
        made.append(PartitionLeases(postgres_dsn, 2, takeover_grace=GRACE))
        return made[-1]

    yield make
    for lease in made:
        await lease.close()


async def test_workers_share_the_partitions_fairly(leases: Callable[[], PartitionLeases]) -> None:
    a, b = leases(), leases()
    await a.open()
    assert await a.fair_share() == 2 and await a.acquire(2) == {0, 1}
    await b.open()
    assert await b.fair_share() == 1
    assert await b.acquire(1) == set()  # both held by a, until a lets one go
    await a.release(1)
    assert await b.acquire(1) == {1}
    assert await a.still_held() and await b.still_held()


async def test_a_partition_stopped_cleanly_moves_at_once(
    leases: Callable[[], PartitionLeases],
) -> None:
    a, b = leases(), leases()
    await a.open()
    await a.acquire(1)
    assert await a.may_start(0)
    await a.stopped_cleanly(0)
    await a.close()
    await b.open()
    assert await b.acquire(1) == {0}
    assert await b.may_start(0)


async def cut_off_owner(leases: Callable[[], PartitionLeases]) -> tuple[PartitionLeases, ...]:
    """`a` ran partition 0 and lost its session without saying it stopped (a database restart,
    or a kill); `b` holds the lock now."""
    a, b = leases(), leases()
    await a.open()
    await a.acquire(1)
    assert await a.may_start(0)
    await a.close()
    await b.open()
    assert await b.acquire(1) == {0}
    return a, b


async def test_an_owner_cut_off_gets_time_to_record_its_sends(
    leases: Callable[[], PartitionLeases],
) -> None:
    a, b = await cut_off_owner(leases)
    assert not await b.may_start(0)  # a may hold sends it has not recorded yet
    await a.stopped_cleanly(0)  # a is back, has recorded them, and says so
    assert await b.may_start(0)


async def test_an_owner_that_never_comes_back_is_taken_for_dead_after_the_grace(
    leases: Callable[[], PartitionLeases],
) -> None:
    _, b = await cut_off_owner(leases)
    assert not await b.may_start(0)
    await asyncio.sleep(GRACE)
    assert await b.may_start(0)
    # And a worker may always take back what it ran itself.
    await b.close()
    await b.open()
    await b.acquire(1)
    assert await b.may_start(0)


async def test_closing_while_a_round_is_in_flight_cuts_the_session(
    leases: Callable[[], PartitionLeases],
) -> None:
    a, b = leases(), leases()
    await a.open()
    acquiring = asyncio.create_task(a.acquire(2))
    await asyncio.sleep(0)  # its first lock query is on the wire
    await a.close()  # no error, though the session was busy
    with pytest.raises(Exception):  # noqa: B017 - whatever the cut-off query raises
        await acquiring
    await b.open()
    async with asyncio.timeout(5):  # a cut-off session's locks go a moment later
        while b.owned != {0, 1}:
            await b.acquire(2)
            await asyncio.sleep(0.05)
