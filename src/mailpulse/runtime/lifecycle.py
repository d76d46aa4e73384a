"""Lifecycle events: what happened to a message, appended to the same log as customer events.

Their message ids derive from the send's idempotency key, so appending one twice (a replay
after a crash) is dropped by the log's dedup.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from mailpulse.types import Event, EventType, SendIntent


class Lifecycle(StrEnum):
    QUEUED = "Email Queued"
    HELD = "Email Held"  # by quiet hours, until `until`
    SENT = "Email Sent"
    DEFERRED = "Email Deferred"
    BOUNCED = "Email Bounced"
    COMPLAINED = "Email Complained"  # a feedback report (RFC 5965) about the message
    SUPPRESSED = "Email Suppressed"
    EXPIRED = "Email Expired"
    FAILED = "Email Failed"
    # Engagement (mailpulse.feedback.tracking): `machine` says whether a person did it.
    OPENED = "Email Opened"
    CLICKED = "Email Clicked"
    CONVERTED = "Email Converted"  # a conversion event attributed to the message's last click
    # What a contact said about their mail (mailpulse.feedback, mailpulse.policy.consent).
    UNSUBSCRIBED = "Unsubscribed"
    SUBSCRIBED = "Subscribed"


def lifecycle_event(
    kind: Lifecycle, intent: SendIntent, now: float, *, attempt: int = 0, **properties: Any
) -> Event:
    props: dict[str, Any] = {
        "key": intent.key,
        "template": intent.template,
        "message_class": intent.message_class,
        **properties,
    }
    if intent.campaign:
        props["campaign"] = intent.campaign
        if intent.variant:
            props["variant"] = intent.variant
    if intent.journey:
        props["journey"] = intent.journey
        props["step"] = intent.step
    suffix = f":{attempt}" if attempt else ""
    return Event(
        type=EventType.TRACK,
        message_id=f"{kind.value}:{intent.key}{suffix}",
        contact_key=intent.contact_id,
        event=kind.value,
        properties=props,
        context={"library": {"name": "mailpulse"}},
        timestamp=now,
        received_at=now,
    )
