"""The pipeline: one place builds every stage from a project and hands each its callbacks.

Stages never reach into each other: ingestion appends to the log, the fold reads the log and
writes the outbox, the sender hands the outbox to a courier and records what it reports; the
lifecycle events go back into the log through the shipper.

Embedded mode (`Pipeline.embedded`) runs all of it in one process, on partition 0. A scale-out
API node is a `Pipeline` with `run_partitions=False`: it takes events in and serves the admin
API, while `mailpulse worker` processes (see `worker.py`) run the partitions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mailpulse.access import AccessStore, KeyRing, ProjectKeys
from mailpulse.bus import Bus, InProcessBus
from mailpulse.catalog import Catalogs, CatalogStore
from mailpulse.observe import Metrics
from mailpulse.privacy.retention import keep_retention
from mailpulse.project import Project
from mailpulse.runtime.alerting import SelfWatch, keep_backlog_age
from mailpulse.runtime.breaker import Breaker
from mailpulse.runtime.courier import Courier
from mailpulse.runtime.fold import EVENTS, SENDS
from mailpulse.runtime.ingest import Ingest
from mailpulse.runtime.partition import PartitionParts, PartitionRunner
from mailpulse.runtime.supervise import cancel_all, start_stages
from mailpulse.runtime.traffic import Traffic
from mailpulse.runtime.wiring import (
    access_for,
    catalog_for,
    courier_processes,
    embedded_catalog,
    inbound_for,
)
from mailpulse.store import EventLog, StateStore
from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore
from mailpulse.tokens import TokenSigner, previous_secrets, project_secret
from mailpulse.types import Event


class Pipeline:
    def __init__(
        self,
        project: Project,
        *,
        log: EventLog,
        state: StateStore,
        bus: Bus,
        courier: Courier | None = None,
        catalog: CatalogStore | None = None,
        access: AccessStore | None = None,
        run_partitions: bool = True,
        clock: Callable[[], float] = time.time,
        secret: str | None = None,
    ) -> None:
        """`catalog`: where catalog items live, by default beside the state (see
        `wiring.catalog_for`); a given `courier` must read the same one. `secret`: what
        tokens are signed with, by default from the environment or the project (see
        mailpulse.tokens; ValueError if neither has one). `access`: the API keys and audit
        log, by default beside the state (see `wiring.access_for`)."""
        self.project = project
        secret = secret or project_secret(project.config.project.secret, None)
        self.tokens = TokenSigner(secret, previous_secrets())
        self.metrics = Metrics()
        self.log = log
        self.state = state
        self.bus = bus
        self._clock = clock
        self._ingest = Ingest(log, bus, self.metrics)
        self.access = access or access_for(state)
        keys = project.config.project
        self.keys = KeyRing(
            self.access, ProjectKeys(keys.write_keys, keys.server_write_keys, keys.admin_key)
        )
        catalog = catalog or catalog_for(state)
        # Its derived events take the way of every other event in (`append`).
        self.catalogs = Catalogs(catalog, self.append, clock) if catalog is not None else None
        self.courier: Courier | None = None
        if run_partitions:
            # By default the send leg runs in child processes: cores of their own.
            self.courier = courier or courier_processes(
                project, secret, catalog=catalog.location if catalog is not None else None
            )
        # Every node judges the complaint rate (and shows it in its metrics); the store keeps
        # each move once. The senders this process runs hold marketing while it is tripped.
        self.breaker = Breaker(state, project.breaker, self.metrics, clock)
        self.watch = SelfWatch(project, self.metrics, self.courier, clock)
        self.sampler, self.alerts = self.watch.sampler, self.watch.alerts
        self.runners: list[PartitionRunner] = []
        self.traffic: Traffic | None = None  # the shaping of this process's sends, if it sends
        if self.courier is not None:
            parts = PartitionParts(
                project,
                log,
                state,
                bus,
                self.courier,
                self.append,
                self.metrics,
                clock,
                breaker=self.breaker,
            )
            self.runners = [parts.runner(p) for p in range(log.partitions)]
            self.traffic = parts.traffic
        self._tasks: list[asyncio.Task[None]] = []
        # Bounces, complaints and mailto unsubscribes come back here ([inbound]).
        self.inbound = inbound_for(project, state, self.tokens, self.append, self.metrics, clock)

    @classmethod
    def embedded(
        cls,
        project: Project,
        data_dir: Path,
        *,
        courier: Courier | None = None,
        smtp: tuple[str, int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Pipeline:
        """One process, SQLite files in `data_dir`, the in-process bus. Without a `courier`,
        a courier process sends through the project's relay, or `smtp` (a local sink)."""
        catalog = embedded_catalog(data_dir)
        secret = project_secret(project.config.project.secret, data_dir)
        return cls(
            project,
            log=SqliteEventLog(data_dir / "log.db"),
            state=SqliteStateStore(data_dir / "state.db"),
            bus=InProcessBus(partitions=1),
            courier=courier or courier_processes(project, secret, smtp, catalog.location),
            catalog=catalog,
            clock=clock,
            secret=secret,
        )

    async def start(self) -> None:
        await self.log.open()
        await self.state.open()
        if self.catalogs is not None:
            await self.catalogs.store.open()
        await self.access.open()
        await self.keys.refresh()
        await self.bus.open()
        if self.courier is not None:
            await self.courier.start()
        for runner in self.runners:
            await runner.start()
        stages = [
            ("dedup-window", self._forget_old_message_ids),
            ("api-keys", self.keys.run),
            ("event-retention", self._keep_retention),
        ]
        if self.catalogs is not None:
            stages.append(("catalog-events", self.catalogs.run))
        stages.append(("breaker", self.breaker.run))
        stages += self.watch.stages()
        # Of every partition, so in scale-out the API node watches what all workers send.
        stages.append(("backlog-age", self._keep_backlog_age))
        if isinstance(self.bus, InProcessBus):  # a network bus's depth is the broker's to report
            stages.append(("gauges", self._update_gauges))
        self._tasks = start_stages(stages, self.metrics, "mailpulse")
        if self.inbound is not None:
            await self.inbound.start()

    async def stop(self) -> None:
        if self.inbound is not None:
            await self.inbound.stop()
        await cancel_all(self._tasks)
        await self.watch.close()
        for runner in self.runners:
            await runner.stop()
        if self.courier is not None:
            await self.courier.close()
        await self._ingest.drain()
        await self.bus.close()
        await self.access.close()
        if self.catalogs is not None:
            await self.catalogs.store.close()
        await self.state.close()
        await self.log.close()

    async def append(self, events: Sequence[Event]) -> list[Event]:
        """Durably append events; the answer to the client waits for this."""
        return await self._ingest.append(events)

    async def _forget_old_message_ids(self) -> None:
        window = self.project.durations.dedup_window
        while True:
            await self.log.forget_message_ids(self._clock() - window)
            await asyncio.sleep(min(window / 10, 600))

    async def _keep_retention(self) -> None:
        retention = self.project.durations.event_retention
        await keep_retention(self.log, self.state, retention, self.metrics, self._clock)

    async def _keep_backlog_age(self) -> None:
        await keep_backlog_age(self.state, self.log.partitions, self.metrics, self._clock)

    async def _update_gauges(self) -> None:
        assert isinstance(self.bus, InProcessBus)
        while True:
            self.metrics.queue_depth.labels("fold").set(self.bus.depth(EVENTS))
            self.metrics.queue_depth.labels("send").set(self.bus.depth(SENDS))
            await asyncio.sleep(1.0)
