"""The few value types every stage passes on.

Stages speak only these: ingestion produces `Event`s, the fold produces `SendIntent`s, rendering
produces `RenderedContent`, the MIME builder a `RenderedMessage`, and delivery answers with a
`DeliveryResult` (it never raises for an SMTP 4xx/5xx).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec


class EventType(StrEnum):
    TRACK = "track"
    IDENTIFY = "identify"
    PAGE = "page"
    SCREEN = "screen"
    GROUP = "group"
    ALIAS = "alias"
    # Internal: how the folds of two partitions merge contacts (see mailpulse.runtime.fold).
    MERGE_REQUEST = "merge_request"
    MERGE_REPLY = "merge_reply"
    # Internal: a contact's erasure, asked over the admin API (see mailpulse.privacy).
    ERASE = "erase"


# Asked of every event taken in: a constant set, not a tuple built per call.
_PLUMBING_TYPES = frozenset((EventType.MERGE_REQUEST, EventType.MERGE_REPLY))


class Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One Segment-spec call as it stands in the log.

    `contact_key` is the identity the event is partitioned by: `userId` when present, else
    `anonymousId`. The log assigns `partition` (from `contact_key`) and `offset` (its place
    in that partition, counted from 1). Timestamps are epoch seconds.
    """

    type: str
    message_id: str
    contact_key: str
    user_id: str | None = None
    anonymous_id: str | None = None
    event: str | None = None
    name: str | None = None
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    previous_id: str | None = None
    group_id: str | None = None
    timestamp: float = 0.0
    received_at: float = 0.0
    partition: int = 0
    offset: int = 0
    # Sent on by the fold of another partition to the one that owns its contact, which is
    # `contact_key`: that fold applies it without resolving its ids again.
    forwarded: bool = False

    @property
    def plumbing(self) -> bool:
        """How folds of different partitions talk (merge requests and answers, forwarded
        copies): not history, and counted where the original came in."""
        return self.forwarded or self.type in _PLUMBING_TYPES


class SegmentState(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One contact's segment memberships and the aggregates of its history they rest on
    (kept up to date by mailpulse.audience.segments)."""

    members: dict[str, float] = msgspec.field(default_factory=dict)  # segment id → entered at
    # Segment id → the next moment time alone may change its membership.
    due: dict[str, float] = msgspec.field(default_factory=dict)
    # Aggregate key → received_at of its latest events, ascending, as many as decide.
    recent: dict[str, list[float]] = msgspec.field(default_factory=dict)
    counts: dict[str, int] = msgspec.field(default_factory=dict)  # aggregate key → capped count
    topics: dict[str, bool] = msgspec.field(default_factory=dict)  # topic → latest subscribed
    # The `SegmentSet.fingerprint` this state was last evaluated with: a state from another
    # set (or a new one) is evaluated against every segment.
    evaluated_by: str = ""


# Events about an object (a product back in stock) rather than a person carry this contact key.
OBJECT_KEY_PREFIX = "object:"


def object_key(catalog: str, item_id: str) -> str:
    """The contact key of events about one item of a catalog."""
    return f"{OBJECT_KEY_PREFIX}{catalog}:{item_id}"


def object_of(event: Event) -> tuple[str, str] | None:
    """(catalog, id) of an event about an object; None for an event about a contact."""
    if not event.contact_key.startswith(OBJECT_KEY_PREFIX):
        return None
    catalog, _, item_id = event.contact_key[len(OBJECT_KEY_PREFIX) :].partition(":")
    return (catalog, item_id) if catalog and item_id else None


class VariantSent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The variant of an A/B-tested campaign one contact of its test share was sent, and which
    of its figures the contact was counted in already (each at most once)."""

    variant: str
    sent_at: float = 0.0  # when its `Email Sent` came: conversions count from then
    counted: list[str] = msgspec.field(default_factory=list)  # "sent", "opens", ...


class MessageEngagement(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one message a contact got was counted for already, each figure once (opened,
    clicked, and the same by a machine), and when a person clicked it."""

    counted: list[str] = msgspec.field(default_factory=list)
    clicked_at: float = 0.0


class LastClick(msgspec.Struct, kw_only=True):
    """The last message a contact clicked (a person, not a machine), which a conversion is
    attributed to: when, and what the click said of the message (its key, campaign, journey,
    variant, template)."""

    at: float
    message: dict[str, Any]


class Contact(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A profile: the fold of every event of one canonical contact.

    `email` is the normalized address, or None with `email_error` saying why it is unusable.
    `awaiting` names the merges asked of other partitions and not yet answered; the contact's
    events wait in `held` until they are, so that each sees the profile it would have seen
    had everything run in one place.
    """

    id: str
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    email: str | None = None
    email_error: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    known: bool = False  # identified by a userId, not only an anonymousId
    awaiting: list[str] = msgspec.field(default_factory=list)
    held: list[Event] = msgspec.field(default_factory=list)
    # When the marketing messages a frequency cap can still see were queued: all of them, and
    # by topic for the per-topic caps.
    marketing_sent: list[float] = msgspec.field(default_factory=list)
    topic_sent: dict[str, list[float]] = msgspec.field(default_factory=dict)
    segments: SegmentState = msgspec.field(default_factory=SegmentState)
    # Campaign id → the variant of its A/B test this contact got, for its test share only.
    # Kept on the profile, not in a table of its own: the fold has the profile at hand for
    # every event of the contact (an open, a click, a conversion), and writes it in the commit
    # that counts the event, so attributing costs no read and counts exactly once.
    variants: dict[str, VariantSent] = msgspec.field(default_factory=dict)
    # The lists the contact was put in (mailpulse.audience.lists), sorted.
    lists: list[str] = msgspec.field(default_factory=list)
    # Topic → the latest consent action on record for it (see mailpulse.policy.consent):
    # what an opt-in topic's marketing asks for.
    consent: dict[str, str] = msgspec.field(default_factory=dict)
    # When the contact was erased (see mailpulse.privacy): all that is left of it is its id,
    # and its ids stay erased, their later events folded as nothing.
    erased_at: float = 0.0
    # Send key → what its message was counted for (see mailpulse.runtime.engagement), for the
    # latest messages opened or clicked; and the last one a person clicked.
    engaged: dict[str, MessageEngagement] = msgspec.field(default_factory=dict)
    last_click: LastClick | None = None


class MessageClass(StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class SendIntent(msgspec.Struct, kw_only=True):
    """A decision to send one template to one contact.

    `key` is the idempotency key: the outbox is unique on it and the Message-ID derives from it,
    so re-deriving the same intent after a crash is a no-op.
    """

    key: str
    contact_id: str
    email: str
    template: str
    context: dict[str, Any]
    message_class: str = MessageClass.MARKETING
    topic: str | None = None
    campaign: str | None = None
    variant: str | None = None  # of the campaign's A/B test
    # A subject line (Jinja) instead of the template's: a variant's.
    subject: str | None = None
    sender: str | None = None  # a From instead of the project's: a campaign's
    journey: str | None = None
    step: str | None = None
    event_offset: int = 0
    event_received_at: float = 0.0
    created_at: float = 0.0


class SuppressionReason(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"  # [policy] soft_bounce_limit soft bounces within its period
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"
    ERASED = "erased"


# Of two entries for one address and topic, the one that blocks more stands: an unsubscribe
# (marketing only) gives way to a bounce, a complaint or a manual entry (all mail), and those
# to an erasure (all mail, the address itself forgotten). See mailpulse.policy.suppression.
_SUPPRESSION_STRENGTH = {
    SuppressionReason.UNSUBSCRIBE: 1,
    SuppressionReason.MANUAL: 2,
    SuppressionReason.HARD_BOUNCE: 2,
    SuppressionReason.SOFT_BOUNCE: 2,
    SuppressionReason.COMPLAINT: 2,
    SuppressionReason.ERASED: 3,
}


class Suppression(msgspec.Struct, frozen=True, kw_only=True):
    """An entry of the suppression list: the address (normalized, lower case) is not to be
    mailed, or not for `topic` ('' = global). Entries are keyed by `address_hash` (SHA-256 of
    the address), so that an erased one, which keeps nothing else, still matches."""

    address_hash: str
    address: str | None  # None once erased
    topic: str = ""
    reason: str
    detail: str = ""  # what it rests on: an SMTP reply, a report, an operator's note
    source: str = ""  # who or what added it
    created_at: float = 0.0

    @property
    def strength(self) -> int:
        return _SUPPRESSION_STRENGTH[SuppressionReason(self.reason)]


class ConsentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What a contact said about a topic ('' = all marketing), kept to show it later (GDPR
    Art. 7(1)): `action` granted, withdrawn or confirmed (double opt-in); `source` where it was
    said (api, import, preference_center, double_opt_in, one_click, mailto, ...); `wording` the
    text the person was shown. `id` is the id of the event it came from: recorded once."""

    id: str
    contact_id: str
    address: str
    topic: str
    action: str
    source: str
    at: float
    ip: str = ""
    user_agent: str = ""
    wording: str = ""


class RenderedContent(msgspec.Struct, kw_only=True):
    """What a template produces for one recipient, before MIME and signing."""

    subject: str
    html: str
    text: str
    preheader: str = ""


class RenderedMessage(msgspec.Struct, kw_only=True):
    """A finished RFC 5322 message, signed, ready for an SMTP transaction."""

    key: str
    message_id: str
    mail_from: str
    rcpt_to: str
    data: bytes


class DeliveryStatus(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"


class DeliveryResult(msgspec.Struct, kw_only=True):
    """The outcome of one SMTP transaction for one message.

    `code` is the SMTP reply code (0 when no server answered: connection refused, timeout),
    `enhanced` the RFC 3463 status code when the server gave one.
    """

    key: str
    status: DeliveryStatus
    code: int
    enhanced: str = ""
    text: str = ""
    at: float = 0.0
