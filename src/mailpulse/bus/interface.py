"""The bus seam: partitioned subjects between pipeline stages.

Items with the same key land in the same partition, in publish order, so one consumer per
partition sees one contact's work in order. In embedded mode the bus only carries work that is
already durable in the store; a consumer that restarts catches up from the store first.
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol


class BusUnavailable(Exception):
    """The bus could not take an item in the time allowed (its server is down or unreachable).

    The item may or may not have been stored. Nothing is lost either way: the bus only carries
    work already durable in the store, and a consumer catches up from the store.
    """


def partition_of(key: str, partitions: int) -> int:
    # crc32 is stable across processes and machines, unlike hash() on str.
    return zlib.crc32(key.encode()) % partitions


class Bus(Protocol):
    partitions: int

    async def open(self) -> None: ...

    async def publish(self, subject: str, key: str, item: Any) -> None:
        """Raises `BusUnavailable` when a networked bus cannot store the item in time."""
        ...

    async def next_batch(
        self, subject: str, partition: int, max_items: int, max_wait: float | None
    ) -> list[Any]:
        """Wait up to `max_wait` seconds (None: forever) for at least one item; return up to
        `max_items` in order, or [] on timeout."""
        ...

    async def release(self, partition: int) -> None:
        """This process has stopped working on `partition`: what it was handed and did not
        finish goes to the partition's next owner at once."""
        ...

    async def close(self) -> None: ...
