"""Several couriers as one: rendering and DKIM signing on as many cores as there are couriers.

An intent always goes to the same courier (by a hash of its key), so the prepare hint sent
before an event is durable reaches the courier that will be asked to send it.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Sequence

from mailpulse.runtime.courier import Courier, Delivered
from mailpulse.runtime.courier_process import CourierProcess
from mailpulse.types import SendIntent


class CourierPool:
    def __init__(self, couriers: Sequence[Courier]) -> None:
        if not couriers:
            raise ValueError("a courier pool needs at least one courier")
        self._couriers = list(couriers)

    def _for(self, intent: SendIntent) -> Courier:
        return self._couriers[zlib.crc32(intent.key.encode()) % len(self._couriers)]

    async def start(self) -> None:
        await asyncio.gather(*(courier.start() for courier in self._couriers))

    async def close(self) -> None:
        await asyncio.gather(*(courier.close() for courier in self._couriers))

    def pids(self) -> list[int | None]:
        """Each courier's child process id in pool order; None for one not running or not a
        child process."""
        return [
            pid
            for courier in self._couriers
            for pid in (courier.pids() if isinstance(courier, CourierProcess) else [None])
        ]

    def prepare(self, intent: SendIntent) -> None:
        self._for(intent).prepare(intent)

    def submit(self, intent: SendIntent) -> Awaitable[Delivered]:
        return self._for(intent).submit(intent)
