"""The in-process bus: per-partition order, batches, timeouts."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.bus import InProcessBus, partition_of


@given(st.text(), st.integers(min_value=1, max_value=64))
def test_partition_is_stable_and_in_range(key: str, partitions: int) -> None:
    p = partition_of(key, partitions)
    assert 0 <= p < partitions
    assert p == partition_of(key, partitions)


async def test_one_key_keeps_its_order_within_a_partition() -> None:
    bus = InProcessBus(partitions=4)
    for i in range(100):
        await bus.publish("s", "contact-7", i)
    p = partition_of("contact-7", 4)
    got: list[int] = []
    while len(got) < 100:
        got += await bus.next_batch("s", p, 30, 0.1)
    assert got == list(range(100))
    assert bus.depth("s") == 0


async def test_next_batch_waits_then_times_out() -> None:
    bus = InProcessBus()
    assert await bus.next_batch("s", 0, 10, 0.01) == []

    async def later() -> None:
        await asyncio.sleep(0.02)
        await bus.publish("s", "k", "x")

    task = asyncio.create_task(later())
    assert await bus.next_batch("s", 0, 10, 5) == ["x"]
    await task


def test_a_bus_needs_a_partition() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        InProcessBus(partitions=0)
