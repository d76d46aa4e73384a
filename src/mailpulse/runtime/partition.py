"""One partition's work, done by its single writer: the fold, the sender and the shipper.

Embedded mode runs partition 0 (the only one) inside the server; in scale-out, a worker runs a
`PartitionRunner` for every partition it owns and stops it when the partition moves on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from mailpulse.bus import Bus, InProcessBus
from mailpulse.campaigns.runner import CampaignRunner
from mailpulse.observe import Metrics
from mailpulse.project import Project
from mailpulse.runtime.breaker import Breaker
from mailpulse.runtime.courier import Courier
from mailpulse.runtime.fold import FoldWorker
from mailpulse.runtime.sender import RetryPolicy, Sender
from mailpulse.runtime.shipper import LifecycleShipper
from mailpulse.runtime.supervise import cancel_all, start_stages
from mailpulse.runtime.traffic import Traffic
from mailpulse.runtime.wiring import traffic_for
from mailpulse.store import EventLog, StateStore
from mailpulse.types import Event


class PartitionRunner:
    def __init__(
        self,
        partition: int,
        *,
        project: Project,
        log: EventLog,
        state: StateStore,
        bus: Bus,
        courier: Courier,
        traffic: Traffic,
        append: Callable[[Sequence[Event]], Awaitable[list[Event]]],
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        breaker: Breaker | None = None,
    ) -> None:
        self.partition = partition
        self._bus = bus
        self._metrics = metrics
        self.shipper = LifecycleShipper(state, append, partition)
        self.sender = Sender(
            state=state,
            bus=bus,
            shipper=self.shipper,
            courier=courier,
            retry=RetryPolicy(project.durations.retry_schedule, project.durations.max_age),
            metrics=metrics,
            traffic=traffic,
            concurrency=project.config.delivery.concurrency,
            partition=partition,
            clock=clock,
            outbox_decides=not isinstance(bus, InProcessBus),
            breaker=breaker,
        )
        self.fold = FoldWorker(
            log=log,
            state=state,
            bus=bus,
            shipper=self.shipper,
            journeys=project.journeys,
            metrics=metrics,
            partition=partition,
            clock=clock,
            foresee=self.sender.foresee,
            policy=project.send_policy,
            segments=project.segment_set(),
            conversion=project.conversion,
        )
        reading = project.config.campaigns
        self.campaigns = CampaignRunner(
            log=log,
            state=state,
            append=append,
            clock=clock,
            page=reading.page,
            ahead=reading.ahead,
            holding=breaker.holding if breaker is not None else None,
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        # Rows queued before a crash (or by the partition's previous owner) are dispatched
        # once, before the fold can publish anything new.
        await self.sender.recover()
        stages = [
            ("fold", self.fold.run),
            ("lifecycle", self.shipper.run),
            ("sender", self.sender.run),
            ("retries", self.sender.run_retries),
        ]
        if self.partition == 0:
            # Campaigns read the whole audience and route each recipient through the log: one
            # runner for the deployment, where partition 0 runs.
            stages.append(("campaigns", self.campaigns.run))
        self._tasks = start_stages(
            stages,
            self._metrics,
            f"mailpulse-p{self.partition}",
        )

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        await self.sender.drain()
        await self._bus.release(self.partition)


@dataclass(frozen=True)
class PartitionParts:
    """What all the partitions one process runs share; `runner` makes one partition's."""

    project: Project
    log: EventLog
    state: StateStore
    bus: Bus
    courier: Courier
    append: Callable[[Sequence[Event]], Awaitable[list[Event]]]
    metrics: Metrics
    clock: Callable[[], float] = time.time
    # The process's protective breaker: its senders hold marketing while it is tripped.
    breaker: Breaker | None = None

    @cached_property
    def traffic(self) -> Traffic:
        """One for every partition this process runs; turns shared with other processes'
        through the store."""
        return traffic_for(self.project, self.state, self.clock)

    def runner(self, partition: int) -> PartitionRunner:
        return PartitionRunner(
            partition,
            project=self.project,
            log=self.log,
            state=self.state,
            bus=self.bus,
            courier=self.courier,
            traffic=self.traffic,
            append=self.append,
            metrics=self.metrics,
            clock=self.clock,
            breaker=self.breaker,
        )
