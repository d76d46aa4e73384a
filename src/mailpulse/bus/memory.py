"""The in-process bus: one asyncio queue per subject and partition."""

from __future__ import annotations

import asyncio
from typing import Any

from mailpulse.bus.interface import partition_of


class InProcessBus:
    def __init__(self, partitions: int = 1) -> None:
        if partitions < 1:
            raise ValueError("a bus needs at least one partition")
        self.partitions = partitions
        self._queues: dict[tuple[str, int], asyncio.Queue[Any]] = {}

    async def open(self) -> None:
        pass

    def _queue(self, subject: str, partition: int) -> asyncio.Queue[Any]:
        q = self._queues.get((subject, partition))
        if q is None:
            q = self._queues[(subject, partition)] = asyncio.Queue()
        return q

    async def publish(self, subject: str, key: str, item: Any) -> None:
        self.publish_nowait(subject, key, item)

    def publish_nowait(self, subject: str, key: str, item: Any) -> None:
        self._queue(subject, partition_of(key, self.partitions)).put_nowait(item)

    def depth(self, subject: str) -> int:
        return sum(q.qsize() for (s, _), q in self._queues.items() if s == subject)

    async def next_batch(
        self, subject: str, partition: int, max_items: int, max_wait: float | None
    ) -> list[Any]:
        q = self._queue(subject, partition)
        try:
            if q.empty():
                # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that
                # lands as an item arrives, and a stage being stopped would run on.
                async with asyncio.timeout(max_wait):
                    first = await q.get()
            else:
                first = q.get_nowait()
        except TimeoutError:
            return []
        batch = [first]
        while len(batch) < max_items and not q.empty():
            batch.append(q.get_nowait())
        return batch

    async def release(self, partition: int) -> None:
        pass  # items wait in the queue for whoever reads the partition next

    async def close(self) -> None:
        self._queues.clear()
