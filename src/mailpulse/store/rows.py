"""Rows to values and back, shared by the backends: both store the same columns in the same
order, so a row reads the same whichever database it came from.

Bodies are msgspec JSON, not msgpack: JSON numbers have no size limit and events arrive as JSON.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from mailpulse.privacy.scrub import is_customer_event, scrub_event, scrub_intent
from mailpulse.store.interface import (
    BreakerRecord,
    InstanceRecord,
    OutboxRow,
    OutboxStatus,
    OutboxUpdate,
)
from mailpulse.types import (
    ConsentRecord,
    Contact,
    Event,
    SendIntent,
    Suppression,
    SuppressionReason,
)

encode = msgspec.json.Encoder().encode
decode_contact = msgspec.json.Decoder(Contact).decode
decode_intent = msgspec.json.Decoder(SendIntent).decode
decode_event = msgspec.json.Decoder(Event).decode

WAITING = frozenset((OutboxStatus.QUEUED, OutboxStatus.DEFERRED))
ERASED_TEXT = "the contact was erased"


def address_key(email: str) -> str | None:
    """What the outbox finds a message's recipient by (in any case): a digest, so that the
    index holds no address; None for a message without one (an erased contact's)."""
    address = email.strip().lower()
    return hashlib.sha256(address.encode()).hexdigest()[:32] if address else None


def send_key_of(event: Event) -> str | None:
    """The send a lifecycle event of mailpulse's is about (its idempotency key), which the log
    indexes so that one message's events are found at once; None for any other event (a
    customer's, a forwarded copy)."""
    if event.forwarded or is_customer_event(event):
        return None
    library = event.context.get("library")
    if not isinstance(library, dict) or library.get("name") != "mailpulse":
        return None
    key = event.properties.get("key")
    return key if isinstance(key, str) else None


def event_at(body: bytes, offset: int, partition: int = 0) -> Event:
    """The columns are the authority on where an event stands, not its body."""
    event = decode_event(body)
    event.partition = partition
    event.offset = offset
    return event


def instance_from_row(row: Sequence[Any]) -> InstanceRecord:
    """Columns: instance_id, contact_id, journey_id, status, wake_at, entered_at, body."""
    iid, cid, jid, status, wake_at, entered_at, body = row
    return InstanceRecord(
        instance_id=iid,
        contact_id=cid,
        journey_id=jid,
        status=status,
        wake_at=wake_at,
        entered_at=entered_at,
        body=body,
    )


def group_instances(records: Iterable[InstanceRecord]) -> dict[str, list[InstanceRecord]]:
    """By contact, each contact's in entry order (as `instances_for` has them)."""
    grouped: dict[str, list[InstanceRecord]] = {}
    for record in sorted(records, key=lambda r: (r.entered_at, r.instance_id)):
        grouped.setdefault(record.contact_id, []).append(record)
    return grouped


def outbox_from_row(row: Sequence[Any]) -> OutboxRow:
    """Columns: intent, status, attempts, next_attempt_at, message_id, last_code, last_text,
    updated_at."""
    intent, status, attempts, next_at, message_id, code, text, updated = row
    return OutboxRow(
        intent=decode_intent(intent),
        status=status,
        attempts=attempts,
        next_attempt_at=next_at,
        message_id=message_id,
        last_code=code,
        last_text=text,
        updated_at=updated,
    )


def breaker_from_row(row: Sequence[Any]) -> BreakerRecord:
    """Columns: alert_at, tripped_at, reason, sends, complaints, since, resumed_at, resumed_by,
    judged_from, baseline_sends, baseline_complaints."""
    alert_at, tripped_at, reason, sends, complaints, since, resumed_at, resumed_by = row[:8]
    judged_from, baseline_sends, baseline_complaints = row[8:]
    return BreakerRecord(
        alert_at=alert_at,
        tripped_at=tripped_at,
        reason=reason,
        sends=sends,
        complaints=complaints,
        since=since,
        resumed_at=resumed_at,
        resumed_by=resumed_by,
        judged_from=judged_from,
        baseline_sends=baseline_sends,
        baseline_complaints=baseline_complaints,
    )


def waiting_statuses(status: str | None) -> list[str]:
    """The statuses `outbox_due` looks for: both waiting ones, or the one asked for."""
    statuses = WAITING if status is None else WAITING & {status}
    if not statuses:
        raise ValueError(f"rows in status {status!r} are not waiting to be sent")
    return sorted(statuses)


def erased_outbox(
    key: str, status: str, intent: bytes, at: float
) -> tuple[bytes, str, str, float, str] | None:
    """Parameters of scrub-outbox-row for an erased contact's message (intent, status,
    last_text, updated_at, key), or None when it is scrubbed already: the message without the
    address or what the template was given, its last reply text gone (it may quote the
    address), and, if it still waited, suppressed."""
    scrubbed = encode(scrub_intent(decode_intent(intent)))
    if status in WAITING:
        return scrubbed, OutboxStatus.SUPPRESSED, ERASED_TEXT, at, key
    return None if scrubbed == intent else (scrubbed, status, "", at, key)


def scrubbed_bodies(rows: Sequence[tuple[str, bytes]], keys: set[str]) -> list[tuple[bytes, str]]:
    """(body, message id) of the kept lifecycle events among `rows` (message id, body) whose
    contact is one of `keys`, scrubbed."""
    changed = []
    for message_id, body in rows:
        event = decode_event(body)
        if event.contact_key in keys:
            scrubbed = encode(scrub_event(event))
            if scrubbed != body:
                changed.append((scrubbed, message_id))
    return changed


def outbox_update_params(u: OutboxUpdate) -> tuple[Any, ...]:
    """Parameters of update-outbox in every backend: the new values, then the key."""
    return (
        u.status,
        u.attempts,
        u.next_attempt_at,
        u.message_id,
        u.last_code,
        u.last_text,
        u.updated_at,
        u.key,
    )


def suppression_from_row(row: Sequence[Any]) -> Suppression:
    """Columns: address_hash, topic, address, reason, detail, source, created_at."""
    hashed, topic, address, reason, detail, source, created_at = row
    return Suppression(
        address_hash=hashed,
        topic=topic,
        address=address,
        reason=reason,
        detail=detail,
        source=source,
        created_at=created_at,
    )


def suppression_params(s: Suppression) -> tuple[Any, ...]:
    """Parameters of add-suppression in every backend: the columns, strength before detail."""
    return (
        s.address_hash,
        s.topic,
        s.address,
        s.reason,
        s.strength,
        s.detail,
        s.source,
        s.created_at,
    )


def effective_suppressions(entries: Sequence[Suppression]) -> list[Suppression]:
    """What a set of entries added at once comes to: per address and topic the strongest (the
    first of equals), and for an erased address its erased entry alone (nothing else of it is
    kept, its address least of all)."""
    kept: dict[tuple[str, str], Suppression] = {}
    for entry in entries:
        standing = kept.get((entry.address_hash, entry.topic))
        if standing is None or entry.strength > standing.strength:
            kept[entry.address_hash, entry.topic] = entry
    erased = {h for (h, _), e in kept.items() if e.reason == SuppressionReason.ERASED}
    return [e for (h, topic), e in kept.items() if h not in erased or not topic]


def consent_params(record: ConsentRecord) -> tuple[Any, ...]:
    """Parameters of add-consent in every backend, in the columns' order."""
    return (
        record.id,
        record.contact_id,
        record.address,
        record.topic,
        record.action,
        record.source,
        record.ip,
        record.user_agent,
        record.wording,
        record.at,
    )


def consent_from_row(row: Sequence[Any]) -> ConsentRecord:
    """Columns: as `consent_params`."""
    record_id, contact_id, address, topic, action, source, ip, user_agent, wording, at = row
    return ConsentRecord(
        id=record_id,
        contact_id=contact_id,
        address=address,
        topic=topic,
        action=action,
        source=source,
        ip=ip,
        user_agent=user_agent,
        wording=wording,
        at=at,
    )
