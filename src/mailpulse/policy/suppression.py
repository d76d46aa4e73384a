"""The suppression list: addresses not to be mailed at all, or not with marketing of a topic.

What an entry blocks:

- a global `hard_bounce`, `soft_bounce`, `complaint`, `manual` or `erased` entry: every
  message, transactional ones too. The address does not exist (or failed soft bounce after
  soft bounce, `[policy] soft_bounce_limit`), its owner called our mail spam, an operator said
  so, or the person asked to be forgotten; mailbox providers count mail to such addresses
  against the sender (SES's account-level suppression list blocks all sends to them the same
  way);
- a global `unsubscribe`: all marketing; a receipt or a password reset still goes;
- an entry for a topic (`unsubscribe` or `manual` only): marketing of that topic.

Entries are keyed by the SHA-256 of the normalized, lower-cased address, so that an erased
entry, which keeps nothing but the hash, still matches the address when it comes back.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from mailpulse.audience.profiles import normalize_email
from mailpulse.types import MessageClass, Suppression, SuppressionReason

REASONS = tuple(reason.value for reason in SuppressionReason)
# Entries that block every message to the address, not only marketing.
_ALL_MAIL = frozenset(
    (
        SuppressionReason.HARD_BOUNCE,
        SuppressionReason.SOFT_BOUNCE,
        SuppressionReason.COMPLAINT,
        SuppressionReason.MANUAL,
        SuppressionReason.ERASED,
    )
)
# Facts about the address itself: never scoped to a topic.
ADDRESS_ONLY = frozenset(
    (
        SuppressionReason.HARD_BOUNCE,
        SuppressionReason.SOFT_BOUNCE,
        SuppressionReason.COMPLAINT,
        SuppressionReason.ERASED,
    )
)
# RFC 3463 X.1.y statuses that say the address is bad: no such mailbox (5.1.1), no such
# domain (5.1.2), bad syntax (5.1.3), moved (5.1.6), a null MX (5.1.10, RFC 7505), other
# (5.1.0). Not 5.1.7 / 5.1.8 (about our sender address), nor 5.2.x (a full mailbox, transient
# even as 5.x), 5.3.x (the receiving system) or 5.7.x (policy and content blocks).
BAD_ADDRESS_STATUSES = frozenset(("5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10"))
# Feedback types (RFC 5965 §7.3) that are a person calling our mail unwanted. Not auth-failure
# (RFC 6591: a report about authentication, not about the recipient's wishes) nor not-spam
# (RFC 6650: the opposite of a complaint); an opt-out is an unsubscribe.
COMPLAINT_TYPES = frozenset(("abuse", "fraud", "virus", "other"))
OPT_OUT_TYPES = frozenset(("opt-out", "unsubscribe"))
MAX_TOPIC = 200
MAX_DETAIL = 1000
# What a person may give for an entry (an import row, an API request), in export's order;
# a CSV's header names one of the first two at least.
ENTRY_FIELDS = ("address", "address_hash", "topic", "reason", "detail", "source", "created_at")
ADDRESS_FIELDS = ENTRY_FIELDS[:2]
_HEX = frozenset("0123456789abcdef")


def canonical_address(raw: str) -> tuple[str | None, str | None]:
    """`(address, None)`: the form entries are keyed by (normalized, lower case: mailbox
    providers treat local parts without regard to case); or `(None, why not)`."""
    address, problem = normalize_email(raw.strip())
    return (address.lower(), None) if address is not None else (None, problem)


def address_hash(address: str) -> str:
    """The key of an address's entries; `address` is normalized (a contact's email is).

    Not cached: hashing costs under a microsecond, and a broadcast hashes each address of
    its audience once, so a cache only filled with addresses never hashed again (16 MB at
    65,536 of them)."""
    return hashlib.sha256(address.lower().encode()).hexdigest()


def is_address_hash(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX


def entry(
    address: str,
    reason: str,
    *,
    topic: str = "",
    detail: str = "",
    source: str = "",
    at: float,
) -> Suppression:
    """An entry for a normalized address; an erased one keeps only the address's hash."""
    return Suppression(
        address_hash=address_hash(address),
        address=None if reason == SuppressionReason.ERASED else address.lower(),
        topic=topic,
        reason=reason,
        detail=detail,
        source=source,
        created_at=at,
    )


def blocks(found: Suppression, message_class: str, topic: str | None) -> bool:
    if found.topic:
        return message_class == MessageClass.MARKETING and found.topic == topic
    return found.reason in _ALL_MAIL or message_class == MessageClass.MARKETING


def blocking(
    entries: Iterable[Suppression], message_class: str, topic: str | None
) -> Suppression | None:
    """The entry a message is refused for (the strongest, a global one before a topic's)."""
    found = [e for e in entries if blocks(e, message_class, topic)]
    return max(found, key=lambda e: (e.strength, not e.topic), default=None)


def describe(found: Suppression) -> str:
    """What an `Email Suppressed` event and the outbox row say, e.g. `suppressed: hard_bounce
    (550 5.1.1 no such user) since 2026-11-28T09:12:03Z`."""
    scope = f" for topic {found.topic}" if found.topic else ""
    detail = f" ({found.detail})" if found.detail else ""
    return f"suppressed{scope}: {found.reason}{detail} since {iso(found.created_at)}"


def is_bad_address(code: int, enhanced: str) -> bool:
    """Whether an SMTP reply says the address itself is bad: a permanent X.1.y status naming
    the recipient. A 5xx without an enhanced status tells too little (550 is also a policy
    block), so it does not count."""
    return 500 <= code < 600 and enhanced in BAD_ADDRESS_STATUSES


def is_hard_bounce(properties: dict[str, Any]) -> bool:
    """Whether an `Email Bounced` event says the address is bad: the classifier's `bounce`
    decision when it gives one (a DSN, a webhook), else its `smtp_code` and `smtp_status`
    (the reply mailpulse got while sending)."""
    decided = properties.get("bounce")
    if isinstance(decided, str):
        return decided == "hard"
    code, status = properties.get("smtp_code"), properties.get("smtp_status")
    return isinstance(code, int) and isinstance(status, str) and is_bad_address(code, status)


def bounce_entry(properties: dict[str, Any], address: str | None, at: float) -> Suppression | None:
    """The hard-bounce entry an `Email Bounced` event calls for (see `is_hard_bounce`), or
    None. The address is the event's `recipient`, else `address` (the contact's, for events
    recorded before they named the recipient)."""
    if not is_hard_bounce(properties):
        return None
    return _event_entry(properties, address, SuppressionReason.HARD_BOUNCE, _reply(properties), at)


def soft_bounce_entry(
    properties: dict[str, Any], address: str | None, at: float, limit: str
) -> Suppression | None:
    """The entry of an address whose soft bounces reached `[policy] soft_bounce_limit`
    (`limit` as written, e.g. "5/7d") with the bounce of `properties`."""
    detail = f"soft bounces reached {limit}, the last: {_reply(properties)}"
    return _event_entry(properties, address, SuppressionReason.SOFT_BOUNCE, detail, at)


def feedback_kind(properties: dict[str, Any]) -> str:
    """The feedback type (RFC 5965 §7.3) of an `Email Complained` event, lower-cased; "other"
    when it names none."""
    kind = properties.get("feedback_type")
    return kind.lower() if isinstance(kind, str) and kind else "other"


def complaint_entry(
    properties: dict[str, Any], address: str | None, at: float
) -> Suppression | None:
    """The entry an `Email Complained` event calls for: a complaint for the feedback types
    that are one, a global unsubscribe for an opt-out, nothing for the others."""
    kind = feedback_kind(properties)
    if kind in COMPLAINT_TYPES:
        reason = SuppressionReason.COMPLAINT
    elif kind in OPT_OUT_TYPES:
        reason = SuppressionReason.UNSUBSCRIBE
    else:
        return None
    agent = properties.get("user_agent")
    detail = f"{kind} report" + (f" from {agent}" if isinstance(agent, str) and agent else "")
    return _event_entry(properties, address, reason, detail, at)


def _reply(properties: dict[str, Any]) -> str:
    parts = (
        properties.get("smtp_code"),
        properties.get("smtp_status"),
        properties.get("smtp_text"),
    )
    return " ".join(str(p) for p in parts if p)


def _event_entry(
    properties: dict[str, Any], address: str | None, reason: str, detail: str, at: float
) -> Suppression | None:
    recipient = properties.get("recipient", address)
    found = canonical_address(recipient)[0] if isinstance(recipient, str) else None
    if found is None:
        return None
    what = _WHAT.get(reason, "bounce")
    key = properties.get("key")
    return entry(
        found,
        reason,
        detail=detail[:MAX_DETAIL],
        source=f"{what} {_OF[what]} {key}" if isinstance(key, str) else what,
        at=at,
    )


# What an entry an event called for says it came from: "bounce of <key>", ...
_WHAT = {SuppressionReason.COMPLAINT: "complaint", SuppressionReason.UNSUBSCRIBE: "opt-out report"}
_OF = {"bounce": "of", "complaint": "about", "opt-out report": "about"}


class SuppressionIndex:
    """The entries of the addresses a batch of sends may go to, looked up once for the batch,
    plus what the batch adds itself."""

    def __init__(self, entries: Iterable[Suppression] = ()) -> None:
        self._by_hash: dict[str, dict[str, Suppression]] = {}
        for found in entries:
            self.add(found)

    def add(self, found: Suppression) -> None:
        topics = self._by_hash.setdefault(found.address_hash, {})
        standing = topics.get(found.topic)
        if standing is None or found.strength > standing.strength:
            topics[found.topic] = found

    def lift(self, hashed: str, topic: str) -> None:
        """A resubscribe: the address's unsubscribe entry of `topic` goes, and only that (a
        bounce, a complaint, an operator's or an erased entry stands)."""
        topics = self._by_hash.get(hashed, {})
        standing = topics.get(topic)
        if standing is not None and standing.reason == SuppressionReason.UNSUBSCRIBE:
            del topics[topic]

    def of(self, address: str | None) -> Sequence[Suppression]:
        if address is None:
            return ()
        return list(self._by_hash.get(address_hash(address), {}).values())


class EntryError(ValueError):
    """Why a row or a request cannot be an entry; `field` names the part that is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def entry_from_fields(fields: dict[str, Any], *, source: str, now: float) -> Suppression:
    """An entry from what a person wrote (an import row, an API request): `address`, or for
    an erased entry `address_hash` alone; `topic`, `reason` (manual by default), `detail`,
    `source` and `created_at` (epoch seconds or ISO 8601; now by default). Raises EntryError."""
    fields = {k: v for k, v in fields.items() if v not in ("", None)}
    unknown = sorted(set(fields) - set(ENTRY_FIELDS))
    if unknown:
        raise EntryError(
            unknown[0], f"unknown field {unknown[0]!r}; known: {', '.join(ENTRY_FIELDS)}"
        )
    reason = _text(fields, "reason", SuppressionReason.MANUAL, 32)
    if reason not in REASONS:
        raise EntryError("reason", f"reason {reason!r} is not one of {', '.join(REASONS)}")
    topic = _text(fields, "topic", "", MAX_TOPIC)
    if topic and reason in ADDRESS_ONLY:
        raise EntryError("topic", f"{reason} entries are about the address: they take no topic")
    detail = _text(fields, "detail", "", MAX_DETAIL)
    source = _text(fields, "source", source, MAX_TOPIC)
    at = _moment(fields.get("created_at"), now)
    raw = fields.get("address")
    if raw is None:
        return _erased_by_hash(fields, reason, detail, source, at)
    if not isinstance(raw, str):
        raise EntryError("address", f"address {raw!r} is not text")
    address, problem = canonical_address(raw)
    if address is None:
        raise EntryError("address", problem or f"{raw!r} is not an address")
    given_hash = fields.get("address_hash")
    if given_hash is not None and given_hash != address_hash(address):
        raise EntryError("address_hash", f"address_hash is not the SHA-256 of {address}")
    return entry(address, reason, topic=topic, detail=detail, source=source, at=at)


def _erased_by_hash(
    fields: dict[str, Any], reason: str, detail: str, source: str, at: float
) -> Suppression:
    hashed = fields.get("address_hash")
    if hashed is None:
        raise EntryError("address", "no address (an erased entry may give address_hash instead)")
    if not isinstance(hashed, str) or not is_address_hash(hashed):
        raise EntryError("address_hash", "address_hash is 64 hex digits: a SHA-256, lower case")
    if reason != SuppressionReason.ERASED:
        raise EntryError(
            "address", f"{reason} entries need an address; only an erased one may be a bare hash"
        )
    return Suppression(
        address_hash=hashed,
        address=None,
        reason=reason,
        detail=detail,
        source=source,
        created_at=at,
    )


def _text(fields: dict[str, Any], name: str, default: str, longest: int) -> str:
    value = fields.get(name, default)
    if not isinstance(value, str):
        raise EntryError(name, f"{name} {value!r} is not text")
    value = value.strip()
    if len(value) > longest or any(ord(c) < 32 for c in value):
        raise EntryError(name, f"{name} is one line of at most {longest} characters")
    return value


def _moment(value: Any, now: float) -> float:
    if value is None:
        return now
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 0 <= value <= now + 86400:
            return float(value)
        raise EntryError("created_at", f"created_at {value!r} is not a time up to now")
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return _moment(float(value), now)
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise EntryError("created_at", f"created_at {value!r} is not ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return _moment(moment.timestamp(), now)
    raise EntryError("created_at", f"created_at {value!r} is neither a number nor ISO 8601")


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
