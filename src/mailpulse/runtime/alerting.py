"""Builds a pipeline's alert engine: its rules from the project, its notifiers (the log,
webhooks, email through the project's relay), and the backlog-age gauge one rule watches;
`SelfWatch` is what a server and a scale-out worker alike keep of themselves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from mailpulse.observe import Metrics
from mailpulse.observe.alerts import AlertEngine
from mailpulse.observe.alerts_rules import EmailTarget, WebhookTarget
from mailpulse.observe.notify import (
    Dispatcher,
    EmailNotifier,
    SendMail,
    Target,
    WebhookNotifier,
)
from mailpulse.observe.sampler import MetricSampler
from mailpulse.project import Project
from mailpulse.runtime.courier import Courier
from mailpulse.runtime.courier_parts import relay_for, sender_identity
from mailpulse.runtime.courier_pool import CourierPool
from mailpulse.runtime.courier_process import CourierProcess
from mailpulse.store import StateStore
from mailpulse.types import DeliveryResult, DeliveryStatus

BACKLOG_EVERY = 1.0  # seconds between looks at the oldest message due


class SelfWatch:
    """A process's watch on itself: the recent history of its metrics (for the dashboard and
    the alert rules), the rules judged on it with their notifiers, and its couriers' CPU and
    memory among its metrics."""

    def __init__(
        self,
        project: Project,
        metrics: Metrics,
        courier: Courier | None,
        clock: Callable[[], float],
    ) -> None:
        if isinstance(courier, CourierProcess | CourierPool):
            metrics.watch_couriers(courier.pids)
        self.sampler = MetricSampler(metrics.registry)
        self.alerts, self._notices = alert_engine(project, self.sampler, metrics, clock)

    def stages(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        return [("metric-sampler", self.sampler.run), ("alerts", self.alerts.run)]

    async def close(self) -> None:
        await self._notices.close()


def alert_engine(
    project: Project, sampler: MetricSampler, metrics: Metrics, clock: Callable[[], float]
) -> tuple[AlertEngine, Dispatcher]:
    targets: dict[str, Target] = {}
    identity = sender_identity(project)
    for name, target in project.alerts.notifiers.items():
        if isinstance(target, WebhookTarget):
            targets[name] = Target(WebhookNotifier(target.url, target.timeout), target.retries)
        elif isinstance(target, EmailTarget):
            notifier = EmailNotifier(
                target.to, _relay_mail(project), identity.from_addr, identity.return_path
            )
            targets[name] = Target(notifier, target.retries)
    dispatcher = Dispatcher(targets, metrics)
    engine = AlertEngine(
        project.alerts,
        sampler,
        dispatcher.notify,
        metrics,
        project.config.project.name,
        clock=clock,
        every=sampler.interval,
    )
    return engine, dispatcher


def _relay_mail(project: Project) -> SendMail:
    """One SMTP transaction per message through the project's relay, a connection each time
    (alerts are few)."""

    async def send(mail_from: str, rcpt_to: str, data: bytes) -> tuple[str, bool] | None:
        relay = relay_for(project)
        try:
            opened = await relay.begin(f"alert:{time.time()}", mail_from, rcpt_to)
            result = opened if isinstance(opened, DeliveryResult) else await opened.finish(data)
        finally:
            await relay.close()
        if result.status == DeliveryStatus.SENT:
            return None
        return f"{result.code} {result.text}", result.status == DeliveryStatus.BOUNCED

    return send


async def keep_backlog_age(
    state: StateStore, partitions: int, metrics: Metrics, clock: Callable[[], float]
) -> None:
    """mailpulse_outbox_backlog_seconds: how long the oldest message due has waited."""
    while True:
        now = clock()
        oldest = now
        for partition in range(partitions):
            for status in ("queued", "deferred"):  # each by its own index: one row read
                rows = await state.outbox_due(now, 1, status, partition)
                if rows:
                    oldest = min(oldest, rows[0].next_attempt_at)
        metrics.outbox_backlog.set(now - oldest)
        await asyncio.sleep(BACKLOG_EVERY)
