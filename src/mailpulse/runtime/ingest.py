"""Taking events in: durably into the log, then on to their partition's fold over the bus."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence

from mailpulse.bus import Bus, InProcessBus
from mailpulse.observe import Metrics
from mailpulse.runtime.fold import EVENTS, merge_requests
from mailpulse.store import EventLog
from mailpulse.types import Event

log = logging.getLogger("mailpulse.ingest")


_PUBLISH_CHUNK = 256  # publishes in flight at once: their PubAcks come back pipelined


class Ingest:
    """With the in-process bus, the fold gets events as soon as they are written and works
    on them while their fsync runs (it commits nothing before they are durable). Over a
    network bus they are published after the commit, in order, by a task of their own: the
    client's answer waits for the log only, never for the bus. If a publish fails, the events
    are still durable and accepted: the fold finds them by reading the log (`FoldWorker.run`).
    """

    def __init__(self, log: EventLog, bus: Bus, metrics: Metrics) -> None:
        if log.partitions != bus.partitions:
            raise ValueError(
                f"the log has {log.partitions} partitions and the bus {bus.partitions}: "
                "they must agree, or events would reach the wrong fold"
            )
        self._log = log
        self._bus = bus
        self._metrics = metrics
        self._early = isinstance(bus, InProcessBus)
        self._outgoing: deque[Event] = deque()
        self._publishing: asyncio.Task[None] | None = None

    async def append(self, events: Sequence[Event]) -> list[Event]:
        t0 = time.perf_counter()
        if self._log.partitions > 1:
            events = [*events, *merge_requests(events, self._log.partitions)]
        fresh = await self._log.append(events, on_written=self._hand_over if self._early else None)
        self._metrics.stage_ingest.observe(time.perf_counter() - t0)
        if not self._early and fresh:
            self._outgoing.extend(fresh)
            if self._publishing is None:
                self._publishing = asyncio.create_task(self._publish())
        if len(fresh) < len(events):
            self._metrics.events_duplicate.inc(len(events) - len(fresh))
        by_type: dict[str, int] = {}
        for ev in fresh:
            if ev.plumbing:
                continue
            by_type[ev.type] = by_type.get(ev.type, 0) + 1
        for kind, n in by_type.items():
            self._metrics.events.labels(kind).inc(n)
        return fresh

    def _hand_over(self, written: list[Event]) -> None:
        assert isinstance(self._bus, InProcessBus)
        for ev in written:
            self._bus.publish_nowait(EVENTS, ev.contact_key, ev)

    async def _publish(self) -> None:
        try:
            while self._outgoing:
                chunk = [
                    self._outgoing.popleft()
                    for _ in range(min(_PUBLISH_CHUNK, len(self._outgoing)))
                ]
                try:
                    await asyncio.gather(
                        *(self._bus.publish(EVENTS, ev.contact_key, ev) for ev in chunk)
                    )
                except Exception:
                    # Whatever waits behind would only wait out the same outage.
                    self._outgoing.clear()
                    self._metrics.errors.labels("publish").inc()
                    log.warning(
                        "events are durable but not on the bus; the fold reads them from the log"
                    )
        finally:
            self._publishing = None

    async def drain(self) -> None:
        """Wait for the events taken in so far to be on the bus (or given up on)."""
        if self._publishing is not None:
            await self._publishing
