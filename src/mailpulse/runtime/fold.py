"""The fold: events, in log order, become profiles, journey positions and send intents.

One writer per partition (embedded mode: one for the whole log) keeps per-contact order. Each
batch is computed in memory, then its state changes and lifecycle events are committed together
with the checkpoint; only then are new intents handed to delivery.
A crash anywhere re-folds from the checkpoint, and every id involved is derived from its inputs,
so the re-fold changes nothing that was already done.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import msgspec

from mailpulse.audience import apply_event, lists, merge_contacts
from mailpulse.audience.interests import InterestIndex, fan_out_copy, interest_key
from mailpulse.audience.segments import MembershipChange, SegmentSet
from mailpulse.audience.segments.evaluate import holds
from mailpulse.audience.segments.incremental import KeptHistory
from mailpulse.bus import Bus, BusUnavailable, partition_of
from mailpulse.campaigns import CANCELLED, Campaign, campaign_of_key
from mailpulse.campaigns.abtest import CLICKS, CONVERSIONS, OPENS, SENT, Conversion
from mailpulse.journeys import (
    BranchStep,
    ContactTime,
    JourneyDefinition,
    JourneyInstance,
    SendEffect,
    is_audience,
    on_event,
    on_timer,
)
from mailpulse.observe import Metrics
from mailpulse.policy import (
    NO_POLICY,
    SendPolicy,
    SuppressionIndex,
    address_hash,
    check_send,
    remember_marketing,
)
from mailpulse.policy.breaker import bucket_of, counts_as_complaint
from mailpulse.policy.consent import SubscriptionChange, apply_subscription, confirmation_intent
from mailpulse.policy.localtime import contact_zone, trait_instant
from mailpulse.policy.suppression import (
    bounce_entry,
    canonical_address,
    complaint_entry,
    soft_bounce_entry,
)
from mailpulse.privacy.erasure import ERASED_BY, address_hashes_of
from mailpulse.privacy.scrub import is_customer_event, scrub_event, scrub_intent
from mailpulse.runtime.cache_bound import CacheBound
from mailpulse.runtime.engagement import ENGAGING, engage, is_machine
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.runtime.rollup import Rollup, about_unsubscribes
from mailpulse.runtime.segment_backfill import SegmentBackfill
from mailpulse.runtime.shipper import LifecycleShipper
from mailpulse.store import (
    FoldCommit,
    Handover,
    InstanceRecord,
    LogRolledBack,
    OutboxRow,
    OutboxStatus,
    SoftBounce,
    StateStore,
)
from mailpulse.store.interface import EventLog
from mailpulse.store.rows import ERASED_TEXT, WAITING
from mailpulse.types import (
    ConsentRecord,
    Contact,
    Event,
    EventType,
    MessageClass,
    SendIntent,
    Suppression,
    SuppressionReason,
    VariantSent,
    object_of,
)
from mailpulse.units import format_duration

log = logging.getLogger("mailpulse.fold")

EVENTS = "events"
SENDS = "sends"
_BATCH = 2000
# The caches hold the contacts seen lately, not the whole audience: past the bound, the oldest
# are dropped between batches (they are in the store, and come back on their next event). A
# contact with a handful of traits, its identities and journey positions takes ~1.6 KB of
# heap. The bound grows from the first figure towards the second while the contacts dropped
# come back (see mailpulse.runtime.cache_bound): a broadcast's recipients never do.
CACHED_CONTACTS = 5_000
MOST_CACHED_CONTACTS = 100_000
# How often the fold reads which journeys are paused or archived: a pause takes effect within
# this many seconds.
CONTROLS_EVERY = 0.5
PAUSED, ARCHIVED = "paused", "archived"
# A/B tests a contact's profile keeps its variant of: the oldest go past this many.
KEPT_VARIANTS = 20
# What an engagement event about a campaign's message counts as in its A/B test.
_ENGAGEMENTS = {Lifecycle.SENT.value: SENT, "Email Opened": OPENS, "Email Clicked": CLICKS}

_encode = msgspec.json.Encoder().encode
_decode_instance = msgspec.json.Decoder(JourneyInstance).decode
_decode_journey = msgspec.json.Decoder(JourneyDefinition).decode
_decode_campaign = msgspec.json.Decoder(Campaign).decode


def _record(instance: JourneyInstance) -> InstanceRecord:
    return InstanceRecord(
        instance_id=instance.instance_id,
        contact_id=instance.contact_id,
        journey_id=instance.journey_id,
        status=instance.status,
        wake_at=instance.wake_at,
        entered_at=instance.entered_at,
        body=_encode(instance),
    )


def merged_identity(ev: Event) -> tuple[str, bool] | None:
    """The other identity an identify or alias names, and whether only an anonymous profile
    may be merged through it (a device shared by two signed-in people must not merge them)."""
    if ev.forwarded:
        return None  # its merge was asked for where it first arrived
    if ev.type == EventType.ALIAS and ev.user_id is not None and ev.previous_id:
        return ev.previous_id, False
    if ev.user_id is not None and ev.anonymous_id is not None:
        return ev.anonymous_id, True
    return None


def merge_request_id(ev: Event, key: str) -> str:
    return f"{ev.message_id}>merge:{key}"


def _plumbing(kind: EventType, message_id: str, contact_key: str, properties: dict) -> Event:
    now = time.time()
    return Event(
        type=kind,
        message_id=message_id,
        contact_key=contact_key,
        properties=properties,
        timestamp=now,
        received_at=now,
    )


def merge_request(request: str, key: str, *, target: str, only_anonymous: bool) -> Event:
    props = {"request": request, "target": target, "only_anonymous": only_anonymous}
    return _plumbing(EventType.MERGE_REQUEST, request, key, props)


def merge_requests(events: Sequence[Event], partitions: int) -> list[Event]:
    """For each identify or alias whose other identity lives in another partition: the
    request to merge it, to be appended with the event itself, so that the other partition
    has it in its log before anything sent later under that identity."""
    requests = []
    for ev in events:
        merged = merged_identity(ev)
        if merged is None:
            continue
        key, only_anonymous = merged
        if partition_of(key, partitions) != partition_of(ev.contact_key, partitions):
            requests.append(
                merge_request(
                    merge_request_id(ev, key),
                    key,
                    target=ev.contact_key,
                    only_anonymous=only_anonymous,
                )
            )
    return requests


SEGMENT_ENTERED = "Segment Entered"
SEGMENT_EXITED = "Segment Exited"


def segment_event(contact_id: str, change: MembershipChange, cause: str) -> Event:
    kind = SEGMENT_ENTERED if change.entered else SEGMENT_EXITED
    return Event(
        type=EventType.TRACK,
        message_id=f"{kind}:{change.segment}:{cause}",
        contact_key=contact_id,
        event=kind,
        properties={"segment": change.segment},
        context={"library": {"name": "mailpulse"}},
        timestamp=change.at,
        received_at=change.at,
    )


def _recipient_of(ev: Event, email: str | None) -> str | None:
    """The address a bounce or complaint is about: the send's recipient as the event names
    it, else the contact's address; normalized, or None."""
    recipient = ev.properties.get("recipient", email)
    return canonical_address(recipient)[0] if isinstance(recipient, str) else None


def _campaign_of(ev: Event) -> str | None:
    """The campaign a recipient's copy of a campaign send is of (see mailpulse.campaigns)."""
    return ev.context.get("campaign") if ev.forwarded else None


def _named_campaign(properties: dict[str, object]) -> str | None:
    """The campaign an engagement event is about: its message's key, or the campaign's id."""
    key, campaign = properties.get("key"), properties.get("campaign")
    if isinstance(key, str) and (of_key := campaign_of_key(key)) is not None:
        return of_key
    return campaign if isinstance(campaign, str) else None


def contact_view(contact: Contact) -> dict[str, object]:
    """What templates see as `contact`: the traits plus id and address."""
    return {**contact.traits, "id": contact.id, "email": contact.email}


class _Position:
    """Where one contact stands in one journey: what the engine needs (the running instance
    and the last entry), not the whole history, so per-event work stays flat however many
    times a contact has been through a journey."""

    __slots__ = ("active", "last_entered_at", "last_instance_id")

    def __init__(self) -> None:
        self.active: JourneyInstance | None = None
        self.last_entered_at: float | None = None
        self.last_instance_id: str | None = None

    def entered(self, instance_id: str, entered_at: float) -> None:
        if self.last_entered_at is None or entered_at >= self.last_entered_at:
            self.last_entered_at, self.last_instance_id = entered_at, instance_id

    def record(self, instance: JourneyInstance) -> None:
        self.entered(instance.instance_id, instance.entered_at)
        if instance.status == "active":
            self.active = instance
        elif self.active is not None and self.active.instance_id == instance.instance_id:
            self.active = None


class _Batch:
    """What one fold batch changes; becomes one FoldCommit."""

    def __init__(self) -> None:
        self.contacts: set[str] = set()
        self.deleted: set[str] = set()
        self.identities: dict[str, str] = {}
        self.merges: dict[str, str] = {}
        self.handovers: list[Handover] = []
        self.instances: dict[str, JourneyInstance] = {}
        self.intents: list[OutboxRow] = []
        self.lifecycle: list[Event] = []
        self.segment_timers: dict[str, float | None] = {}
        self.interests: list[tuple[str, str, float]] = []
        self.journey_counts: Counter[tuple[str, str, str]] = Counter()
        self.segment_members: Counter[str] = Counter()
        self.variant_counts: Counter[tuple[str, str, str]] = Counter()
        self.suppressions: list[Suppression] = []
        # (owner, figure) → what opens, clicks and conversions add (runtime.engagement).
        self.engagement: Counter[tuple[str, str]] = Counter()
        self.revenue: Counter[tuple[str, str]] = Counter()
        self.lifted: list[tuple[str, str]] = []  # (address hash, topic) of unsubscribes lifted
        self.consents: list[ConsentRecord] = []
        self.soft_bounces: list[SoftBounce] = []
        # Bucket start → [marketing messages sent, complaints about them] (see
        # mailpulse.policy.breaker).
        self.complaint_counts: dict[float, list[int]] = {}
        # Erasure (see mailpulse.privacy): contacts erased now (every id of theirs is
        # scrubbed in the log), contacts whose state is erased (again), other keys whose events
        # are scrubbed, and the (partition, offset) of events folded as nothing.
        self.erased: set[str] = set()
        self.erasures: dict[str, float] = {}
        self.scrub_keys: set[str] = set()
        self.swallowed: list[tuple[int, int]] = []
        # What became of messages, per hour (see mailpulse.runtime.rollup).
        self.rollup = Rollup()


class FoldWorker:
    def __init__(
        self,
        *,
        log: EventLog,
        state: StateStore,
        bus: Bus,
        shipper: LifecycleShipper,
        journeys: Mapping[str, JourneyDefinition],
        metrics: Metrics,
        partition: int = 0,
        clock: Callable[[], float] = time.time,
        cached_contacts: int = CACHED_CONTACTS,
        most_cached_contacts: int = MOST_CACHED_CONTACTS,
        foresee: Callable[[SendIntent], None] | None = None,
        policy: SendPolicy = NO_POLICY,
        segments: SegmentSet | None = None,
        conversion: Conversion | None = None,
    ) -> None:
        """`conversion`: the project's conversion event, attributed to the last click."""
        self._policy = policy
        self._conversion = conversion
        self._engaging = ENGAGING | ({conversion.event} if conversion is not None else set())
        self._segments = segments or None
        self._interests = InterestIndex(journeys.values())
        # Message id of an event about an object → its audience: journey ids by contact.
        self._audiences: dict[str, dict[str, list[str]]] = {}
        # Campaign id → its definition and status, as of the batch that sends it.
        self._campaigns: dict[str, tuple[Campaign, str]] = {}
        self._cache_bound = CacheBound(cached_contacts, most_cached_contacts)
        self._foresee = foresee
        self._log = log
        self._state = state
        self._bus = bus
        self._shipper = shipper
        self._journeys = journeys
        # What starts a journey: any other event matters only to a contact already in one.
        self._triggers = frozenset(j.trigger.event for j in journeys.values())
        # Every version ever run: an instance finishes on the version it entered.
        self._versions: dict[tuple[str, str], JourneyDefinition] = {
            (j.id, j.version): j for j in journeys.values()
        }
        self._metrics = metrics
        self._partition = partition
        self._clock = clock
        self.checkpoint = 0
        self._next_wake: float | None = None
        self._pending: list[tuple[int, Event]] = []
        # Caches are write-through: after each commit they equal the store.
        self._ident: dict[str, str] = {}
        self._redirect: dict[str, str] = {}
        self._contacts: dict[str, Contact] = {}
        self._positions: dict[str, dict[str, _Position]] = {}  # contact -> journey -> position
        # Journeys paused or archived over the admin API, as last read from the store.
        self._controls: dict[str, str] = {}
        self._controls_read_at = -CONTROLS_EVERY
        # The suppression entries of the addresses the current batch may send to.
        self._suppressions = SuppressionIndex()
        # Address hash -> the soft bounces counted against it, for the current batch.
        self._soft_bounces: dict[str, list[float]] = {}
        # Key → the message an `Unsubscribed` of the current batch is about.
        self._unsubscribed: dict[str, SendIntent] = {}
        self.caught_up = asyncio.Event()

    # -- the loop ------------------------------------------------------------------------

    async def _load_versions(self) -> None:
        await self._state.save_journey_versions(
            [(j.id, j.version, _encode(j)) for j in self._journeys.values()]
        )
        for jid, version, body in await self._state.journey_versions():
            self._versions.setdefault((jid, version), _decode_journey(body))

    def _definition(self, instance: JourneyInstance) -> JourneyDefinition | None:
        return self._versions.get((instance.journey_id, instance.version))

    async def run(self) -> None:
        # Also after a crash of this task: whatever a failed batch left in the caches goes.
        await self._forget_speculation()
        await self._load_versions()
        if self._segments is not None:
            job = SegmentBackfill(
                log=self._log,
                state=self._state,
                segments=self._segments,
                partition=self._partition,
                clock=self._clock,
            )
            if await job.needed():
                await job.run()
        while await self._fold_from_log():
            pass
        self._next_wake = await self._state.next_wake(self._partition)
        self.caught_up.set()
        while True:
            now = self._clock()
            wait = 1.0 if self._next_wake is None else min(1.0, max(0.0, self._next_wake - now))
            items = await self._bus.next_batch(EVENTS, self._partition, _BATCH, wait)
            if not items and await self._log.head(self._partition) > self.checkpoint:
                # Durable, but the bus never brought them (a publish that failed after the
                # commit, or a broker that lost them): the log is the authority.
                while await self._fold_from_log():
                    pass
            for ev in items:
                if ev.offset > self.checkpoint and not self._log.lost(ev.offset, self._partition):
                    heapq.heappush(self._pending, (ev.offset, ev))
            await self._fold_pending()
            await self._read_controls()
            if self._next_wake is not None and self._clock() >= self._next_wake:
                await self._fire_timers()

    async def _fold_pending(self) -> None:
        while self._pending and self._pending[0][0] <= self.checkpoint:
            heapq.heappop(self._pending)
        if not self._pending:
            return
        if self._pending[0][0] != self.checkpoint + 1:
            # A gap: offsets a rolled-back write used, or events from before a restart. The
            # log is the authority, once it holds the first event we are waiting with (else
            # the read finds nothing and the event waits for the next arrival to be looked at).
            head = self._pending[0][0]
            try:
                await self._log.wait_durable(head, head, self._partition)
            except LogRolledBack:
                heapq.heappop(self._pending)
                return
            await self._fold_from_log()
            return
        run: list[Event] = []
        expected = self.checkpoint + 1
        while self._pending and self._pending[0][0] == expected and len(run) < _BATCH:
            run.append(heapq.heappop(self._pending)[1])
            expected += 1
        await self._fold(run, fresh=True)

    async def _fold_from_log(self) -> bool:
        events = await self._log.read(self.checkpoint, _BATCH, self._partition)
        if events:
            await self._fold(events)
        return bool(events)

    # -- one batch -----------------------------------------------------------------------

    async def _read_controls(self) -> None:
        if time.monotonic() - self._controls_read_at < CONTROLS_EVERY:
            return
        controls = await self._state.journey_controls()
        self._controls_read_at = time.monotonic()
        if controls != self._controls:
            self._controls = controls
            # A resumed journey's timers that came due while it was paused fire now.
            self._next_wake = await self._state.next_wake(self._partition)

    async def _fold(self, events: list[Event], *, fresh: bool = False) -> None:
        """`fresh`: events just appended, not replayed from the log, so their intents are
        new and worth preparing while the fsync runs."""
        t0 = time.perf_counter()
        await self._read_controls()
        await self._prefetch(events)
        batch = _Batch()
        for ev in events:
            try:
                self._fold_event(ev, batch)
            except Exception:
                # One malformed or unexpected event must not stall every contact behind it.
                self._metrics.errors.labels("fold").inc()
                log.exception("fold failed for event at offset %s; skipped", ev.offset)
        if fresh and self._foresee is not None:
            for row in batch.intents:
                if row.status == OutboxStatus.QUEUED:
                    self._foresee(row.intent)
        try:
            # Events reach the fold before their fsync: nothing derived from them is stored
            # or sent until they are durable.
            await self._log.wait_durable(events[0].offset, events[-1].offset, self._partition)
        except LogRolledBack:
            await self._forget_speculation()
            return
        await self._scrub(batch)
        await self._commit(batch, events[-1].offset)
        self._trim_caches()
        self._metrics.stage_fold.observe(time.perf_counter() - t0)

    def _trim_caches(self) -> None:
        """Between batches only: everything cached is committed by then."""
        bound = self._cache_bound.size
        excess = len(self._contacts) - bound
        if excess > 0:
            # Drop a tenth more than needed, so this does not run on every batch.
            dropped = list(itertools.islice(self._contacts, excess + bound // 10))
            for cid in dropped:
                del self._contacts[cid]
                self._positions.pop(cid, None)
            self._cache_bound.dropped(dropped)
        if len(self._ident) > 2 * bound:
            # The store has every merge's identities re-pointed: no redirect is needed once
            # they are read from it again.
            self._ident.clear()
            self._redirect.clear()

    async def _forget_speculation(self) -> None:
        """The caches were changed by events that never committed: drop them all and go on
        from the stored checkpoint, reading the log itself."""
        self._ident.clear()
        self._redirect.clear()
        self._contacts.clear()
        self._positions.clear()
        self._pending.clear()
        self.checkpoint = await self._state.checkpoint(self._partition)

    async def _commit(self, batch: _Batch, checkpoint: int) -> None:
        change = FoldCommit(
            checkpoint=checkpoint,
            partition=self._partition,
            contacts=[self._contacts[c] for c in batch.contacts if c in self._contacts],
            deleted_contacts=list(batch.deleted),
            identities=batch.identities,
            merges=batch.merges,
            handovers=batch.handovers,
            instances=[_record(i) for i in batch.instances.values()],
            segment_timers=batch.segment_timers,
            intents=batch.intents,
            interests=batch.interests,
            journey_counts=[(*key, n) for key, n in batch.journey_counts.items()],
            variant_counts=[(*key, n) for key, n in batch.variant_counts.items()],
            segment_members={seg: n for seg, n in batch.segment_members.items() if n},
            lifecycle=batch.lifecycle,
            suppressions=batch.suppressions,
            engagement=[
                (owner, figure, n, batch.revenue[owner, figure])
                for (owner, figure), n in batch.engagement.items()
                if n or batch.revenue[owner, figure]
            ],
            lifted=batch.lifted,
            consents=batch.consents,
            soft_bounces=batch.soft_bounces,
            erasures=batch.erasures,
            complaint_counts=[(b, *counts) for b, counts in batch.complaint_counts.items()],
            rollup=batch.rollup.rows(),
        )
        inserted = set(await self._state.commit(change))
        for handover in batch.handovers:
            self._contacts.pop(handover.source, None)
            self._positions.pop(handover.source, None)
        if batch.lifecycle:
            self._shipper.ship(batch.lifecycle)
        self.checkpoint = checkpoint
        for inst in batch.instances.values():
            wake = inst.wake_at if inst.status == "active" else None
            self._wake_by(wake)
        for wake in batch.segment_timers.values():
            self._wake_by(wake)
        try:
            for row in batch.intents:
                if row.status == OutboxStatus.QUEUED and row.intent.key in inserted:
                    await self._bus.publish(SENDS, row.intent.contact_id, row.intent)
        except BusUnavailable:
            # The rows are committed as queued: the sender picks them up from the store.
            self._metrics.errors.labels("publish").inc()
            log.warning("the bus is unavailable; queued sends wait in the outbox")

    def _wake_by(self, wake: float | None) -> None:
        if wake is not None and (self._next_wake is None or wake < self._next_wake):
            self._next_wake = wake

    def _fold_event(self, ev: Event, batch: _Batch) -> None:
        if ev.type == EventType.MERGE_REQUEST:
            self._on_merge_request(ev, batch)
            return
        if object_of(ev) is not None:
            self._fan_out(ev, batch)
            return
        cid = self._resolve(ev, batch)
        if cid is None:
            return  # sent on to the partition that owns its contact
        contact = self._contacts[cid]
        if ev.type == EventType.MERGE_REPLY:
            self._on_merge_reply(ev, cid, batch)
            return
        if contact.awaiting:
            contact.held.append(ev)
            batch.contacts.add(cid)
            return
        if ev.type == EventType.ERASE:
            self._erase(contact, ev.received_at, address_hashes_of(ev), batch)
            return
        if contact.erased_at:
            self._swallow(ev, contact, batch)
            return
        batch.rollup.count(ev, self._unsubscribed)
        self._merge_identities(ev, cid, batch)
        if ev.user_id is not None or ev.anonymous_id is not None:
            # The contact's own doing; our lifecycle events say nothing about the profile.
            apply_event(contact, ev)
            batch.contacts.add(cid)
            joined = lists.join(contact, ev)
            if joined is not None:
                batch.segment_members[lists.members_key(joined)] += 1
            if self._interests:
                batch.interests += [(key, cid, ev.received_at) for key in self._interests.noted(ev)]
        elif ev.event == Lifecycle.BOUNCED:
            self._bounced(ev, contact, batch)
        elif ev.event == Lifecycle.SENT:
            self._count_for_breaker(ev, batch)
        elif ev.event == Lifecycle.COMPLAINED:
            self._suppress(complaint_entry(ev.properties, contact.email, ev.received_at), batch)
            if counts_as_complaint(ev.properties):
                self._count_for_breaker(ev, batch)
        now = self._clock()
        # Before the journeys see the event: a send it triggers meets the consent it gives.
        subscription = apply_subscription(contact, ev, self._policy.topics)
        if subscription is not None:
            self._subscription_changed(contact, ev, subscription, now, batch)
        if self._segments is not None:
            before = self._segments.next_change_at(contact.segments)
            changes = self._segments.apply(contact.segments, contact, ev, now)
            self._segments_changed(contact, changes, ev.message_id, before, batch)
        if ev.event in self._engaging and "fan_out" not in ev.context:
            self._engage(ev, contact, batch)
        if _campaign_of(ev) is not None:
            self._campaign_send(ev, contact, now, batch)
            return
        if contact.variants and ev.type == EventType.TRACK and "fan_out" not in ev.context:
            self._count_variant(ev, contact, batch)
        if ev.type != EventType.TRACK or not self._journeys:
            return
        positions = self._positions.setdefault(cid, {})
        if not self._moves_journeys(ev, cid):
            return  # nothing to start and nothing running (most of all, our lifecycle events)
        clock = self._contact_time(contact, now)
        fan_out_for = ev.context.get("fan_out") if ev.forwarded else None
        for current in self._journeys.values():
            if fan_out_for is not None and current.id not in fan_out_for:
                continue  # an object's event, sent on to this contact for other journeys
            pos = positions.get(current.id)
            active = pos.active if pos is not None else None
            last_entered = pos.last_entered_at if pos is not None else None
            journey = current if active is None else self._definition(active)
            if journey is None:
                continue
            control = self._controls.get(current.id)
            if control == ARCHIVED:
                if active is not None:
                    self._exit(active, batch)
                continue
            if control == PAUSED and (
                active is None or not any(goal.matches(ev) for goal in journey.exit_on)
            ):
                continue  # nobody enters or moves on; a goal met still ends the journey
            tr = on_event(
                journey,
                contact_id=cid,
                event=ev,
                active=active,
                last_entered_at=last_entered,
                now=now,
                contact=clock,
            )
            if tr.instance is None:
                continue
            if (
                active is None
                and pos is not None
                and tr.instance.instance_id == pos.last_instance_id
            ):
                continue  # a replayed entry of an instance that already ran
            self._store_instance(tr.instance, batch, entered=active is None, taken=tr.taken)
            self._queue_sends(contact, tr.instance, tr.effects, ev.received_at, batch)

    def _contact_time(self, contact: Contact, now: float) -> ContactTime:
        def meets(step: BranchStep) -> bool:
            segments, state = self._segments, contact.segments
            kept = segments is not None and step.segment_id in segments
            if kept and state.evaluated_by == segments.fingerprint:
                return step.segment_id in state.members
            # A version no longer in the project: its condition, on what the state keeps.
            return holds(step.condition, contact, KeptHistory(state), now)

        return ContactTime(contact.traits, self._policy.default_timezone, meets)

    # -- segments ------------------------------------------------------------------------

    def _segments_changed(
        self,
        contact: Contact,
        changes: list[MembershipChange],
        cause: str,
        timer_before: float | None,
        batch: _Batch,
    ) -> None:
        """Record what a segment evaluation changed: `Segment Entered` / `Exited` events,
        appended to the log like every lifecycle event (journeys start on them), and the
        contact's segment timer. `cause` makes the events' ids: the message id of the event
        that changed the memberships, or the moment a timer fired at, so a replay repeats
        them and the log drops the repeats."""
        assert self._segments is not None
        for change in changes:
            if is_audience(change.segment):
                batch.lifecycle.append(segment_event(contact.id, change, cause))
                batch.segment_members[change.segment] += 1 if change.entered else -1
        if changes:
            batch.contacts.add(contact.id)
        timer = self._segments.next_change_at(contact.segments)
        if timer != timer_before or contact.id in batch.segment_timers:
            batch.segment_timers[contact.id] = timer
            batch.contacts.add(contact.id)

    async def _fire_segment_timers(self, now: float) -> None:
        """Memberships that time alone changed: a window passed, a date came near."""
        while due := await self._state.due_segment_timers(now, _BATCH, self._partition):
            await self._load_contacts(due)
            batch = _Batch()
            for cid in due:
                contact = self._contacts.get(cid)
                if contact is None:
                    batch.segment_timers[cid] = None  # merged away since
                    continue
                self._reevaluate(contact, now, batch)
            await self._commit(batch, self.checkpoint)

    def _reevaluate(
        self, contact: Contact, now: float, batch: _Batch, cause: str | None = None
    ) -> None:
        """Evaluate again without an event: a timer fired (the changes' ids then derive from
        the moment it was due), or a merge changed what the memberships rest on (`cause`)."""
        assert self._segments is not None
        before = self._segments.next_change_at(contact.segments)
        cause = cause or f"{contact.id}@{before!r}"
        changes = self._segments.tick(contact.segments, contact, now)
        # Whatever happens, the timer is written again: a due one must not fire twice.
        batch.segment_timers[contact.id] = None
        self._segments_changed(contact, changes, cause, before, batch)

    # -- objects -------------------------------------------------------------------------

    async def _find_audiences(self, events: Iterable[Event]) -> None:
        """Before a batch: who each event about an object reaches, from the interest index."""
        if not self._interests:
            return
        for ev in events:
            found = object_of(ev)
            if found is None:
                continue
            catalog, item_id = found
            audience: dict[str, list[str]] = {}
            for journey_id, fan_out in self._interests.fan_outs(ev):
                since = ev.received_at - fan_out.within
                for performed in fan_out.performed:
                    key = interest_key(catalog, item_id, performed)
                    for cid in await self._state.interested(key, since):
                        journeys = audience.setdefault(cid, [])
                        if journey_id not in journeys:
                            journeys.append(journey_id)
            self._audiences[ev.message_id] = audience

    def _fan_out(self, ev: Event, batch: _Batch) -> None:
        """Send an event about an object on to each contact of its audience, through the log:
        each copy goes to the partition that owns its contact. The copies' ids derive from the
        event's, so a replay repeats them and the log drops the repeats."""
        audience = self._audiences.pop(ev.message_id, {})
        for cid, journeys in audience.items():
            batch.lifecycle.append(fan_out_copy(ev, cid, journeys))
        self._metrics.fan_out.inc(len(audience))

    # -- identity ------------------------------------------------------------------------
    #
    # Each contact belongs to one partition, the one its id (the first key it was known by)
    # falls in; only that partition's fold changes it. An event that lands in another
    # partition (its key was merged into a contact elsewhere) is forwarded, through the log,
    # to the owner. A merge whose other side lives elsewhere is asked of that side's fold,
    # which hands its contact over once it has folded everything before the request; the
    # survivor's later events wait for the answer. With one partition (embedded), all of
    # this is local.

    async def _prefetch(self, events: Iterable[Event]) -> None:
        """Load into the caches every contact this batch touches: one store call per miss."""
        await self._find_audiences(events)
        await self._load_campaigns(events)
        await self._load_keys(events)
        await self._load_tested(events)
        # An answered merge brings in the other side's contact as it was handed over, and
        # the events its survivor held back are folded after it.
        sources: set[str] = set()
        held: list[Event] = []
        for ev in events:
            if ev.type != EventType.MERGE_REPLY:
                continue
            source = ev.properties.get("source")
            if source:
                sources.add(source)
            survivor = self._contacts.get(self._follow(self._ident.get(ev.contact_key, "")))
            if survivor is not None:
                held.extend(survivor.held)
        for source in sources:
            self._contacts.pop(source, None)
            self._positions.pop(source, None)
        await self._load_contacts(sources)
        if held:
            await self._load_keys(held)
        await self._load_suppressions([*events, *held], sources)
        await self._load_soft_bounces(events)
        self._unsubscribed = await about_unsubscribes(self._state, events)

    async def _load_keys(self, events: Iterable[Event]) -> None:
        keys: set[str] = set()
        own: set[str] = set()  # keys of the contacts' own doings
        for ev in events:
            keys.update(k for k in (ev.user_id, ev.anonymous_id, ev.previous_id) if k)
            keys.add(ev.contact_key)
            if ev.user_id is not None or ev.anonymous_id is not None:
                own.add(ev.contact_key)
        missing = sorted(k for k in keys if k not in self._ident)
        if missing:
            self._ident.update(await self._state.resolve(missing))
        contact_of = {k: self._follow(self._ident[k]) for k in keys if k in self._ident}
        await self._load_contacts(
            set(contact_of.values()), active={contact_of[k] for k in own if k in contact_of}
        )

    async def _load_contacts(self, ids: Iterable[str], active: Collection[str] = ()) -> None:
        """Two store calls for the whole batch, not two per contact: a broadcast's fold loads
        a contact for nearly every event. `active`: those of them whose own event (not ours:
        a campaign's send, a lifecycle event) calls for them, which alone tell the cache's
        bound whether people come back (a broadcast right after an import reads back every
        recipient the import dropped, once)."""
        missing = sorted({cid for cid in ids if cid not in self._contacts})
        if not missing:
            return
        found = await self._state.contacts(missing)
        self._cache_bound.read_back(cid for cid in found if cid in active)
        instances = await self._state.instances_of(list(found)) if found else {}
        for cid, contact in found.items():
            self._contacts[cid] = contact
            positions: dict[str, _Position] = {}
            for r in instances.get(cid, ()):
                pos = positions.setdefault(r.journey_id, _Position())
                pos.entered(r.instance_id, r.entered_at)
                if r.status == "active":
                    pos.active = _decode_instance(r.body)  # only running ones are decoded
            self._positions[cid] = positions

    def _follow(self, cid: str) -> str:
        while cid in self._redirect:
            cid = self._redirect[cid]
        return cid

    def _lookup(self, key: str | None) -> str | None:
        if key is None:
            return None
        cid = self._ident.get(key)
        return None if cid is None else self._follow(cid)

    def _map(self, key: str, cid: str, batch: _Batch) -> None:
        if self._ident.get(key) != cid:
            self._ident[key] = cid
            batch.identities[key] = cid

    def _here(self, key: str) -> bool:
        """Whether this partition owns `key` (a contact id, or an identity's mapping)."""
        partitions = self._log.partitions
        return partitions == 1 or partition_of(key, partitions) == self._partition

    def _claim(self, key: str, batch: _Batch) -> str:
        cid = self._lookup(key)
        if cid is None or cid not in self._contacts:
            cid = cid or key
            self._contacts[cid] = Contact(id=cid)
            self._positions[cid] = {}
            batch.contacts.add(cid)
            self._map(key, cid, batch)
        return cid

    def _resolve(self, ev: Event, batch: _Batch) -> str | None:
        """The canonical contact of an event, when this partition owns it; else the event is
        forwarded to the partition that does, and None returned."""
        cid = self._lookup(ev.contact_key)
        if cid is not None and not self._here(cid):
            forwarded = msgspec.structs.replace(
                ev,
                contact_key=cid,
                message_id=f"{ev.message_id}>{cid}",
                forwarded=True,
                partition=0,
                offset=0,
            )
            batch.lifecycle.append(forwarded)
            return None
        return self._claim(ev.contact_key, batch)

    def _merge_identities(self, ev: Event, cid: str, batch: _Batch) -> None:
        """What identify and alias reveal: another identity of the same person."""
        merged = merged_identity(ev)
        if merged is None:
            return
        key, only_anonymous = merged
        if not self._here(key):
            # Ingestion asked the key's partition along with this event (`merge_requests`).
            self._await_answer(cid, merge_request_id(ev, key), batch)
            return
        source = self._lookup(key)
        if source is None:
            self._map(key, cid, batch)
        elif source != cid and self._here(source):
            if self._mergeable(source, only_anonymous):
                self._merge(source, cid, batch)
                self._map(key, cid, batch)
        elif source != cid:
            # The key was merged before, into a contact of another partition: ask its owner.
            request = merge_request_id(ev, source)
            self._await_answer(cid, request, batch)
            batch.lifecycle.append(
                merge_request(request, source, target=cid, only_anonymous=only_anonymous)
            )

    def _await_answer(self, cid: str, request: str, batch: _Batch) -> None:
        """The contact's next events wait for the answer to `request`."""
        self._contacts[cid].awaiting.append(request)
        batch.contacts.add(cid)

    def _mergeable(self, source: str, only_anonymous: bool) -> bool:
        # One device shared by two signed-in people must not merge them.
        src = self._contacts.get(source)
        if src is not None and src.erased_at:
            return False  # an erased contact's ids stay erased
        return not (src is not None and only_anonymous and src.known)

    def _on_merge_request(self, ev: Event, batch: _Batch) -> None:
        """Asked by the fold that owns `target`: hand over the contact known as `key`."""
        key, props = ev.contact_key, ev.properties
        target, request = props["target"], props["request"]
        source = self._lookup(key)
        if source is not None and source != target and not self._here(source):
            # The key was merged before, into a contact of a third partition: ask its owner.
            batch.lifecycle.append(
                msgspec.structs.replace(
                    ev, message_id=f"{ev.message_id}>{source}", contact_key=source, offset=0
                )
            )
            return
        handed_over: str | None = None
        if source is None:
            self._map(key, target, batch)
        elif source != target and self._mergeable(source, props["only_anonymous"]):
            # Even to this partition's own fold: the answer, folded in its turn, merges.
            self._hand_over(source, target, batch)
            handed_over = source
            self._map(key, target, batch)
        answer = {"request": request, "source": handed_over}
        batch.lifecycle.append(
            _plumbing(EventType.MERGE_REPLY, f"{request}:answer", target, answer)
        )

    def _hand_over(self, source: str, target: str, batch: _Batch) -> None:
        """From now on `source` is the target partition's to merge; this fold forwards
        anything that still arrives for it. Its cached state stays until the commit writes
        it, and is dropped after."""
        self._redirect[source] = target
        batch.handovers.append(Handover(source, target, partition_of(target, self._log.partitions)))

    def _on_merge_reply(self, ev: Event, cid: str, batch: _Batch) -> None:
        contact = self._contacts[cid]
        request = ev.properties["request"]
        if request in contact.awaiting:
            contact.awaiting.remove(request)
        source = ev.properties.get("source")
        if source and source != cid and source in self._contacts:
            self._merge(source, cid, batch)
            if contact.erased_at:
                # Asked before the erasure was folded: what the merged contact was is the
                # erased person's too.
                self._erase(contact, contact.erased_at, (), batch)
            elif self._segments is not None:
                self._reevaluate(contact, self._clock(), batch, ev.message_id)
        batch.contacts.add(cid)
        if not contact.awaiting and contact.held:
            held, contact.held = contact.held, []
            for waiting in held:
                self._fold_event(waiting, batch)

    def _merge(self, source: str, target: str, batch: _Batch) -> None:
        """Fold the contact `source` into `target`; both are in the caches or the store."""
        src = self._contacts.get(source)
        if src is not None:
            # The merged contact's memberships go with it; the survivor's evaluation counts
            # what it enters.
            for segment in filter(is_audience, src.segments.members):
                batch.segment_members[segment] -= 1
            survivor = self._contacts[target]
            for name in (*src.lists, *survivor.lists):
                batch.segment_members[lists.members_key(name)] -= 1
            merge_contacts(survivor, src)
            for name in survivor.lists:
                batch.segment_members[lists.members_key(name)] += 1
            # Whatever the merged contact was waiting for, the survivor now waits for; its
            # held events came before the merge, so before those the survivor holds.
            survivor.awaiting.extend(src.awaiting)
            survivor.held[:0] = src.held
            self._move_instances(source, target, batch)
            del self._contacts[source]
        self._redirect[source] = target
        batch.merges[source] = target
        batch.deleted.add(source)
        batch.contacts.discard(source)
        batch.contacts.add(target)

    def _move_instances(self, source: str, target: str, batch: _Batch) -> None:
        """The store moves the history with the merge; here the running instances follow,
        and where both contacts run the same journey, the survivor's goes on."""
        kept = self._positions.setdefault(target, {})
        for journey_id, moved in self._positions.pop(source, {}).items():
            pos = kept.setdefault(journey_id, _Position())
            if moved.last_instance_id is not None and moved.last_entered_at is not None:
                pos.entered(moved.last_instance_id, moved.last_entered_at)
            inst = moved.active
            if inst is None:
                continue
            inst.contact_id = target
            if pos.active is not None:
                inst.status, inst.wake_at = "exited", None
            else:
                pos.active = inst
            batch.instances[inst.instance_id] = inst

    # -- journeys and intents ------------------------------------------------------------

    def _store_instance(
        self,
        instance: JourneyInstance,
        batch: _Batch,
        *,
        entered: bool = False,
        taken: Sequence[str] = (),
    ) -> None:
        positions = self._positions.setdefault(instance.contact_id, {})
        positions.setdefault(instance.journey_id, _Position()).record(instance)
        batch.instances[instance.instance_id] = instance
        # Counted in the commit that stores the instance: exactly once, replays included.
        journey, version = instance.journey_id, instance.version
        if entered:
            batch.journey_counts[journey, version, "entered"] += 1
        for way in taken:
            batch.journey_counts[journey, version, way] += 1
        if instance.status != "active":
            batch.journey_counts[journey, version, instance.status] += 1

    def _exit(self, instance: JourneyInstance, batch: _Batch) -> None:
        instance.status, instance.wake_at = "exited", None
        self._store_instance(instance, batch)

    def _queue_sends(
        self,
        contact: Contact,
        instance: JourneyInstance,
        effects: list[SendEffect],
        origin_received_at: float,
        batch: _Batch,
    ) -> None:
        now = self._clock()
        for eff in effects:
            intent = SendIntent(
                key=eff.intent_key,
                contact_id=contact.id,
                email=contact.email or "",
                template=eff.template,
                context={"contact": contact_view(contact), "event": instance.trigger},
                message_class=eff.message_class,
                topic=eff.topic,
                journey=instance.journey_id,
                step=eff.step_id,
                event_received_at=origin_received_at,
                created_at=now,
            )
            self._queue(contact, intent, now, batch)

    def _queue(
        self,
        contact: Contact,
        intent: SendIntent,
        now: float,
        batch: _Batch,
        not_before: float | None = None,
    ) -> None:
        """The outbox row of one intent, as the send policy has it: queued, held or
        suppressed, with its lifecycle event. `not_before`: held until then at least."""
        verdict = check_send(
            contact,
            intent.message_class,
            now,
            self._policy,
            intent.topic,
            not_before,
            self._suppressions.of(contact.email),
        )
        send_at = now
        if not verdict.allowed:
            status = OutboxStatus.SUPPRESSED
            if verdict.suppressed_by is not None:
                self._metrics.sends_blocked.labels(verdict.suppressed_by.reason).inc()
            event = lifecycle_event(Lifecycle.SUPPRESSED, intent, now, reason=verdict.reason)
            self._metrics.count_email("suppressed")
        elif verdict.hold_until is not None:
            # Held as a deferred row: the sender's retry sweep sends it when it is due.
            status, send_at = OutboxStatus.DEFERRED, verdict.hold_until
            event = lifecycle_event(
                Lifecycle.HELD, intent, now, reason=verdict.reason, until=send_at
            )
            self._metrics.count_email("held")
        else:
            status, event = OutboxStatus.QUEUED, lifecycle_event(Lifecycle.QUEUED, intent, now)
            self._metrics.count_email("queued")
        if verdict.allowed and intent.message_class == MessageClass.MARKETING:
            remember_marketing(contact, now, self._policy, intent.topic)
            batch.contacts.add(contact.id)
        batch.intents.append(
            OutboxRow(
                intent=intent,
                status=status,
                next_attempt_at=send_at,
                last_text=verdict.reason,
                updated_at=now,
            )
        )
        batch.lifecycle.append(event)

    def _count_for_breaker(self, ev: Event, batch: _Batch) -> None:
        """A marketing message sent, or a complaint about one, counted in its bucket for the
        protective breaker (see mailpulse.policy.breaker): in the commit that moves the
        checkpoint past it, so exactly once, replays included."""
        if ev.properties.get("message_class") != MessageClass.MARKETING:
            return
        counts = batch.complaint_counts.setdefault(bucket_of(ev.received_at), [0, 0])
        counts[ev.event == Lifecycle.COMPLAINED] += 1

    # -- erasure -------------------------------------------------------------------------

    def _erase(self, contact: Contact, at: float, hashes: Iterable[str], batch: _Batch) -> None:
        """The contact becomes a tombstone (its id, and when): its addresses (the profile's,
        and `hashes`, those it had when the erasure was asked) an `erased` suppression entry
        each, its memberships and running journeys ended; the store erases the rest of its
        state in the batch's commit, and `_scrub` its events in the log before that."""
        addresses = set(hashes)
        if contact.email is not None:
            addresses.add(address_hash(contact.email))
        for hashed in sorted(addresses):
            erased = Suppression(
                address_hash=hashed,
                address=None,
                reason=SuppressionReason.ERASED,
                source=ERASED_BY,
                created_at=at,
            )
            self._suppress(erased, batch)
        for segment in filter(is_audience, contact.segments.members):
            batch.segment_members[segment] -= 1
        for name in contact.lists:
            batch.segment_members[lists.members_key(name)] -= 1
        for position in self._positions.get(contact.id, {}).values():
            if position.active is not None:
                self._exit(position.active, batch)  # counted; the store deletes it after
        self._positions[contact.id] = {}
        self._contacts[contact.id] = Contact(id=contact.id, erased_at=contact.erased_at or at)
        batch.contacts.add(contact.id)
        batch.segment_timers[contact.id] = None
        batch.erased.add(contact.id)
        batch.erasures[contact.id] = contact.erased_at or at
        if not contact.erased_at:
            self._metrics.contacts_erased.inc()

    def _swallow(self, ev: Event, contact: Contact, batch: _Batch) -> None:
        """An event under an erased contact's ids: folded as nothing, and scrubbed."""
        batch.swallowed.append((ev.partition, ev.offset))
        if not is_customer_event(ev):
            # A message of theirs that was on its way: its outcome may have reached its row.
            batch.erasures[contact.id] = contact.erased_at
        if ev.forwarded:
            # Sent on from another partition, where the original stands under its own key.
            batch.scrub_keys.update(k for k in (ev.user_id, ev.anonymous_id) if k)

    async def _scrub(self, batch: _Batch) -> None:
        """Before the commit of a batch that erases: the erased contacts' events in the log
        (under every id of theirs, merged ones too), the events it folded as nothing, and
        what the batch itself made for them. Before, not after: a crash in between folds the
        scrubbed events again, which leaves the same tombstone, whereas a crash after the
        commit would leave the log unscrubbed for good."""
        if not batch.erasures and not batch.swallowed and not batch.scrub_keys:
            return
        keys = set(batch.scrub_keys)
        merged = [src for src, dst in batch.merges.items() if dst in batch.erased]
        for cid in (*batch.erased, *merged):
            keys.add(cid)
            keys.update(await self._state.identities_of(cid))
        keys.update(k for k, cid in batch.identities.items() if cid in batch.erased)
        if keys:
            await self._log.scrub_contact(sorted(keys))
        if batch.swallowed:
            await self._log.scrub_events(batch.swallowed)
        keys.update(batch.erasures)
        batch.lifecycle = [scrub_event(e) if e.contact_key in keys else e for e in batch.lifecycle]
        for row in batch.intents:
            if row.intent.contact_id in keys:
                row.intent = scrub_intent(row.intent)
                if row.status in WAITING:
                    row.status, row.last_text = OutboxStatus.SUPPRESSED, ERASED_TEXT

    # -- suppression ---------------------------------------------------------------------

    async def _load_suppressions(
        self, events: Iterable[Event], contact_ids: Iterable[str] = ()
    ) -> None:
        """Before a batch: the suppression entries of every address it may send to (its
        contacts' and those its events give them), in one look-up. Read afresh per batch, so
        an entry any partition's fold or the admin API added blocks the next batch's sends;
        an address this misses (a merge bringing one in) still meets the sender's check."""
        self._suppressions = SuppressionIndex()
        sending: list[Event] = []
        ids = set(contact_ids)
        for ev in events:
            cid = self._lookup(ev.contact_key)
            if self._may_send(ev, cid):
                sending.append(ev)
                if cid is not None:
                    ids.add(cid)
        addresses = set()
        for cid in ids:
            contact = self._contacts.get(cid)
            if contact is not None and contact.email is not None:
                addresses.add(contact.email)
        for ev in sending:
            for traits in (ev.traits, ev.context.get("traits")):
                email = traits.get("email") if isinstance(traits, dict) else None
                if isinstance(email, str) and (address := canonical_address(email)[0]):
                    addresses.add(address)
        if addresses:
            found = await self._state.suppressions_for(sorted(map(address_hash, addresses)))
            self._suppressions = SuppressionIndex(found)

    def _may_send(self, ev: Event, cid: str | None) -> bool:
        """Whether folding `ev` (of contact `cid`) may queue a message: a campaign's send, a
        subscription's confirmation, or an event a journey starts on or one of the contact's
        running journeys may move on. Most events, our lifecycle events above all, do none."""
        if _campaign_of(ev) is not None or ev.event == Lifecycle.SUBSCRIBED:
            return True
        if not self._journeys:
            return False
        return object_of(ev) is not None or self._moves_journeys(ev, cid or "")

    def _moves_journeys(self, ev: Event, cid: str) -> bool:
        """Whether `ev` may start a journey, or move on one the contact is running."""
        if ev.event in self._triggers:
            return True
        positions = self._positions.get(cid)
        if positions:
            for position in positions.values():
                if position.active is not None:
                    return True
        return False

    def _suppress(self, entry: Suppression | None, batch: _Batch) -> None:
        """An entry the batch's events call for: stored with the batch, and blocking the
        batch's own later sends at once."""
        if entry is None:
            return
        batch.suppressions.append(entry)
        batch.lifted = [k for k in batch.lifted if k != (entry.address_hash, entry.topic)]
        self._suppressions.add(entry)
        self._metrics.suppressions_added.labels(entry.reason).inc()

    async def _load_soft_bounces(self, events: Iterable[Event]) -> None:
        """Before a batch: the soft bounces counted against the addresses its bounces name,
        within [policy] soft_bounce_limit's period."""
        self._soft_bounces = {}
        limit = self._policy.soft_bounce_limit
        bounced = [ev for ev in events if ev.event == Lifecycle.BOUNCED]
        if limit is None or not bounced:
            return
        hashes = set()
        for ev in bounced:
            contact = self._contacts.get(self._lookup(ev.contact_key) or "")
            address = _recipient_of(ev, contact.email if contact is not None else None)
            if address is not None:
                hashes.add(address_hash(address))
        if hashes:
            since = min(ev.received_at for ev in bounced) - limit.period
            self._soft_bounces = await self._state.soft_bounces_since(sorted(hashes), since)

    def _bounced(self, ev: Event, contact: Contact, batch: _Batch) -> None:
        """A hard bounce suppresses the address at once; a soft one is counted, and suppresses
        it once [policy] soft_bounce_limit of them fall within the limit's period."""
        hard = bounce_entry(ev.properties, contact.email, ev.received_at)
        limit = self._policy.soft_bounce_limit
        address = _recipient_of(ev, contact.email)
        if hard is not None or limit is None or address is None:
            self._suppress(hard, batch)
            return
        hashed = address_hash(address)
        counted = self._soft_bounces.setdefault(hashed, [])
        counted.append(ev.received_at)
        batch.soft_bounces.append(SoftBounce(hashed, ev.message_id, ev.received_at, limit.period))
        if limit.reached(counted, ev.received_at):
            written = f"{limit.count}/{format_duration(limit.period)}"
            found = soft_bounce_entry(ev.properties, address, ev.received_at, written)
            self._suppress(found, batch)

    def _lift(self, hashed: str, topic: str, batch: _Batch) -> None:
        """A resubscribe: the address's unsubscribe entry of `topic` goes (with the commit,
        and for the batch's own later sends at once); an entry of another reason stands."""
        batch.suppressions = [
            e
            for e in batch.suppressions
            if (e.address_hash, e.topic, e.reason) != (hashed, topic, SuppressionReason.UNSUBSCRIBE)
        ]
        batch.lifted.append((hashed, topic))
        self._suppressions.lift(hashed, topic)

    def _subscription_changed(
        self, contact: Contact, ev: Event, change: SubscriptionChange, now: float, batch: _Batch
    ) -> None:
        """What a Subscribed or Unsubscribed event changes (see mailpulse.policy.consent)."""
        batch.contacts.add(contact.id)
        batch.consents.append(change.record)
        self._suppress(change.suppress, batch)
        if change.lift is not None:
            self._lift(*change.lift, batch)
        if change.confirm is not None:
            context = {"contact": contact_view(contact)}
            intent = confirmation_intent(contact, change.confirm, ev, now, context)
            self._queue(contact, intent, now, batch)

    # -- campaigns -----------------------------------------------------------------------

    async def _load_campaigns(self, events: Iterable[Event]) -> None:
        """Before a batch: the definition and current status of every campaign it sends."""
        wanted = {ev.context["campaign"] for ev in events if _campaign_of(ev) is not None}
        await self._read_campaigns(wanted)

    async def _load_tested(self, events: Iterable[Event]) -> None:
        """Before a batch, once its contacts are loaded: the definitions of the A/B-tested
        campaigns they got a variant of (what counts as a conversion)."""
        wanted: set[str] = set()
        for ev in events:
            contact = self._contacts.get(self._lookup(ev.contact_key) or "")
            if contact is not None:
                wanted.update(c for c in contact.variants if c not in self._campaigns)
        await self._read_campaigns(wanted)

    async def _read_campaigns(self, wanted: Iterable[str]) -> None:
        for campaign_id in wanted:
            record = await self._state.campaign(campaign_id)
            if record is None:
                self._campaigns.pop(campaign_id, None)
                continue
            if campaign_id not in self._campaigns:
                self._campaigns[campaign_id] = (_decode_campaign(record.body), record.status)
            else:
                self._campaigns[campaign_id] = (self._campaigns[campaign_id][0], record.status)

    def _campaign_send(self, ev: Event, contact: Contact, now: float, batch: _Batch) -> None:
        """One recipient of a campaign: its message, as the send policy has it."""
        known = self._campaigns.get(ev.context["campaign"])
        if known is None or known[1] == CANCELLED:
            return
        campaign = known[0]
        variant_id = ev.context.get("variant")
        variant = None
        if campaign.ab_test is not None and variant_id is not None:
            variant = campaign.ab_test.variant(variant_id)
        shown = {"id": campaign.id}
        if variant is not None:
            shown["variant"] = variant.id
        intent = SendIntent(
            key=campaign.key_for(contact.id),
            contact_id=contact.id,
            email=contact.email or "",
            template=(variant.template or campaign.template) if variant else campaign.template,
            context={"contact": contact_view(contact), "campaign": shown},
            message_class=MessageClass.MARKETING,
            topic=campaign.topic,
            campaign=campaign.id,
            variant=variant.id if variant else None,
            subject=variant.subject if variant else None,
            sender=campaign.sender,
            event_received_at=ev.received_at,
            created_at=now,
        )
        if variant is not None and ev.context.get("tested"):
            self._note_variant(contact, campaign.id, variant.id, batch)
        not_before = None
        if campaign.local_time is not None:
            where = contact_zone(contact.traits, self._policy.default_timezone)
            not_before = trait_instant(campaign.local_time, where)
        self._queue(contact, intent, now, batch, not_before)

    def _note_variant(
        self, contact: Contact, campaign_id: str, variant: str, batch: _Batch
    ) -> None:
        """A contact of an A/B test's share: its opens, clicks and conversions count for
        `variant` from now on. A replayed copy finds it noted already."""
        if campaign_id in contact.variants:
            return
        for old in list(contact.variants)[: max(0, len(contact.variants) - KEPT_VARIANTS + 1)]:
            del contact.variants[old]
        contact.variants[campaign_id] = VariantSent(variant=variant)
        batch.contacts.add(contact.id)

    def _count_variant(self, ev: Event, contact: Contact, batch: _Batch) -> None:
        """What an event of a contact in an A/B test's share counts for its variant: the
        message sent, opened or clicked (named by its key or campaign), or a conversion within
        its window after the send. Each at most once per contact, in the commit that stores
        the contact's note of it: exactly once, replays included."""
        figure = _ENGAGEMENTS.get(ev.event or "")
        if figure in (OPENS, CLICKS) and is_machine(ev):
            figure = None  # a machine's (mailpulse.feedback.machines), not a person's
        if figure is not None:
            campaign_id = _named_campaign(ev.properties)
            noted = contact.variants.get(campaign_id or "")
            if campaign_id is not None and noted is not None:
                if figure == SENT and figure not in noted.counted:
                    noted.sent_at = ev.received_at
                self._count_once(contact, campaign_id, noted, figure, batch)
        for campaign_id, noted in contact.variants.items():
            known = self._campaigns.get(campaign_id)
            tested = known[0].ab_test if known is not None else None
            conversion = tested.conversion if tested is not None else None
            if (
                conversion is not None
                and conversion.event == ev.event
                and noted.sent_at
                and noted.sent_at <= ev.received_at <= noted.sent_at + conversion.within
            ):
                self._count_once(contact, campaign_id, noted, CONVERSIONS, batch)

    def _engage(self, ev: Event, contact: Contact, batch: _Batch) -> None:
        """Opens, clicks and conversions counted for their campaigns and journeys, and the
        `Email Converted` a conversion calls for (see mailpulse.runtime.engagement)."""
        found = engage(ev, contact, self._conversion)
        if found is None:
            return
        if found.contact_changed:
            batch.contacts.add(contact.id)
        batch.engagement.update(found.counts)
        batch.rollup.engaged(ev, found.figures)
        batch.revenue.update(found.amounts)
        if found.converted is not None:
            batch.lifecycle.append(found.converted)
        noted = contact.variants.get(found.retracted_click or "")
        if found.retracted_click and noted is not None and CLICKS in noted.counted:
            # A scanner's first click, counted for the A/B test as a person's: taken back.
            noted.counted.remove(CLICKS)
            batch.variant_counts[found.retracted_click, noted.variant, CLICKS] -= 1

    def _count_once(
        self, contact: Contact, campaign_id: str, noted: VariantSent, figure: str, batch: _Batch
    ) -> None:
        if figure in noted.counted:
            return
        noted.counted.append(figure)
        batch.variant_counts[campaign_id, noted.variant, figure] += 1
        batch.contacts.add(contact.id)

    async def _fire_timers(self) -> None:
        now = self._clock()
        if self._segments is not None:
            await self._fire_segment_timers(now)
        records = await self._state.due_instances(now, _BATCH, self._partition)
        if records:
            await self._load_contacts({r.contact_id for r in records})
            await self._load_suppressions((), {r.contact_id for r in records})
            batch = _Batch()
            for rec in records:
                pos = self._positions.get(rec.contact_id, {}).get(rec.journey_id)
                cached = pos.active if pos is not None else None
                if cached is None or cached.instance_id != rec.instance_id:
                    cached = None
                inst = cached or _decode_instance(rec.body)
                journey = self._definition(inst)
                contact = self._contacts.get(inst.contact_id)
                archived = self._controls.get(inst.journey_id) == ARCHIVED
                if journey is None or contact is None or archived:
                    self._exit(inst, batch)
                    continue
                tr = on_timer(
                    journey,
                    inst,
                    now=now,
                    contact=self._contact_time(contact, now),
                )
                if tr.instance is not None:
                    self._store_instance(tr.instance, batch, taken=tr.taken)
                    self._queue_sends(contact, tr.instance, tr.effects, now, batch)
            await self._commit(batch, self.checkpoint)
        self._next_wake = await self._state.next_wake(self._partition)
