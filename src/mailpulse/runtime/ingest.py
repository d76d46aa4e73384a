"""Taking events in: durably into the log, then on to their partition's fold over the bus."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from mailpulse.bus import Bus, InProcessBus
from mailpulse.observe import Metrics
from mailpulse.runtime.fold import EVENTS
from mailpulse.store import EventLog
from mailpulse.types import Event

log = logging.getLogger("mailpulse.ingest")


class Ingest:
    """With the in-process bus, the fold gets events as soon as they are written and works
    on them while their fsync runs (it commits nothing before they are durable). Over a
    network bus they are published after the commit; if that publish fails, the event is
    still durable and accepted: the fold finds it by reading the log (see `FoldWorker.run`)."""

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

    async def append(self, events: Sequence[Event]) -> list[Event]:
        t0 = time.perf_counter()
        fresh = await self._log.append(events, on_written=self._hand_over if self._early else None)
        self._metrics.stage_ingest.observe(time.perf_counter() - t0)
        if not self._early:
            await self._publish(fresh)
        if len(fresh) < len(events):
            self._metrics.events_duplicate.inc(len(events) - len(fresh))
        by_type: dict[str, int] = {}
        for ev in fresh:
            by_type[ev.type] = by_type.get(ev.type, 0) + 1
        for kind, n in by_type.items():
            self._metrics.events.labels(kind).inc(n)
        return fresh

    def _hand_over(self, written: list[Event]) -> None:
        assert isinstance(self._bus, InProcessBus)
        for ev in written:
            self._bus.publish_nowait(EVENTS, ev.contact_key, ev)

    async def _publish(self, fresh: list[Event]) -> None:
        try:
            for ev in fresh:
                await self._bus.publish(EVENTS, ev.contact_key, ev)
        except Exception:
            self._metrics.errors.labels("publish").inc()
            log.warning("events are durable but not on the bus; the fold reads them from the log")
