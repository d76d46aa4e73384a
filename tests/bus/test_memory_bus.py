"""The in-process bus beyond the shared contract (test_bus_contract.py): partition hashing,
queue depth, publishing without awaiting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.bus import InProcessBus, partition_of


@given(st.text(), st.integers(min_value=1, max_value=64))
def test_partition_is_stable_and_in_range(key: str, partitions: int) -> None:
    p = partition_of(key, partitions)
    assert 0 <= p < partitions
    assert p == partition_of(key, partitions)


async def test_depth_counts_what_waits_on_a_subject() -> None:
    bus = InProcessBus(partitions=4)
    for n in range(10):
        bus.publish_nowait("s", f"contact-{n}", n)
    await bus.publish("t", "contact-0", "other subject")
    assert bus.depth("s") == 10
    for partition in range(4):
        await bus.next_batch("s", partition, 100, 0)
    assert bus.depth("s") == 0
    assert bus.depth("t") == 1


def test_a_bus_needs_a_partition() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        InProcessBus(partitions=0)
