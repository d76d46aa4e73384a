"""Where an alert's firing and resolving is told: mailpulse's log, webhooks, email.

The alert engine hands each notice over and goes on: every target has a queue and one task
that works through it in order (so a resolve never overtakes its fire), retrying a failed
delivery with backoff. A slow or dead target delays only its own notices, never the pipeline
or the other targets; past `QUEUE_LIMIT` waiting notices the oldest is dropped, logged and
counted.

Email goes straight to the project's relay as one SMTP transaction, not through the pipeline:
an alert about delivery (the relay refusing everything, the breaker holding marketing, a
backlog) must not wait in the queue it reports on, and an operator is not a contact whose
message belongs in the outbox, the log and the campaign figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Literal, Protocol

import httpx

from mailpulse.observe.metrics import Metrics
from mailpulse.policy.breaker import format_percent
from mailpulse.units import format_duration

log = logging.getLogger("mailpulse.alerts")

QUEUE_LIMIT = 1000
BACKOFF = (0.5, 30.0)  # the first retry's wait, doubled each time up to the second


@dataclass(frozen=True)
class Notice:
    """One alert firing or resolving, with the figures that crossed."""

    alert: str
    status: Literal["firing", "resolved"]
    severity: str
    summary: str
    expr: str
    op: str
    value: float
    threshold: float
    window: float
    for_: float
    at: float
    since: float  # firing: since when the rule held; resolved: when it fired
    shown_as: str
    project: str

    def shown(self, figure: float) -> str:
        return show(figure, self.shown_as)

    def headline(self) -> str:
        word = "FIRING" if self.status == "firing" else "resolved"
        return (
            f"{word} {self.alert} ({self.severity}): {self.expr} = {self.shown(self.value)} "
            f"{'' if self.status == 'firing' else 'no longer '}{self.op} "
            f"{self.shown(self.threshold)}{self.over()}"
        )

    def over(self) -> str:
        """The window, as a headline ends: " over 15m", or nothing for a gauge read now."""
        return f" over {format_duration(self.window)}" if self.window else ""

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["for"] = out.pop("for_")
        out["value_shown"] = self.shown(self.value)
        out["threshold_shown"] = self.shown(self.threshold)
        return out


def show(figure: float, shown_as: str) -> str:
    """A figure as its threshold was written: 0.05 as "5%", 0.25 as "250ms"."""
    if shown_as == "percent":
        return format_percent(figure)
    if shown_as == "duration":
        return f"{figure * 1000:.0f}ms" if figure < 1 else format_duration(figure)
    return f"{figure:.6g}"


class Notifier(Protocol):
    async def deliver(self, notice: Notice) -> None:
        """Deliver once; raise `Undeliverable` to give up, any other error to be retried."""
        ...

    async def close(self) -> None: ...


class Undeliverable(Exception):
    """The target refused the notice for good (a 4xx): no retry."""


class WebhookNotifier:
    """POSTs the notice as JSON; a 2xx is delivered, a 408, 429 or 5xx is retried."""

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def deliver(self, notice: Notice) -> None:
        response = await self._client.post(self._url, json=notice.as_json())
        if response.is_success:
            return
        problem = f"{self._url} answered {response.status_code}"
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise RuntimeError(problem)
        raise Undeliverable(problem)

    async def close(self) -> None:
        await self._client.aclose()


# Sends one message (from, to, RFC 5322 bytes); returns None when the relay took it, or why
# not and whether that is for good (a 5xx).
SendMail = Callable[[str, str, bytes], Awaitable[tuple[str, bool] | None]]


class EmailNotifier:
    """A plain-text message to each address, through the project's relay."""

    def __init__(self, to: Sequence[str], send: SendMail, from_addr: str, return_path: str) -> None:
        self._to, self._send = tuple(to), send
        self._from, self._return_path = from_addr, return_path
        self._done: dict[tuple[str, float, str], None] = {}  # (alert, at, address) delivered

    async def deliver(self, notice: Notice) -> None:
        for address in self._to:
            key = (notice.alert, notice.at, address)
            if key in self._done:  # a retry goes only to the addresses that failed
                continue
            refused = await self._send(self._return_path, address, self._message(notice, address))
            if refused is not None:
                why, permanent = refused
                raise (Undeliverable if permanent else RuntimeError)(f"to {address}: {why}")
            self._done[key] = None
            while len(self._done) > 4 * QUEUE_LIMIT:
                del self._done[next(iter(self._done))]

    def _message(self, notice: Notice, address: str) -> bytes:
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = address
        message["Subject"] = f"[mailpulse {notice.project}] {notice.headline()}"
        message["Date"] = format_datetime(datetime.fromtimestamp(notice.at, UTC))
        domain = self._return_path.rpartition("@")[2] or None
        message["Message-ID"] = make_msgid("alert", domain=domain)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
        lines = [
            notice.summary,
            "",
            f"alert:      {notice.alert} ({notice.severity}), {notice.status}",
            f"figure:     {notice.expr}",
            f"value:      {notice.shown(notice.value)}",
            f"threshold:  {notice.op} {notice.shown(notice.threshold)}",
            f"window:     {format_duration(notice.window) if notice.window else 'now'}",
            f"at:         {_iso(notice.at)}",
            f"{'held since' if notice.status == 'firing' else 'fired at'}: {_iso(notice.since)}",
        ]
        message.set_content("\n".join(lines) + "\n")
        return message.as_bytes()

    async def close(self) -> None:
        return None


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Target:
    notifier: Notifier
    retries: int


class Dispatcher:
    """Hands notices to their targets without waiting for them (see the module's doc)."""

    def __init__(self, targets: Mapping[str, Target], metrics: Metrics) -> None:
        self._targets = dict(targets)
        self._metrics = metrics
        self._queues: dict[str, deque[Notice]] = {name: deque() for name in targets}
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing = False

    def notify(self, notice: Notice, names: Sequence[str]) -> None:
        for name in names:
            if name == "log":
                critical = notice.severity == "critical" and notice.status == "firing"
                level = logging.ERROR if critical else logging.WARNING
                log.log(level, "alert %s: %s", notice.headline(), notice.summary)
                self._metrics.alert_notifications.labels("log", "delivered").inc()
                continue
            queue = self._queues[name]
            if len(queue) >= QUEUE_LIMIT:
                dropped = queue.popleft()
                self._metrics.alert_notifications.labels(name, "dropped").inc()
                log.error("alert notifier %s is behind: dropped %s", name, dropped.headline())
            queue.append(notice)
            self._start(name)

    def _start(self, name: str) -> None:
        wake = self._wake.setdefault(name, asyncio.Event())
        wake.set()
        task = self._tasks.get(name)
        if task is None or task.done():
            self._tasks[name] = asyncio.create_task(self._work(name), name=f"alerts-{name}")

    async def _work(self, name: str) -> None:
        target, queue, wake = self._targets[name], self._queues[name], self._wake[name]
        while True:
            while queue:
                notice = queue[0]
                result = await self._deliver(name, target, notice)
                self._metrics.alert_notifications.labels(name, result).inc()
                if queue and queue[0] is notice:
                    queue.popleft()
            if self._closing:
                return
            wake.clear()
            await wake.wait()

    async def _deliver(self, name: str, target: Target, notice: Notice) -> str:
        wait = BACKOFF[0]
        for attempt in range(target.retries + 1):
            try:
                await target.notifier.deliver(notice)
                return "delivered"
            except Undeliverable as refused:
                log.error("alert %s not delivered to %s: %s", notice.alert, name, refused)
                return "refused"
            except Exception as exc:
                if attempt == target.retries:
                    log.error(
                        "alert %s not delivered to %s after %d attempts: %s",
                        notice.alert,
                        name,
                        attempt + 1,
                        exc or type(exc).__name__,
                    )
                    return "failed"
                log.warning("alert %s to %s failed (%s); retrying", notice.alert, name, exc)
            await asyncio.sleep(wait)
            wait = min(wait * 2, BACKOFF[1])
        return "failed"

    async def close(self, within: float = 5.0) -> None:
        """Give the notices already handed over a moment to go out, then stop."""
        self._closing = True
        for wake in self._wake.values():
            wake.set()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=within)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for target in self._targets.values():
            await target.notifier.close()
