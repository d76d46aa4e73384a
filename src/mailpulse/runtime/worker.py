"""`mailpulse worker`: runs the partitions this process owns, and hands them on when it must.

Ownership comes from `PartitionLeases`. A partition is started only once its lock is held, and
stopped before its lock is let go, so two workers never run one partition. When the lease
session is lost (PostgreSQL restarted, the network cut), every partition stops at once: other
workers may already hold them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mailpulse.bus import Bus
from mailpulse.observe import Metrics
from mailpulse.project import Project
from mailpulse.runtime.alerting import SelfWatch
from mailpulse.runtime.breaker import Breaker
from mailpulse.runtime.courier import Courier
from mailpulse.runtime.ingest import Ingest
from mailpulse.runtime.leases import PartitionLeases
from mailpulse.runtime.partition import PartitionParts, PartitionRunner
from mailpulse.runtime.supervise import cancel_all, start_stages
from mailpulse.runtime.wiring import catalog_for, courier_processes
from mailpulse.store import EventLog, StateStore
from mailpulse.tokens import project_secret

log = logging.getLogger("mailpulse.worker")

BALANCE_EVERY = 1.0  # seconds between ownership rounds: how soon a dead worker's work moves


class Worker:
    def __init__(
        self,
        project: Project,
        *,
        log: EventLog,
        state: StateStore,
        bus: Bus,
        leases: PartitionLeases,
        courier: Courier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.project = project
        self.metrics = Metrics()
        self.log = log
        self.state = state
        self.bus = bus
        self.leases = leases
        if courier is None:
            # Its templates read the catalog kept beside the state.
            catalog = catalog_for(state)
            secret = project_secret(project.config.project.secret, None)
            courier = courier_processes(project, secret, catalog=catalog and catalog.location)
        self.courier = courier
        # This worker's alert rules, judged on what its partitions send (see observe.alerts).
        self.watch = SelfWatch(project, self.metrics, courier, clock)
        self.sampler, self.alerts = self.watch.sampler, self.watch.alerts
        self._ingest = Ingest(log, bus, self.metrics)
        # Judged by every worker (the store keeps each move once); held by this one's senders.
        self.breaker = Breaker(state, project.breaker, self.metrics, clock)
        self._parts = PartitionParts(
            project,
            log,
            state,
            bus,
            self.courier,
            self._ingest.append,
            self.metrics,
            clock,
            breaker=self.breaker,
        )
        self.runners: dict[int, PartitionRunner] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.log.open()
        await self.state.open()
        await self.bus.open()
        await self.courier.start()
        stages = [("breaker", self.breaker.run), *self.watch.stages()]
        self._tasks = start_stages(stages, self.metrics, "mailpulse")

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        await self.watch.close()
        await self._stop_all()
        await self.leases.close()
        await self.courier.close()
        await self._ingest.drain()
        await self.bus.close()
        await self.state.close()
        await self.log.close()

    async def run(self) -> None:
        while True:
            try:
                await self.balance()
            except Exception:
                log.exception("lost the partition leases; stopping every partition")
                await self._stop_all()
                await self.leases.close()
            await asyncio.sleep(BALANCE_EVERY)

    async def balance(self) -> None:
        """One ownership round: give up the surplus, take free partitions up to the share."""
        leases = self.leases
        if not leases.alive:
            await self._stop_all()
            await leases.open()
        elif not await leases.still_held():
            raise ConnectionError("advisory locks vanished from the lease session")
        share = await leases.fair_share()
        for partition in sorted(leases.owned, reverse=True)[: max(0, len(leases.owned) - share)]:
            await self._stop(partition)
            await leases.release(partition)
            log.info("handed partition %s on", partition)
        await leases.acquire(share)
        for partition in sorted(leases.owned - self.runners.keys()):
            if not await leases.may_start(partition):
                continue  # its previous owner may still be recording sends; next round
            runner = self._parts.runner(partition)
            try:
                await runner.start()
            except Exception:
                log.exception("partition %s did not start; it is let go for now", partition)
                await runner.stop()
                await leases.stopped_cleanly(partition)
                await leases.release(partition)
                continue
            self.runners[partition] = runner
            log.info("took partition %s", partition)

    async def _stop(self, partition: int) -> None:
        runner = self.runners.pop(partition, None)
        if runner is not None:
            await runner.stop()
            await self.leases.stopped_cleanly(partition)

    async def _stop_all(self) -> None:
        for partition in list(self.runners):
            await self._stop(partition)
