"""What every bus does, in-process or on JetStream: per-key order within a partition, batches
of at most `max_items`, [] when nothing comes in time, partitions that do not wait on each
other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import msgspec
import pytest

from mailpulse.bus import Bus, InProcessBus, partition_of

from .conftest import MakeBus


class Item(msgspec.Struct, frozen=True):
    key: str
    n: int


OpenBus = Callable[[int], Awaitable[Bus]]


@pytest.fixture(params=["memory", "jetstream"])
def open_bus(request: pytest.FixtureRequest) -> OpenBus:
    """Opens a bus of the parametrized kind with the given number of partitions."""
    if request.param == "memory":

        async def open_memory(partitions: int) -> Bus:
            return InProcessBus(partitions=partitions)

        return open_memory
    # Asked for here so that the memory runs need no NATS server.
    make: MakeBus = request.getfixturevalue("make_jetstream_bus")

    async def open_jetstream(partitions: int) -> Bus:
        return await make(partitions=partitions, item_types={"s": Item, "t": Item})

    return open_jetstream


def keys_by_partition(partitions: int) -> dict[int, str]:
    """One key for each partition."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        found.setdefault(partition_of(f"contact-{n}", partitions), f"contact-{n}")
        n += 1
    return found


async def drain(bus: Bus, subject: str, partition: int, count: int, max_items: int) -> list[Item]:
    got: list[Item] = []
    async with asyncio.timeout(10):
        while len(got) < count:
            got += await bus.next_batch(subject, partition, max_items, 1.0)
    return got


async def test_one_key_keeps_its_order_within_a_partition(open_bus: OpenBus) -> None:
    bus = await open_bus(4)
    for n in range(100):
        await bus.publish("s", "contact-7", Item("contact-7", n))
    got = await drain(bus, "s", partition_of("contact-7", 4), 100, 30)
    assert got == [Item("contact-7", n) for n in range(100)]
    assert await bus.next_batch("s", partition_of("contact-7", 4), 30, 0.05) == []


async def test_keys_sharing_a_partition_interleave_in_publish_order(open_bus: OpenBus) -> None:
    bus = await open_bus(1)
    published = [Item(key, n) for n in range(20) for key in ("a", "b", "c")]
    for item in published:
        await bus.publish("s", item.key, item)
    assert await drain(bus, "s", 0, len(published), 7) == published


async def test_a_batch_holds_at_most_max_items(open_bus: OpenBus) -> None:
    bus = await open_bus(1)
    for n in range(10):
        await bus.publish("s", "k", Item("k", n))
    sizes = [len(await bus.next_batch("s", 0, 4, 1.0)) for _ in range(3)]
    assert sizes == [4, 4, 2]


async def test_nothing_in_time_gives_an_empty_batch(open_bus: OpenBus) -> None:
    bus = await open_bus(1)
    started = time.monotonic()
    assert await bus.next_batch("s", 0, 10, 0.2) == []
    assert 0.15 <= time.monotonic() - started < 2.0
    assert await bus.next_batch("s", 0, 10, 0) == []


@pytest.mark.parametrize("max_wait", [5.0, None])
async def test_an_item_published_while_waiting_is_returned(
    open_bus: OpenBus, max_wait: float | None
) -> None:
    bus = await open_bus(1)
    waiting = asyncio.create_task(bus.next_batch("s", 0, 10, max_wait))
    await bus.publish("s", "k", Item("k", 1))
    async with asyncio.timeout(5):
        assert await waiting == [Item("k", 1)]


async def test_partitions_and_subjects_are_independent(open_bus: OpenBus) -> None:
    bus = await open_bus(3)
    keys = keys_by_partition(3)
    for partition, key in keys.items():
        for n in range(partition + 1):
            await bus.publish("s", key, Item(key, n))
    await bus.publish("t", keys[0], Item(keys[0], 99))
    # Partition 2 is left unread while 1 and 0 are read: it holds nothing up.
    assert await drain(bus, "s", 1, 2, 10) == [Item(keys[1], 0), Item(keys[1], 1)]
    assert await drain(bus, "s", 0, 1, 10) == [Item(keys[0], 0)]
    assert await bus.next_batch("s", 0, 10, 0.05) == []
    assert await drain(bus, "t", 0, 1, 10) == [Item(keys[0], 99)]
    assert await drain(bus, "s", 2, 3, 10) == [Item(keys[2], n) for n in range(3)]
