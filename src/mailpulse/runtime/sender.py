"""Delivery: queued intents go to a courier, and what it reports becomes state and events.

The courier renders, signs and runs the SMTP transaction; its answer (never an exception for a
4xx/5xx) decides the outbox row's next state: sent, bounced, deferred with a retry time, expired
or failed. Every transition is recorded with its lifecycle event in one state transaction.

A send to a destination that a shaping rule limits first waits for its turn and for one of the
destination's connections. While it waits it holds no delivery slot (sends elsewhere go on),
only a place among at most MAX_WAITING waiting sends; beyond those the sender takes nothing more
from the bus, which keeps the rest. The sender is the one place that sees every send of its
process, whichever courier process carries it: it keeps the connection limits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from mailpulse.bus import Bus
from mailpulse.delivery.shaping import Destination, asks_to_slow_down
from mailpulse.observe import Metrics
from mailpulse.policy import SuppressionIndex, address_hash, blocking, describe
from mailpulse.runtime.breaker import Breaker
from mailpulse.runtime.courier import Courier, Delivered
from mailpulse.runtime.fold import SENDS
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.runtime.shipper import LifecycleShipper
from mailpulse.runtime.traffic import Traffic
from mailpulse.store import OutboxStatus, OutboxUpdate, StateStore
from mailpulse.types import DeliveryResult, DeliveryStatus, Event, MessageClass, SendIntent

log = logging.getLogger("mailpulse.sender")


STALE_QUEUED = 10.0  # seconds: a queued row older than this was lost by the bus
MAX_WAITING = 1024  # sends waiting for their destination's turn, per sender


@dataclass(frozen=True)
class RetryPolicy:
    schedule: tuple[float, ...]
    max_age: float

    def next_delay(self, attempts: int) -> float:
        return self.schedule[min(attempts - 1, len(self.schedule) - 1)]


class Sender:
    def __init__(
        self,
        *,
        state: StateStore,
        bus: Bus,
        shipper: LifecycleShipper,
        courier: Courier,
        retry: RetryPolicy,
        metrics: Metrics,
        traffic: Traffic,
        concurrency: int,
        partition: int = 0,
        clock: Callable[[], float] = time.time,
        outbox_decides: bool = False,
        breaker: Breaker | None = None,
    ) -> None:
        """`outbox_decides`: the bus may bring an intent twice (a worker died before acking
        its batch) or never (a publish failed after the commit); the outbox row then decides
        whether to send, and rows queued for long are picked up from the store. `breaker`:
        the protective breaker, which holds marketing while it is tripped."""
        self._outbox_decides = outbox_decides
        self._breaker = breaker
        self._state = state
        self._bus = bus
        self._shipper = shipper
        self._courier = courier
        self._retry = retry
        self._metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._traffic = traffic
        self._waiting = asyncio.Semaphore(MAX_WAITING)
        self._turn_waits: dict[str, asyncio.Task[None]] = {}  # intent key -> its task
        self._partition = partition
        self._clock = clock
        self._in_hand: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writes: _Writes | None = None  # outcomes waiting to be written together

    def foresee(self, intent: SendIntent) -> None:
        """An intent the fold is about to queue, told before its event is durable: the
        courier prepares it, unless a backlog means its submit would not come at once.
        Nor is a send to a limited destination prepared: whether its turn is now is known
        only when it comes (in scale-out, from the shared store), and a transaction opened
        early would hold a connection that sends elsewhere need while it waits."""
        if self._held(intent):
            return  # it will not be submitted
        if not self._slots.locked() and self._traffic.unhindered(intent.email):
            self._courier.prepare(intent)

    async def run(self) -> None:
        while True:
            intents = await self._bus.next_batch(SENDS, self._partition, 256, None)
            if self._outbox_decides:
                intents = await self._still_queued(intents)
            for intent, attempts in await self._screened([(i, 0) for i in intents]):
                await self._dispatch(intent, attempts)

    async def run_retries(self, interval: float = 1.0) -> None:
        """Picks up deferred rows whose next attempt has come (and, when the outbox decides,
        rows queued so long ago that the bus must have lost their intent)."""
        while True:
            await asyncio.sleep(interval)
            now = self._clock()
            rows = await self._state.outbox_due(now, 500, OutboxStatus.DEFERRED, self._partition)
            if self._outbox_decides:
                rows += await self._state.outbox_due(
                    now - STALE_QUEUED, 500, OutboxStatus.QUEUED, self._partition
                )
            for intent, attempts in await self._screened([(r.intent, r.attempts) for r in rows]):
                await self._dispatch(intent, attempts)

    async def _still_queued(self, intents: list[SendIntent]) -> list[SendIntent]:
        """One look-up for the batch, not one per intent."""
        queued = await self._state.outbox_queued([intent.key for intent in intents])
        return [intent for intent in intents if intent.key in queued]

    async def recover(self) -> None:
        """After a restart, queued rows are either untried or were in flight at the crash:
        send them again (same Message-ID, so a receiver can tell the double)."""
        rows = await self._state.outbox_due(
            float("inf"), 1_000_000, OutboxStatus.QUEUED, self._partition
        )
        for intent, attempts in await self._screened([(r.intent, r.attempts) for r in rows]):
            await self._dispatch(intent, attempts)

    async def _screened(self, sends: list[tuple[SendIntent, int]]) -> list[tuple[SendIntent, int]]:
        """What may go now: nothing suppressed (see `_unsuppressed`), and no marketing while
        the protective breaker is tripped (see `_hold_for_breaker`)."""
        kept = await self._unsuppressed(sends)
        breaker = self._breaker
        if breaker is None or not any(self._marketing(intent) for intent, _ in kept):
            return kept
        # Read afresh for each batch, as suppression is: held from the moment a trip by any
        # process is durable, not from when this one next judges.
        tripped_at = (await breaker.read()).tripped_at
        return kept if tripped_at is None else await self._hold_for_breaker(kept, tripped_at)

    def _held(self, intent: SendIntent) -> bool:
        """Whether the breaker holds `intent` (as this process last read it)."""
        breaker = self._breaker
        return breaker is not None and breaker.tripped and self._marketing(intent)

    @staticmethod
    def _marketing(intent: SendIntent) -> bool:
        return intent.message_class == MessageClass.MARKETING

    async def _hold_for_breaker(
        self, sends: list[tuple[SendIntent, int]], tripped_at: float
    ) -> list[tuple[SendIntent, int]]:
        """Marketing waits, its rows deferred (no attempt counted) until a resume lets them
        go, with one `Email Held` per message and trip: held again in the same trip (a
        replay), one event; in a later trip, another. Held only if the store still finds the
        breaker tripped; if a resume came that this process has not read yet, they go."""
        held = [intent for intent, _ in sends if self._marketing(intent)]
        now = self._clock()
        events = [
            lifecycle_event(Lifecycle.HELD, intent, now, attempt=int(tripped_at), reason="breaker")
            for intent in held
        ]
        keys = [intent.key for intent in held]
        if not await self._state.hold_for_breaker(keys, now, events, self._partition):
            return sends
        self._metrics.count_email("held", len(held))
        self._shipper.ship(events)
        return [(intent, n) for intent, n in sends if not self._marketing(intent)]

    async def _unsuppressed(
        self, sends: list[tuple[SendIntent, int]]
    ) -> list[tuple[SendIntent, int]]:
        """Suppression wins at the moment of sending too: an entry added after the fold
        queued a message (or while it waited for quiet hours, a quota or a retry) stops it
        here, recorded as suppressed. One look-up for the batch; sends already under way are
        left to finish."""
        sends = [(intent, n) for intent, n in sends if intent.key not in self._in_hand]
        hashes = sorted({address_hash(intent.email) for intent, _ in sends if intent.email})
        found = await self._state.suppressions_for(hashes) if hashes else []
        if not found:
            return sends
        index, kept = SuppressionIndex(found), []
        for intent, attempts in sends:
            entry = blocking(index.of(intent.email), intent.message_class, intent.topic)
            if entry is None:
                kept.append((intent, attempts))
                continue
            self._metrics.sends_blocked.labels(entry.reason).inc()
            reason = describe(entry)
            await self._finish(
                intent,
                attempts,
                OutboxStatus.SUPPRESSED,
                Lifecycle.SUPPRESSED,
                0,
                reason,
                reason=reason,
            )
        return kept

    async def _dispatch(self, intent: SendIntent, attempts: int = 0) -> None:
        if intent.key in self._in_hand:
            return
        self._in_hand.add(intent.key)
        if self._traffic.unhindered(intent.email):
            await self._slots.acquire()
            self._start(self._deliver(intent, attempts, self._courier.submit(intent)))
            return
        # Its destination may take a DNS look-up to know: that waits in its own task too.
        await self._waiting.acquire()
        self._turn_waits[intent.key] = self._start(self._deliver_in_turn(intent, attempts))

    def _start(self, delivery: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(delivery)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        """Finish the sends under way. Sends still waiting for their turn are called off:
        nothing of them went out, and their rows stay queued for the next start or owner."""
        for task in self._turn_waits.values():
            task.cancel()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _deliver_in_turn(self, intent: SendIntent, attempts: int) -> None:
        destination: Destination | None = None
        holding = False  # a delivery slot and the destination's connection
        try:
            destination = await self._traffic.destinations.of(intent.email)
            waited = await self._take_turn(destination)
            holding = True
            # The breaker tripped while it waited for its turn (which may take minutes): it
            # goes no further, and takes no quota.
            tripped = self._held(intent)
            held_until = None if tripped else await self._traffic.quotas.take()
        except Exception:
            if holding:
                self._let_go(destination)
            self._in_hand.discard(intent.key)
            self._metrics.errors.labels("shaping").inc()
            log.exception("no turn for %s; its row stays as it was", intent.key)
            return
        except asyncio.CancelledError:
            if holding:
                self._let_go(destination)
            self._in_hand.discard(intent.key)
            raise
        finally:
            del self._turn_waits[intent.key]
            self._waiting.release()
        if tripped:
            self._let_go(destination)
            await self._hold_in_turn(intent, attempts)
            return
        self._count_quotas()
        if held_until is not None:
            self._let_go(destination)
            await self._hold(intent, attempts, held_until)
            return
        if destination is not None:
            self._metrics.shaping_wait.labels(destination.rule.name).observe(waited)
        await self._deliver(intent, attempts, self._courier.submit(intent), destination)

    async def _hold_in_turn(self, intent: SendIntent, attempts: int) -> None:
        """Held as a batch's marketing is; if the store finds the breaker resumed meanwhile,
        it is dispatched again."""
        assert self._breaker is not None
        try:
            tripped_at = self._breaker.record.tripped_at or 0.0
            left = await self._hold_for_breaker([(intent, attempts)], tripped_at)
        except Exception:
            self._metrics.errors.labels("record").inc()
            log.exception("cannot hold %s for the breaker; its row stays as it was", intent.key)
            return
        finally:
            self._in_hand.discard(intent.key)
        if left:
            await self._dispatch(intent, attempts)

    async def _take_turn(self, destination: Destination | None) -> float:
        """Waits for the destination's turn, the project's turn, one of the destination's
        connections and a delivery slot (held on return; none on an exception); answers the
        seconds waited."""
        loop = asyncio.get_running_loop()
        asked = loop.time()
        if destination is not None and destination.rule.rate is not None:
            await self._traffic.limiter.wait_turn(destination)
        if self._traffic.global_rate is not None:
            await self._traffic.limiter.wait_turn(self._traffic.global_rate)
        if destination is not None:
            await self._traffic.connections.acquire(destination)
        try:
            await self._slots.acquire()
        except BaseException:
            if destination is not None:
                self._traffic.connections.release(destination)
            raise
        if destination is not None:
            self._count_connections(destination)
        return loop.time() - asked

    def _count_quotas(self) -> None:
        quotas = self._traffic.quotas
        counted = quotas.counted()
        for quota in quotas.quotas:
            self._metrics.quota_limit.labels(quota.name).set(quota.limit)
            self._metrics.quota_used.labels(quota.name).set(counted[quota.name])

    def _let_go(self, destination: Destination | None) -> None:
        self._slots.release()
        if destination is not None:
            self._traffic.connections.release(destination)
            self._count_connections(destination)

    async def _hold(self, intent: SendIntent, attempts: int, until: float) -> None:
        """A quota is used up: the row waits for its window to turn, as the retry sweep
        finds it then, without an attempt counted."""
        now = self._clock()
        self._metrics.count_email("held")
        # The event's id carries the window's end: held again in the same window (a replay),
        # it is one event; held in a later window, another.
        event = lifecycle_event(
            Lifecycle.HELD, intent, now, attempt=int(until), reason="quota", until=until
        )
        update = OutboxUpdate(
            key=intent.key,
            status=OutboxStatus.DEFERRED,
            attempts=attempts,
            next_attempt_at=until,
            message_id="",
            last_code=0,
            last_text="quota",
            updated_at=now,
        )
        try:
            await self._write(update, event)
        finally:
            self._in_hand.discard(intent.key)

    def _count_connections(self, destination: Destination) -> None:
        if destination.rule.connections is not None:
            in_flight = self._traffic.connections.in_flight(destination.key)
            self._metrics.shaping_connections.labels(destination.rule.name).set(in_flight)

    async def _deliver(
        self,
        intent: SendIntent,
        attempts: int,
        pending: Awaitable[Delivered],
        destination: Destination | None = None,
    ) -> None:
        try:
            self._metrics.smtp_in_flight.inc()
            try:
                delivered = await pending
            finally:
                self._metrics.smtp_in_flight.dec()
            if delivered.result is None:
                await self._finish(
                    intent, attempts, OutboxStatus.FAILED, Lifecycle.FAILED, 0, delivered.error
                )
                return
            self._metrics.stage_render.observe(delivered.render_s)
            self._metrics.stage_sign.observe(delivered.sign_s)
            self._metrics.stage_smtp.observe(delivered.smtp_s)
            result = delivered.result
            if destination is not None and asks_to_slow_down(result.code, result.enhanced):
                factor = self._traffic.limiter.backoff.slow_down(destination.key)
                self._metrics.shaping_backoff.labels(destination.rule.name).set(factor)
            await self._record(intent, attempts + 1, delivered.message_id, result)
        except Exception:
            self._metrics.errors.labels("delivery").inc()
            log.exception("delivery of %s failed", intent.key)
        finally:
            self._in_hand.discard(intent.key)
            self._let_go(destination)

    async def _record(
        self, intent: SendIntent, attempts: int, message_id: str, result: DeliveryResult
    ) -> None:
        now = self._clock()
        reply = {"smtp_code": result.code, "smtp_status": result.enhanced, "smtp_text": result.text}
        if result.status == DeliveryStatus.SENT:
            # What an event triggered, not a broadcast's copies: their wait in its backlog
            # would set the p99 (and its alert) for as long as a campaign goes out.
            if intent.event_received_at and intent.campaign is None:
                self._metrics.event_to_smtp.observe(now - intent.event_received_at)
            status, kind = OutboxStatus.SENT, Lifecycle.SENT
        elif result.status == DeliveryStatus.BOUNCED:
            status, kind = OutboxStatus.BOUNCED, Lifecycle.BOUNCED
            reply["recipient"] = intent.email  # what a bad address's suppression entry names
        elif now - intent.created_at >= self._retry.max_age:
            status, kind = OutboxStatus.EXPIRED, Lifecycle.EXPIRED
        else:
            status, kind = OutboxStatus.DEFERRED, Lifecycle.DEFERRED
        next_at = now + self._retry.next_delay(attempts) if status == OutboxStatus.DEFERRED else now
        await self._finish(
            intent,
            attempts,
            status,
            kind,
            result.code,
            result.text,
            message_id=message_id,
            next_attempt_at=next_at,
            **reply,
        )

    async def _finish(
        self,
        intent: SendIntent,
        attempts: int,
        status: str,
        kind: Lifecycle,
        code: int,
        text: str,
        *,
        message_id: str = "",
        next_attempt_at: float = 0.0,
        **properties: Any,
    ) -> None:
        now = self._clock()
        self._metrics.count_email(status)
        if message_id:
            properties["message_id"] = message_id
        if status == OutboxStatus.DEFERRED:
            properties["next_attempt_at"] = next_attempt_at
        if status == OutboxStatus.FAILED:
            properties["reason"] = text
        event = lifecycle_event(
            kind,
            intent,
            now,
            attempt=attempts if kind == Lifecycle.DEFERRED else 0,
            attempts=attempts,
            **properties,
        )
        update = OutboxUpdate(
            key=intent.key,
            status=status,
            attempts=attempts,
            next_attempt_at=next_attempt_at or now,
            message_id=message_id,
            last_code=code,
            last_text=text,
            updated_at=now,
        )
        await self._write(update, event)

    async def _write(self, update: OutboxUpdate, event: Event) -> None:
        """The row and its event in one transaction: the shipper takes the event to the log.
        Outcomes that come in the same turn of the loop share the transaction (at a
        broadcast's pace, dozens: one store call for them, not one each)."""
        writes = self._writes
        if writes is None:
            writes = self._writes = _Writes()
            writes.done = self._start(self._write_together(writes))  # drain waits for it
        writes.updates.append(update)
        writes.events.append(event)
        # Shielded: a caller cancelled (a drain) must not cancel the others' write.
        await asyncio.shield(writes.done)

    async def _write_together(self, writes: _Writes) -> None:
        """The outcomes are known now; were they lost to a store outage, their rows would stay
        queued and the messages go out again. So they are written until the store takes them."""
        await asyncio.sleep(0)  # the other outcomes of this turn join
        self._writes = None
        pause = 0.1
        while True:
            try:
                await self._state.outbox_update(
                    writes.updates, lifecycle=writes.events, partition=self._partition
                )
                break
            except Exception:
                self._metrics.errors.labels("record").inc()
                log.warning("cannot record %d outcomes yet; retrying", len(writes.updates))
                await asyncio.sleep(pause)
                # Short: a partition's next owner waits for this (see runtime.leases).
                pause = min(pause * 2, 0.5)
        self._shipper.ship(writes.events)


@dataclass
class _Writes:
    """Outcomes written in one transaction."""

    updates: list[OutboxUpdate] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    done: asyncio.Task[None] | None = None
