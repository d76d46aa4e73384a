"""The wiring: one place builds the pipeline from a project and hands each stage its callbacks.

Stages never reach into each other: ingestion appends to the log, the fold reads the log and
writes the outbox, the sender reads the outbox and appends lifecycle events to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mailpulse.bus import InProcessBus
from mailpulse.delivery import DkimSigner, SmtpRelay
from mailpulse.observe import Metrics
from mailpulse.project import Project
from mailpulse.runtime.fold import EVENTS, SENDS, FoldWorker
from mailpulse.runtime.sender import RetryPolicy, Sender, SenderIdentity, Transport
from mailpulse.runtime.shipper import LifecycleShipper
from mailpulse.store import EventLog, StateStore
from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore
from mailpulse.types import Event

log = logging.getLogger("mailpulse")


def relay_for(project: Project) -> SmtpRelay:
    smtp = project.config.smtp
    return SmtpRelay(
        smtp.host,
        smtp.port,
        starttls=smtp.starttls,
        implicit_tls=smtp.implicit_tls,
        username=smtp.username,
        password=smtp.password,
        tls_verify=smtp.tls_verify,
        max_connections=smtp.max_connections,
        max_messages_per_connection=smtp.max_messages_per_connection,
        timeout=project.durations.smtp_timeout,
    )


class Pipeline:
    def __init__(
        self,
        project: Project,
        data_dir: Path,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.project = project
        self.metrics = Metrics()
        self.log: EventLog = SqliteEventLog(data_dir / "log.db")
        self.state: StateStore = SqliteStateStore(data_dir / "state.db")
        self.bus = InProcessBus(partitions=1)
        self._owns_transport = transport is None
        self.transport = transport or relay_for(project)
        self._clock = clock
        cfg = project.config
        signer = None
        if cfg.dkim is not None and project.dkim_private_key is not None:
            signer = DkimSigner(cfg.dkim.domain, cfg.dkim.selector, project.dkim_private_key)
        from_domain = project.sender_domain
        self.shipper = LifecycleShipper(self.state, self.append)
        self.fold = FoldWorker(
            log=self.log,
            state=self.state,
            bus=self.bus,
            shipper=self.shipper,
            journeys=project.journeys,
            metrics=self.metrics,
            clock=clock,
        )
        self.sender = Sender(
            state=self.state,
            bus=self.bus,
            shipper=self.shipper,
            templates=project.templates,
            transport=self.transport,
            signer=signer,
            identity=SenderIdentity(
                from_addr=cfg.sender.from_,
                return_path=cfg.sender.return_path or f"bounces@{from_domain}",
                message_id_domain=from_domain,
                feedback_id=cfg.sender.feedback_id,
                project={
                    "name": cfg.project.name,
                    "url": cfg.project.url,
                    "postal_address": cfg.project.postal_address,
                },
            ),
            retry=RetryPolicy(project.durations.retry_schedule, project.durations.max_age),
            metrics=self.metrics,
            concurrency=cfg.delivery.concurrency,
            clock=clock,
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.log.open()
        await self.state.open()
        # Recovery first: rows queued before a crash are dispatched once, before the fold can
        # publish anything new.
        await self.sender.recover()
        for name, coro in (
            ("fold", self.fold.run()),
            ("lifecycle", self.shipper.run()),
            ("sender", self.sender.run()),
            ("retries", self.sender.run_retries()),
            ("dedup-window", self._forget_old_message_ids()),
            ("gauges", self._update_gauges()),
        ):
            task = asyncio.create_task(coro, name=f"mailpulse-{name}")
            task.add_done_callback(self._stage_ended)
            self._tasks.append(task)

    def _stage_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.metrics.errors.labels(task.get_name()).inc()
            log.error("stage %s stopped", task.get_name(), exc_info=task.exception())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.sender.drain()
        if self._owns_transport and isinstance(self.transport, SmtpRelay):
            await self.transport.close()
        await self.bus.close()
        await self.state.close()
        await self.log.close()

    async def append(self, events: Sequence[Event]) -> list[Event]:
        """Durably append events and hand the new ones to the fold."""
        t0 = time.perf_counter()
        fresh = await self.log.append(events)
        self.metrics.stage_ingest.observe(time.perf_counter() - t0)
        if len(fresh) < len(events):
            self.metrics.events_duplicate.inc(len(events) - len(fresh))
        by_type: dict[str, int] = {}
        for ev in fresh:
            by_type[ev.type] = by_type.get(ev.type, 0) + 1
            await self.bus.publish(EVENTS, ev.contact_key, ev)
        for kind, n in by_type.items():
            self.metrics.events.labels(kind).inc(n)
        return fresh

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
