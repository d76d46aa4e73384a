"""The store seam: an append-only event log and the derived state folded from it.

Two implementations stand behind these protocols (SQLite embedded, PostgreSQL scale-out); the
pipeline sees only the protocols. Every method is a coroutine so either backend fits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import msgspec

from mailpulse.types import ConsentRecord, Contact, Event, SendIntent, Suppression

# Seconds a quota window's count is kept after the window ends (see take_quota).
QUOTA_KEPT = 2 * 86400.0
# The next attempt of a row the protective breaker holds (see mailpulse.runtime.breaker): later
# than any sweep looks, until a resume makes it due.
HELD_BY_BREAKER = 1e12


class OutboxStatus:
    QUEUED = "queued"
    DEFERRED = "deferred"
    SENT = "sent"
    BOUNCED = "bounced"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    FAILED = "failed"


class InstanceRecord(msgspec.Struct, kw_only=True):
    """A journey instance as stored: indexed columns plus the engine's own encoding."""

    instance_id: str
    contact_id: str
    journey_id: str
    status: str
    wake_at: float | None
    entered_at: float
    body: bytes


class OutboxRow(msgspec.Struct, kw_only=True):
    intent: SendIntent
    status: str
    attempts: int = 0
    next_attempt_at: float = 0.0
    message_id: str = ""
    last_code: int = 0
    last_text: str = ""
    updated_at: float = 0.0


class OutboxUpdate(msgspec.Struct, kw_only=True):
    key: str
    status: str
    attempts: int
    next_attempt_at: float
    message_id: str
    last_code: int
    last_text: str
    updated_at: float


class Handover(msgspec.Struct, frozen=True):
    """A contact a fold hands to the fold of another partition, to merge into `target` there.
    Its identities point to `target` at once (so that a restart of the handing fold cannot take
    it back), and its journey instances, timers included, go to `partition`."""

    source: str
    target: str
    partition: int


class CampaignRecord(msgspec.Struct, kw_only=True):
    """A campaign as stored: its definition (`body`), where it stands (`status`), the id of the
    last contact its audience was read up to (`cursor`) and how many messages it made."""

    id: str
    status: str
    cursor: str
    appended: int
    body: bytes
    updated_at: float
    # Of an A/B-tested campaign (see mailpulse.campaigns.abtest): its phase ("" until its test
    # sends are done), when the test is decided, and the decision once taken (JSON).
    phase: str = ""
    decide_at: float | None = None
    decision: bytes | None = None


class SoftBounce(msgspec.Struct, frozen=True):
    """A soft bounce counted against an address (for `[policy] soft_bounce_limit`): the id of
    its `Email Bounced` event, so that a re-fold counts it once, and when it was received.
    The address's soft bounces older than `window` seconds before it are forgotten."""

    address_hash: str
    event_id: str
    at: float
    window: float


class FoldCommit(msgspec.Struct, kw_only=True):
    """Everything one fold batch changed, written atomically with its checkpoint.

    Outbox inserts are ignored for keys that exist: re-folding after a crash is a no-op.
    """

    checkpoint: int
    # The fold's partition: its checkpoint, and the partition of the instances, intents and
    # lifecycle events it writes (their timers, sends and shipping are that partition's work).
    partition: int = 0
    contacts: list[Contact] = msgspec.field(default_factory=list)
    deleted_contacts: list[str] = msgspec.field(default_factory=list)
    identities: dict[str, str] = msgspec.field(default_factory=dict)
    # merged contact -> survivor: its identities and journey history move to the survivor
    merges: dict[str, str] = msgspec.field(default_factory=dict)
    handovers: list[Handover] = msgspec.field(default_factory=list)
    instances: list[InstanceRecord] = msgspec.field(default_factory=list)
    # Contact id -> when time alone may next change its segment memberships; None: never.
    # A merged or handed-over contact's timer goes with it.
    segment_timers: dict[str, float | None] = msgspec.field(default_factory=dict)
    intents: list[OutboxRow] = msgspec.field(default_factory=list)
    # (object, contact id, when): the contact showed interest in the object then.
    interests: list[tuple[str, str, float]] = msgspec.field(default_factory=list)
    # The segment set the partition's memberships now follow (after a backfill), whose
    # member counts then start again from zero.
    segment_set: str | None = None
    # Segment → change in its member count.
    segment_members: dict[str, int] = msgspec.field(default_factory=dict)
    # (journey id, version, what, how many) to add to the journey's counts.
    journey_counts: list[tuple[str, str, str, int]] = msgspec.field(default_factory=list)
    # (campaign id, variant, figure, how many) to add to the counts of a campaign's A/B test.
    variant_counts: list[tuple[str, str, str, int]] = msgspec.field(default_factory=list)
    # (owner, figure, how many, amount) to add to the engagement figures of a campaign or
    # journey (`campaign:<id>`, `journey:<id>`; see mailpulse.runtime.engagement).
    engagement: list[tuple[str, str, int, float]] = msgspec.field(default_factory=list)
    # Lifecycle events bound for the log: kept with the state change (a transactional outbox)
    # and shipped to the log after the commit, off the path of the send.
    lifecycle: list[Event] = msgspec.field(default_factory=list)
    # Suppression entries the batch's events call for (a hard bounce), as add_suppressions.
    suppressions: list[Suppression] = msgspec.field(default_factory=list)
    # (address hash, topic) of unsubscribe entries a resubscribe lifts, after `suppressions`
    # are added: only an entry whose reason is unsubscribe is removed.
    lifted: list[tuple[str, str]] = msgspec.field(default_factory=list)
    # Consent records the batch's Subscribed and Unsubscribed events make (once per id).
    consents: list[ConsentRecord] = msgspec.field(default_factory=list)
    # (bucket start, marketing messages sent, complaints about marketing) to add to the
    # protective breaker's counts (see mailpulse.policy.breaker).
    complaint_counts: list[tuple[float, int, int]] = msgspec.field(default_factory=list)
    # Soft bounces the batch's events count (see soft_bounces_since).
    soft_bounces: list[SoftBounce] = msgspec.field(default_factory=list)
    # (hour start, campaign, journey, template, figure, how many, amount) to add to the
    # lifecycle rollup (see mailpulse.runtime.rollup); '' for a dimension a message has none of.
    rollup: list[tuple[int, str, str, str, str, int, float]] = msgspec.field(default_factory=list)
    # Contacts erased by the batch (id → when), done after everything else it writes: their
    # messages scrubbed (those still waiting end suppressed), their journey instances,
    # interests, timers and consent records deleted, their unshipped lifecycle events
    # scrubbed; for them and every id of theirs (see mailpulse.privacy).
    erasures: dict[str, float] = msgspec.field(default_factory=dict)


class BreakerRecord(msgspec.Struct, kw_only=True):
    """The protective breaker as stored: one, shared by every process (see
    mailpulse.runtime.breaker)."""

    alert_at: float | None = None  # when the complaint-rate alert was raised; None: it is not
    tripped_at: float | None = None  # when marketing was paused; None: marketing goes out
    reason: str = ""  # why it tripped, with the figures it tripped on
    sends: int = 0  # those figures: marketing sends and complaints counted since `since`
    complaints: int = 0
    since: float = 0.0
    resumed_at: float | None = None  # the last resume, and who made it
    resumed_by: str = ""
    # Only what came after the last resume is judged: the counts from the bucket it fell in
    # on, less what that bucket held at the resume (`baseline_*`).
    judged_from: float = 0.0
    baseline_sends: int = 0
    baseline_complaints: int = 0


class RollupRow(msgspec.Struct, frozen=True, order=True, array_like=True):
    """One sum of the lifecycle rollup (see StateStore.rollup)."""

    group: str
    start: int
    figure: str
    count: int
    amount: float


# What the rollup sums may be grouped by (each a column of it).
ROLLUP_DIMENSIONS = ("campaign", "journey", "template")


def rollup_query(
    queries: Mapping[str, str], by: str, key: str | None
) -> tuple[str, tuple[str, ...]]:
    """The query of StateStore.rollup for `by` and `key`, and the key's parameter (after
    since, until and step). `by` names a column, so it is checked against the few there are."""
    if not by:
        return queries["rollup"], ()
    if by not in ROLLUP_DIMENSIONS:
        raise ValueError(f"the rollup has no dimension {by!r}")
    if key is None:
        return queries["rollup-by"].format(column=by), ()
    return queries["rollup-of"].format(column=by), (key,)


class LogUnavailable(Exception):
    """The log cannot take writes now; ingestion answers 503 instead of a false 2xx."""


class LogRolledBack(Exception):
    """Events handed out before their commit did not commit: whatever was derived from them
    must be dropped."""


class EventLog(Protocol):
    """Partitioned by contact: each event goes to `partition_of(contact_key, partitions)` and
    gets the next offset of that partition; offsets are gap-free in commit order, so a reader
    that has seen offset n of a partition has seen everything before it."""

    partitions: int

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def append(
        self, events: Sequence[Event], on_written: Callable[[list[Event]], None] | None = None
    ) -> list[Event]:
        """Durably append; returns the events that were new (offsets set), dropping repeated
        message ids seen within the dedup window. `on_written` gets them as soon as they are
        written, before they are durable: a consumer may start on them early but must call
        `wait_durable` before anything it derives takes effect."""
        ...

    async def wait_durable(self, first: int, last: int, partition: int = 0) -> None: ...
    def lost(self, offset: int, partition: int = 0) -> bool: ...

    async def read(self, after: int, limit: int, partition: int = 0) -> list[Event]: ...
    async def head(self, partition: int = 0) -> int: ...
    async def for_contact(self, keys: Sequence[str], limit: int) -> list[Event]: ...
    async def for_send(self, send_key: str, limit: int) -> list[Event]:
        """The lifecycle events of one send (those naming its idempotency key), in append
        order, from an index: what became of one message."""
        ...

    async def forget_message_ids(self, before: float) -> int: ...

    async def scrub_contact(self, keys: Sequence[str]) -> int:
        """Rewrite every event of these contact keys, in every partition, as erasure leaves
        it (see mailpulse.privacy.scrub): in place, so offsets and message ids stand. Returns
        how many changed (one scrubbed already is left alone)."""
        ...

    async def scrub_events(self, positions: Sequence[tuple[int, int]]) -> int:
        """The same for the events at these (partition, offset)."""
        ...

    async def forget_before(self, partition: int, through: int, before: float, limit: int) -> int:
        """Retention: delete the partition's oldest events, up to `limit` of them, as long as
        they were received before `before` and are at `through` or below (what its fold has
        applied); the first newer event ends the sweep, so the log stays a run of offsets
        without gaps. Returns how many went."""
        ...


class StateStore(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def checkpoint(self, partition: int = 0) -> int: ...
    async def commit(self, change: FoldCommit) -> list[str]:
        """Apply one fold batch; returns the outbox keys that were newly inserted."""
        ...

    async def contact(self, contact_id: str) -> Contact | None: ...
    async def resolve(self, keys: Sequence[str]) -> dict[str, str]: ...
    async def identities_of(self, contact_id: str) -> list[str]: ...
    async def instances_for(self, contact_id: str) -> list[InstanceRecord]: ...
    async def contacts(self, contact_ids: Sequence[str]) -> dict[str, Contact]:
        """Those of `contact_ids` that exist, in one look-up (the fold's batches)."""
        ...

    async def instances_of(self, contact_ids: Sequence[str]) -> dict[str, list[InstanceRecord]]:
        """`instances_for` each of `contact_ids` that has any, in one look-up."""
        ...

    async def due_instances(
        self, until: float, limit: int, partition: int = 0
    ) -> list[InstanceRecord]: ...
    async def due_segment_timers(
        self, until: float, limit: int, partition: int = 0
    ) -> list[str]: ...
    async def set_journey_control(self, journey_id: str, status: str, at: float) -> None:
        """Pause, resume (status 'live') or archive a journey."""
        ...

    async def journey_controls(self) -> dict[str, str]:
        """Journey id → status, for the journeys ever paused or archived."""
        ...

    async def journey_counts(self, journey_id: str) -> list[tuple[str, str, int]]:
        """(version, what, how many) of one journey."""
        ...

    async def active_instance_counts(self) -> dict[str, int]: ...

    async def segment_set(self, partition: int = 0) -> str | None:
        """The fingerprint of the segment set the partition's memberships follow."""
        ...

    async def segment_members(self) -> dict[str, int]:
        """Segment → how many contacts are in it, across all partitions."""
        ...

    async def contacts_after(self, after: str, limit: int) -> list[Contact]:
        """Every contact, paged in id order."""
        ...

    async def identities_after(self, after: str, limit: int) -> list[tuple[str, str]]:
        """(key, contact id) of every identity, paged in key order."""
        ...

    async def create_campaign(self, campaign_id: str, status: str, body: bytes, at: float) -> bool:
        """False when a campaign of that id exists already (nothing changes then)."""
        ...

    async def campaigns(self) -> list[CampaignRecord]: ...
    async def running_campaigns(self) -> list[CampaignRecord]:
        """Those scheduled or sending: what the runner looks at, however many are done."""
        ...

    async def campaign(self, campaign_id: str) -> CampaignRecord | None: ...

    async def advance_campaign(
        self, campaign_id: str, *, cursor: str, appended: int, status: str, at: float
    ) -> None:
        """Record how far its audience was read, unless it was paused or cancelled since."""
        ...

    async def set_campaign_status(self, campaign_id: str, status: str, at: float) -> None: ...

    async def set_campaign_phase(
        self,
        expected: CampaignRecord,
        *,
        status: str,
        cursor: str,
        phase: str,
        decide_at: float | None,
        decision: bytes | None,
        at: float,
    ) -> bool:
        """Move an A/B-tested campaign on, unless it changed since `expected` was read (its
        status or its updated_at differ: a pause, a pick): False then, and nothing changes."""
        ...

    async def variant_counts(self, campaign_id: str) -> dict[tuple[str, str], int]:
        """(variant, figure) → how many contacts of its test share, across all partitions."""
        ...

    async def engagement(self, owner: str) -> dict[str, tuple[int, float]]:
        """A campaign's or journey's engagement figures: figure → (how many, amount)."""
        ...

    async def rollup(
        self, since: int, until: int, *, by: str = "", key: str | None = None, step: int = 0
    ) -> list[RollupRow]:
        """Sums of the lifecycle rollup's hours from `since` up to (not with) `until`: per
        figure, and per value of `by` (campaign, journey or template; '' = all together, with
        messages of none left out), only `key`'s when given, and per `step` seconds (an hour
        or a day; 0: the whole range). A row's group is '' without `by`, its start 0 without
        `step`."""
        ...

    async def queued_count(self) -> int:
        """How many messages wait for delivery, in every partition."""
        ...

    async def campaign_messages(self, campaign_id: str) -> dict[str, int]:
        """A campaign's messages per outbox status (those with none left out)."""
        ...

    async def interested(self, object_key: str, since: float) -> list[str]:
        """The contacts that showed interest in `object_key` at `since` or later."""
        ...

    async def next_wake(self, partition: int = 0) -> float | None:
        """The earliest journey or segment timer of the partition."""
        ...

    async def unshipped_lifecycle(self, limit: int, partition: int = 0) -> list[Event]: ...
    async def forget_lifecycle(self, message_ids: Sequence[str]) -> None: ...

    async def save_journey_versions(self, versions: Sequence[tuple[str, str, bytes]]) -> None:
        """Keep every (journey id, version, encoded definition) ever run."""
        ...

    async def journey_versions(self) -> list[tuple[str, str, bytes]]: ...

    async def outbox_due(
        self, now: float, limit: int, status: str | None = None, partition: int = 0
    ) -> list[OutboxRow]:
        """The partition's rows waiting to be sent whose time has come, oldest first; only
        `status` (queued or deferred) when given."""
        ...

    async def outbox_get(self, key: str) -> OutboxRow | None: ...
    async def outbox_by_message_id(self, message_id: str) -> OutboxRow | None:
        """The row of the message that went out with this Message-ID (set once it was tried:
        a bounce or a complaint comes back about a message that was sent)."""
        ...

    async def outbox_queued(self, keys: Sequence[str]) -> set[str]:
        """Which of `keys` name rows still queued (not yet sent, bounced, deferred...)."""
        ...

    async def outbox_for_contact(self, contact_ids: Sequence[str], limit: int) -> list[OutboxRow]:
        """Newest first; several ids because a merged contact keeps its old rows."""
        ...

    async def outbox_for_address(self, address: str, limit: int) -> list[OutboxRow]:
        """The messages to an address (in any case), newest first, from an index; an erased
        contact's are not found so."""
        ...

    async def outbox_update(
        self, updates: Sequence[OutboxUpdate], lifecycle: Sequence[Event] = (), partition: int = 0
    ) -> None:
        """Move rows on, keeping their lifecycle events for the log (to be shipped by
        `partition`) in the same transaction."""
        ...

    async def outbox_counts(self) -> dict[str, int]: ...

    async def take_quota(self, window: str, limit: int, ends_at: float) -> int | None:
        """Counts one send in quota window `window` (ending at `ends_at`) unless `limit` are
        counted already: the count with it, or None. Atomic: workers taking at once never pass
        `limit`."""
        ...

    async def return_quota(self, window: str) -> None:
        """Uncounts one send taken in `window` that did not go."""
        ...

    async def quota_used(self, windows: Sequence[str]) -> dict[str, int]:
        """Sends counted in each of `windows` that has any."""
        ...

    async def add_suppressions(self, entries: Sequence[Suppression]) -> list[Suppression]:
        """Add entries to the suppression list, shared by every partition, in one transaction.
        An entry replaces the one of its address and topic only when it blocks more (see
        `Suppression.strength`); an erased address keeps its erased entry alone, and nothing
        is added for it after. Returns the entries that took effect."""
        ...

    async def suppressions_for(self, hashes: Sequence[str]) -> list[Suppression]:
        """Every entry (global and per topic) of the addresses with these hashes."""
        ...

    async def suppressions_after(
        self,
        after: tuple[str, str],
        limit: int,
        *,
        reason: str | None = None,
        topic: str | None = None,
    ) -> list[Suppression]:
        """Entries in (address_hash, topic) order after `after`; only of `reason` and of
        `topic` ('' = the global ones) when given."""
        ...

    async def remove_suppression(self, address_hash: str, topic: str) -> bool:
        """Remove an entry, unless it is an erased one; whether one was removed."""
        ...

    async def soft_bounces_since(
        self, hashes: Sequence[str], since: float
    ) -> dict[str, list[float]]:
        """Address hash → when each of its counted soft bounces was received, from `since` on;
        addresses with none left out."""
        ...

    async def consents_of(self, contact_id: str, limit: int) -> list[ConsentRecord]:
        """A contact's consent records, oldest first (merged contacts' records move to the
        survivor), at most `limit`."""
        ...

    async def complaint_counts(self, since: float) -> tuple[int, int]:
        """(marketing messages sent, complaints about marketing) counted in the buckets that
        start at `since` or later, across all partitions."""
        ...

    async def forget_complaint_counts(self, before: float) -> None:
        """Drop the counts of buckets that start before `before`."""
        ...

    async def breaker(self) -> BreakerRecord: ...

    async def set_complaint_alert(self, raised: bool, at: float) -> bool:
        """Raise the complaint-rate alert (or resolve it) unless it is so already: whether
        this call changed it. One conditional update: of evaluators racing, one wins."""
        ...

    async def trip_breaker(
        self,
        at: float,
        reason: str,
        *,
        sends: int,
        complaints: int,
        since: float,
        judged_from: float,
    ) -> bool:
        """Pause marketing, unless it is paused already, or was resumed since `judged_from`
        (of the record the figures were judged on) was read: whether this call tripped it."""
        ...

    async def resume_breaker(self, at: float, by: str, bucket: float) -> int | None:
        """Let marketing go again, in one transaction: the trip is cleared, what is judged
        starts at `at` (in the bucket that starts at `bucket`, whose counts so far become the
        baseline), and every row the breaker holds is due at `at`. How many rows were let go;
        None (and nothing changes) when the breaker is not tripped."""
        ...

    async def hold_for_breaker(
        self, keys: Sequence[str], at: float, lifecycle: Sequence[Event] = (), partition: int = 0
    ) -> bool:
        """Hold these rows, those still waiting to be sent, for the breaker (deferred until
        HELD_BY_BREAKER, their attempts and Message-ID kept) with their lifecycle events (to
        be shipped by `partition`), only while it is tripped: False when it is not, and
        nothing is written. A resume waits for a hold under way, and a hold after it finds the
        breaker resumed, so that no row is held after the resume that let the held ones go."""
        ...
