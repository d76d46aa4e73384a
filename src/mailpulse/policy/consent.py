"""Consent and subscriptions: what `Subscribed` and `Unsubscribed` events change.

Two kinds of these events reach the log:

- a customer's app records what a person said on its own forms with a Segment `track` call:
  `Subscribed` with `properties.topic` (none: all marketing), `wording` (the text the person
  was shown) and `source` (a label, `api` by default); `context.ip` and `context.userAgent`
  as the Segment spec has them. `Unsubscribed` likewise from its own settings page;
- mailpulse itself appends them (no userId, no anonymousId) for a one-click or mailto
  unsubscribe, the preference page and a double opt-in confirmation, naming the `address`
  the person was mailed at (see `unsubscribed_event`, `subscribed_event`).

Each becomes a consent record (who, when, where from, IP, user agent, wording). An
`Unsubscribed` adds an unsubscribe entry to the suppression list (for its topic, or global);
a `Subscribed` lifts the address's unsubscribe entry of that scope, never an entry of another
reason (a bounce, a complaint, an operator's or an erasure stands). For a double opt-in topic,
a customer's `Subscribed` only asks: a confirmation email goes out, and the topic's marketing
flows once the person confirms from its link.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailpulse.policy.suppression import address_hash, canonical_address, entry
from mailpulse.policy.topics import TOPIC_ID, Topic
from mailpulse.types import (
    ConsentRecord,
    Contact,
    Event,
    EventType,
    MessageClass,
    SendIntent,
    Suppression,
    SuppressionReason,
)

SUBSCRIBED, UNSUBSCRIBED = "Subscribed", "Unsubscribed"
GRANTED, WITHDRAWN, CONFIRMED = "granted", "withdrawn", "confirmed"
ACTIONS = (GRANTED, WITHDRAWN, CONFIRMED)
# Where consent was given or withdrawn: the sources mailpulse records itself, which a
# customer's event may not claim (it is recorded as `api` then).
PREFERENCE_CENTER, DOUBLE_OPT_IN, ONE_CLICK, MAILTO = (
    "preference_center",
    "double_opt_in",
    "one_click",
    "mailto",
)
OWN_SOURCES = frozenset((PREFERENCE_CENTER, DOUBLE_OPT_IN, ONE_CLICK, MAILTO))
API = "api"
# The built-in template of the confirmation email (a project's own of this name replaces it),
# in the folder of mailpulse's built-in templates.
CONFIRM_TEMPLATE = "confirm_subscription"
BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
_CONFIRM_KEY = "confirm:"
_MAX_LABEL = 64
_MAX_WORDING = 2000
_MAX_CLIENT = 512  # an IP or a user agent


@dataclass(frozen=True)
class SubscriptionChange:
    """What one subscription event changes besides the contact's consent state."""

    record: ConsentRecord
    suppress: Suppression | None = None  # an unsubscribe entry to add
    lift: tuple[str, str] | None = None  # (address hash, topic) of an unsubscribe to remove
    confirm: Topic | None = None  # a double opt-in topic whose confirmation email is due


def apply_subscription(
    contact: Contact, ev: Event, topics: Mapping[str, Topic]
) -> SubscriptionChange | None:
    """The change a `Subscribed` or `Unsubscribed` event makes, its consent state set on
    `contact`; None for any other event, and for one whose topic is not a topic's id."""
    if ev.type != EventType.TRACK or ev.event not in (SUBSCRIBED, UNSUBSCRIBED):
        return None
    props = ev.properties
    topic = props.get("topic") or ""
    if not isinstance(topic, str) or (topic and not TOPIC_ID.fullmatch(topic)):
        return None
    own = ev.user_id is None and ev.anonymous_id is None
    address = _address(props.get("address")) if own else contact.email
    if ev.event == UNSUBSCRIBED:
        action = WITHDRAWN
    else:
        claimed = props.get("action")
        action = claimed if own and claimed in (GRANTED, CONFIRMED) else GRANTED
    source = _label(props.get("source"))
    if not own and source in OWN_SOURCES:
        source = API
    at = ev.received_at or ev.timestamp
    record = ConsentRecord(
        id=ev.message_id,
        contact_id=contact.id,
        address=(address or "").lower(),
        topic=topic,
        action=action,
        source=source,
        at=at,
        ip=_clip(ev.context.get("ip"), _MAX_CLIENT),
        user_agent=_clip(ev.context.get("userAgent"), _MAX_CLIENT),
        wording=_clip(props.get("wording"), _MAX_WORDING),
    )
    if action == WITHDRAWN:
        if topic:
            contact.consent[topic] = WITHDRAWN
        if address is None:
            return SubscriptionChange(record)
        key = props.get("key")
        unsubscribe = entry(
            address,
            SuppressionReason.UNSUBSCRIBE,
            topic=topic,
            detail=f"from message {key}" if own and isinstance(key, str) else "",
            source=source,
            at=at,
        )
        return SubscriptionChange(record, suppress=unsubscribe)
    defined = topics.get(topic)
    if defined is not None and defined.double_opt_in and action == GRANTED:
        if contact.consent.get(topic) == CONFIRMED:
            return SubscriptionChange(record)  # confirmed already: nothing to ask again
        contact.consent[topic] = GRANTED  # asked; confirmed from the mailed link
        return SubscriptionChange(record, confirm=defined if address else None)
    if topic:
        contact.consent[topic] = action
    lift = None if address is None else (address_hash(address), topic)
    return SubscriptionChange(record, lift=lift)


def consent_problem(consent: Mapping[str, str], topic: Topic) -> str | None:
    """Why marketing of `topic` may not go to a contact whose consent state (topic → latest
    action, `Contact.consent`) is `consent`, or None."""
    if not topic.needs_consent:
        return None
    state = consent.get(topic.id)
    if topic.double_opt_in:
        if state == CONFIRMED:
            return None
        if state == GRANTED:
            return f"topic {topic.id} awaits the contact's double opt-in confirmation"
    elif state in (GRANTED, CONFIRMED):
        return None
    return f"topic {topic.id} is opt-in and the contact has not consented"


def confirmation_intent(
    contact: Contact, topic: Topic, ev: Event, now: float, context: dict[str, Any]
) -> SendIntent:
    """The transactional email that asks a contact to confirm a double opt-in topic; its key
    derives from the event that asked, so a replay makes no second one."""
    return SendIntent(
        key=f"{_CONFIRM_KEY}{topic.id}:{ev.message_id}",
        contact_id=contact.id,
        email=contact.email or "",
        template=CONFIRM_TEMPLATE,
        context={**context, "topic": topic_view(topic)},
        message_class=MessageClass.TRANSACTIONAL,
        topic=topic.id,
        event_received_at=ev.received_at,
        created_at=now,
    )


def is_confirmation(intent: SendIntent) -> bool:
    return intent.key.startswith(_CONFIRM_KEY)


def topic_view(topic: Topic) -> dict[str, str]:
    """What templates see as `topic`."""
    return {"id": topic.id, "name": topic.name, "description": topic.description}


def unsubscribed_event(
    contact_id: str,
    address: str,
    topic: str,
    *,
    source: str,
    at: float,
    key: str = "",
    ip: str = "",
    user_agent: str = "",
    message_id: str = "",
) -> Event:
    """mailpulse's own `Unsubscribed`: `address` (the one mailed) unsubscribed from `topic`
    ('' = all marketing), through `source`, after the message of idempotency key `key`."""
    properties: dict[str, Any] = {"address": address, "source": source}
    if key:
        properties["key"] = key
    return _own_event(UNSUBSCRIBED, contact_id, topic, properties, at, ip, user_agent, message_id)


def subscribed_event(
    contact_id: str,
    address: str,
    topic: str,
    *,
    action: str,
    source: str,
    at: float,
    wording: str = "",
    ip: str = "",
    user_agent: str = "",
    message_id: str = "",
) -> Event:
    """mailpulse's own `Subscribed`: consent `action` (granted or confirmed) for `topic`
    ('' = all marketing again) of `address`, given through `source` with `wording` shown."""
    properties: dict[str, Any] = {"address": address, "source": source, "action": action}
    if wording:
        properties["wording"] = wording
    return _own_event(SUBSCRIBED, contact_id, topic, properties, at, ip, user_agent, message_id)


def _own_event(
    name: str,
    contact_id: str,
    topic: str,
    properties: dict[str, Any],
    at: float,
    ip: str,
    user_agent: str,
    message_id: str,
) -> Event:
    if topic:
        properties["topic"] = topic
    context: dict[str, Any] = {"library": {"name": "mailpulse"}}
    if ip:
        context["ip"] = ip
    if user_agent:
        context["userAgent"] = user_agent
    return Event(
        type=EventType.TRACK,
        # Each one its own: the same person may unsubscribe, resubscribe and unsubscribe
        # again from one message, and the log's dedup must not drop the second time.
        message_id=message_id or f"{name}:{uuid.uuid4().hex}",
        contact_key=contact_id,
        event=name,
        properties=properties,
        context=context,
        timestamp=at,
        received_at=at,
    )


def _address(value: Any) -> str | None:
    return canonical_address(value)[0] if isinstance(value, str) else None


def _label(value: Any) -> str:
    text = _clip(value, _MAX_LABEL)
    return text if text else API


def _clip(value: Any, longest: int) -> str:
    if not isinstance(value, str):
        return ""
    return " ".join(value.split())[:longest]
