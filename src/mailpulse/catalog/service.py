"""Catalog writes and the events they derive, on their way to the log.

An upsert is durable in the catalog store with its derived events kept as pending (one
transaction), then the events are appended to the log through the pipeline's own ingestion
path, then forgotten by the store. Should the log be unavailable, or the process die, in
between, the events stay pending and `run` ships them later; their message ids derive from the
update, so an event shipped twice is in the log once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mailpulse.catalog.interface import CatalogStore, CatalogUnavailable
from mailpulse.catalog.model import Upserted
from mailpulse.store import LogUnavailable
from mailpulse.types import Event

log = logging.getLogger("mailpulse.catalog")

AppendFn = Callable[[Sequence[Event]], Awaitable[list[Event]]]

SHIP_EVERY = 5.0  # seconds between looks for events left pending
_SHIP_BATCH = 500


class Catalogs:
    def __init__(
        self, store: CatalogStore, append: AppendFn, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self._append = append
        self._clock = clock

    async def upsert(
        self, catalog: str, items: Sequence[tuple[str, dict[str, Any]]]
    ) -> tuple[list[Upserted], bool]:
        """Write the items (see CatalogStore.upsert); also whether their derived events are in
        the log already (False: they are pending and will be shipped by `run`)."""
        results = await self.store.upsert(catalog, items, self._clock())
        events = [ev for result in results for ev in result.events]
        return results, await self._ship(events)

    async def ship_pending(self) -> int:
        """Ship what earlier writes left pending; how many events were shipped."""
        shipped = 0
        previous: list[str] = []
        while True:
            events = await self.store.pending_events(_SHIP_BATCH)
            ids = [ev.message_id for ev in events]
            if not events or ids == previous or not await self._ship(events):
                return shipped  # nothing left, not forgotten (next time), or the log is down
            shipped += len(events)
            if len(events) < _SHIP_BATCH:
                return shipped
            previous = ids

    async def run(self) -> None:
        """A pipeline stage: ship pending events at start, then every few seconds."""
        while True:
            await self.ship_pending()
            await asyncio.sleep(SHIP_EVERY)

    async def _ship(self, events: list[Event]) -> bool:
        """Whether the events are in the log. Never raises: by now the write that derived
        them stands, and they are pending until this succeeds."""
        if not events:
            return True
        try:
            await self._append(events)
        except LogUnavailable as exc:
            log.warning("catalog events stay pending, the log is unavailable: %s", exc)
            return False
        except Exception:
            log.exception("catalog events stay pending, appending them failed")
            return False
        try:
            await self.store.forget_events([ev.message_id for ev in events])
        except CatalogUnavailable as exc:
            # In the log all the same: shipped again later, and dropped there as repeats.
            log.warning("shipped catalog events are not forgotten yet: %s", exc)
        return True
