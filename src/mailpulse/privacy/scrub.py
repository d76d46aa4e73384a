"""What erasure leaves of an event and of a message: what they were, never whom they were
about beyond the ids that name the contact (pseudonymous keys the customer's systems chose,
which erasure needs to recognise the contact by).

Events keep their place in the log (offset, message id), their type, name and times, so that
the log stays gap-free and a replay or a backfill counts what it counted before; a customer's
event loses its properties, traits and context; mailpulse's own events (a message's lifecycle,
segment changes) keep only what says which message and what became of it, never the recipient
nor a server's words (which may quote the address).
"""

from __future__ import annotations

import msgspec

from mailpulse.types import Event, EventType, SendIntent

# Properties of mailpulse's own events that say nothing about the person.
KEPT_PROPERTIES = frozenset(
    (
        "key",
        "template",
        "message_class",
        "campaign",
        "variant",
        "journey",
        "step",
        "topic",
        "segment",
        "attempts",
        "message_id",
        "smtp_code",
        "smtp_status",
        "next_attempt_at",
        "until",
    )
)
# Context of mailpulse's own events that says nothing about the person.
KEPT_CONTEXT = frozenset(("library", "campaign", "variant", "tested", "fan_out", "object"))


def is_customer_event(event: Event) -> bool:
    """Sent by the customer's systems (it names a userId or anonymousId), not by mailpulse."""
    return event.user_id is not None or event.anonymous_id is not None


def scrub_event(event: Event) -> Event:
    """The event as erasure leaves it (an erase event stays as it is)."""
    if event.type == EventType.ERASE:
        return event
    if is_customer_event(event):
        return msgspec.structs.replace(event, properties={}, traits={}, context={})
    return msgspec.structs.replace(
        event,
        properties={k: v for k, v in event.properties.items() if k in KEPT_PROPERTIES},
        traits={},
        context={k: v for k, v in event.context.items() if k in KEPT_CONTEXT},
    )


def scrub_intent(intent: SendIntent) -> SendIntent:
    """A message as erasure leaves it: which template, campaign or journey step, and when;
    not the address nor what the template was given about the contact."""
    return msgspec.structs.replace(intent, email="", context={})
