"""The pipeline: one place builds every stage from a project and hands each its callbacks.

Stages never reach into each other: ingestion appends to the log, the fold reads the log and
writes the outbox, the sender hands the outbox to a courier and records what it reports; the
lifecycle events go back into the log through the shipper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from mailpulse.bus import InProcessBus
from mailpulse.observe import Metrics
from mailpulse.project import Project
from mailpulse.runtime.courier import Courier
from mailpulse.runtime.courier_process import CourierProcess
from mailpulse.runtime.fold import EVENTS, SENDS, FoldWorker
from mailpulse.runtime.sender import RetryPolicy, Sender
from mailpulse.runtime.shipper import LifecycleShipper
from mailpulse.store import EventLog, StateStore
from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore
from mailpulse.types import Event

log = logging.getLogger("mailpulse")

RESTART_AFTER = 1.0  # seconds between a stage's failure and its restart


class Pipeline:
    def __init__(
        self,
        project: Project,
        data_dir: Path,
        *,
        courier: Courier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.project = project
        self.metrics = Metrics()
        self.log: EventLog = SqliteEventLog(data_dir / "log.db")
        self.state: StateStore = SqliteStateStore(data_dir / "state.db")
        self.bus = InProcessBus(partitions=1)
        # By default the send leg runs in a child process: a core of its own.
        self.courier = courier or CourierProcess(project.root)
        self._clock = clock
        cfg = project.config
        self.shipper = LifecycleShipper(self.state, self.append)
        self.sender = Sender(
            state=self.state,
            bus=self.bus,
            shipper=self.shipper,
            courier=self.courier,
            retry=RetryPolicy(project.durations.retry_schedule, project.durations.max_age),
            metrics=self.metrics,
            concurrency=cfg.delivery.concurrency,
            clock=clock,
        )
        self.fold = FoldWorker(
            log=self.log,
            state=self.state,
            bus=self.bus,
            shipper=self.shipper,
            journeys=project.journeys,
            metrics=self.metrics,
            clock=clock,
            foresee=self.sender.foresee,
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.log.open()
        await self.state.open()
        await self.courier.start()
        # Recovery first: rows queued before a crash are dispatched once, before the fold can
        # publish anything new.
        await self.sender.recover()
        for name, stage in (
            ("fold", self.fold.run),
            ("lifecycle", self.shipper.run),
            ("sender", self.sender.run),
            ("retries", self.sender.run_retries),
            ("dedup-window", self._forget_old_message_ids),
            ("gauges", self._update_gauges),
        ):
            self._tasks.append(
                asyncio.create_task(self._supervise(name, stage), name=f"mailpulse-{name}")
            )

    async def _supervise(self, name: str, stage: Callable[[], Awaitable[None]]) -> None:
        """A stage that fails (a full disk, a bug) is logged, counted and started again: each
        resumes from what the store holds, so nothing accepted is left unprocessed."""
        while True:
            try:
                await stage()
            except Exception:
                self.metrics.errors.labels(name).inc()
                log.exception("stage %s failed; restarting it in %s s", name, RESTART_AFTER)
                await asyncio.sleep(RESTART_AFTER)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.sender.drain()
        await self.courier.close()
        await self.bus.close()
        await self.state.close()
        await self.log.close()

    async def append(self, events: Sequence[Event]) -> list[Event]:
        """Durably append events. The fold gets them as soon as they are written and works on
        them while the fsync runs; it commits nothing before they are durable."""
        t0 = time.perf_counter()
        fresh = await self.log.append(events, on_written=self._to_fold)
        self.metrics.stage_ingest.observe(time.perf_counter() - t0)
        if len(fresh) < len(events):
            self.metrics.events_duplicate.inc(len(events) - len(fresh))
        by_type: dict[str, int] = {}
        for ev in fresh:
            by_type[ev.type] = by_type.get(ev.type, 0) + 1
        for kind, n in by_type.items():
            self.metrics.events.labels(kind).inc(n)
        return fresh

    def _to_fold(self, written: list[Event]) -> None:
        for ev in written:
            self.bus.publish_nowait(EVENTS, ev.contact_key, ev)

    async def _forget_old_message_ids(self) -> None:
        window = self.project.durations.dedup_window
        while True:
            await self.log.forget_message_ids(self._clock() - window)
            await asyncio.sleep(min(window / 10, 600))

    async def _update_gauges(self) -> None:
        while True:
            self.metrics.queue_depth.labels("fold").set(self.bus.depth(EVENTS))
            self.metrics.queue_depth.labels("send").set(self.bus.depth(SENDS))
            await asyncio.sleep(1.0)
