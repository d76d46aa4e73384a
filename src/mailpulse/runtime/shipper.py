"""Lifecycle events travel from the state store to the log.

Stages that change state record the lifecycle event in the same state transaction (a
transactional outbox), then nudge the shipper; the shipper appends them to the log in batches.
A crash between the append and the forget costs nothing: the log drops a repeat by message id.
Batching matters: each log commit is an fsync that ingestion would otherwise queue behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from mailpulse.store import StateStore
from mailpulse.types import Event

_BATCH = 2000
# Seconds a nudge waits for company before the batch ships. Nobody waits for these events (a
# send goes out before its Email Sent is in the log), while each batch is a log commit and its
# fsync: 25 ms instead of 5 took a broadcast's server from 0.32 to 0.28 ms of CPU a message
# (two interleaved pairs, 40,000 recipients); 100 ms saved little more and left the cores
# idle more often, the fold's work coming in lumps.
LINGER = 0.025


class LifecycleShipper:
    def __init__(
        self,
        state: StateStore,
        append: Callable[[Sequence[Event]], Awaitable[list[Event]]],
        partition: int = 0,
    ) -> None:
        self._state = state
        self._partition = partition
        self._append = append
        self._waiting = asyncio.Event()
        self._ready: list[Event] = []

    def ship(self, events: Sequence[Event]) -> None:
        """Events whose state transaction has committed; they travel from memory, and the
        stored copies are only read back after a restart."""
        self._ready.extend(events)
        self._waiting.set()

    async def run(self) -> None:
        # Leftovers from before a restart (and, after a failure, anything still in memory:
        # the log drops what it already has).
        while events := await self._state.unshipped_lifecycle(_BATCH, self._partition):
            await self._deliver(events)
        while True:
            await self._waiting.wait()
            await asyncio.sleep(LINGER)
            self._waiting.clear()
            # What comes in while these are delivered waits for the next linger: shipped at
            # once, it went in batches of a few events, each a commit of its own.
            ready, self._ready = self._ready, []
            for start in range(0, len(ready), _BATCH):
                try:
                    await self._deliver(ready[start : start + _BATCH])
                except BaseException:
                    self._ready[:0] = ready[start:]
                    raise

    async def _deliver(self, events: Sequence[Event]) -> None:
        await self._append(events)
        await self._state.forget_lifecycle([e.message_id for e in events])
