"""Engagement in the fold: opens and clicks counted per campaign and journey, people apart from
machines, and conversions attributed to the last message a person clicked.

For each campaign and journey (`owner`: `campaign:<id>`, `journey:<id>`) the fold keeps:

- `sent`: messages sent (an `Email Sent`, once per message), what the rates are of;
- `opened`, `clicked`: messages a person opened, clicked (each message once);
- `machine_opened`, `machine_clicked`: messages a machine opened, clicked (each once; see
  mailpulse.feedback.machines for who counts as one);
- `converted`: conversion events attributed to its messages, with their revenue summed.

A conversion is the project's `[conversions] event`, done by the contact (not one of our own
lifecycle events) within `within` of their last click by a person; the last click wins. It is
recorded as an `Email Converted` event about that message (in the batch's lifecycle events,
committed with the counts), its id derived from the conversion's, so a replay repeats nothing.

A scanner following every link of a message is seen from its second click on (`burst`); its
first click, counted as a person's, is taken back then: out of `clicked`, and no longer the
click conversions are attributed to. Segments still saw that first click as a person's.

Counted in the commit that stores the contact's note of what it was counted for: exactly
once, replays included. A contact keeps notes for its latest `KEPT_MESSAGES` messages; an
older one engaged with again counts again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mailpulse.campaigns import campaign_of_key
from mailpulse.campaigns.abtest import Conversion
from mailpulse.feedback.machines import BURST, BURST_SECONDS
from mailpulse.runtime.lifecycle import Lifecycle
from mailpulse.types import Contact, Event, EventType, LastClick, MessageEngagement

SENT, OPENED, CLICKED, CONVERTED = "sent", "opened", "clicked", "converted"
MACHINE_OPENED, MACHINE_CLICKED = "machine_opened", "machine_clicked"
# The lifecycle events counted, besides the project's conversion event.
ENGAGING = frozenset((Lifecycle.SENT.value, Lifecycle.OPENED.value, Lifecycle.CLICKED.value))
KEPT_MESSAGES = 50
# What the click says of its message, kept for the conversion attributed to it.
_ABOUT_MESSAGE = ("key", "template", "message_class", "campaign", "variant", "journey", "step")


@dataclass
class Engagement:
    """What one event changed: counts by (owner, figure) with the amount each adds, the
    `Email Converted` it called for, the campaign whose A/B click count a scanner's burst
    takes back (the fold keeps those counts), and whether the contact's notes changed.
    `figures`: what an open or click changed of its message's figures, whatever its owners
    (the lifecycle statistics count messages of no campaign or journey too)."""

    contact_changed: bool = True
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    figures: Counter[str] = field(default_factory=Counter)
    amounts: Counter[tuple[str, str]] = field(default_factory=Counter)
    converted: Event | None = None
    retracted_click: str | None = None


def owners(properties: dict[str, Any]) -> list[str]:
    """The campaign and journey a lifecycle event's message is of."""
    found = []
    key, campaign = properties.get("key"), properties.get("campaign")
    if isinstance(key, str) and (of_key := campaign_of_key(key)) is not None:
        campaign = of_key
    if isinstance(campaign, str) and campaign:
        found.append(f"campaign:{campaign}")
    journey = properties.get("journey")
    if isinstance(journey, str) and journey:
        found.append(f"journey:{journey}")
    return found


def is_machine(event: Event) -> bool:
    """An open or click a machine made (mailpulse.feedback.machines), not a person."""
    return event.properties.get("machine") is True


def engage(event: Event, contact: Contact, conversion: Conversion | None) -> Engagement | None:
    """What `event` counts for; None when nothing. Changes the contact's notes."""
    if event.type != EventType.TRACK:
        return None
    if event.event == Lifecycle.SENT:
        if event.user_id is not None or event.anonymous_id is not None:
            return None  # not ours
        sent = Engagement(contact_changed=False)
        for owner in owners(event.properties):
            sent.counts[owner, SENT] += 1
        return sent
    if event.event in (Lifecycle.OPENED, Lifecycle.CLICKED):
        return _opened_or_clicked(event, contact)
    if conversion is not None and event.event == conversion.event:
        return _converted(event, contact, conversion)
    return None


def _opened_or_clicked(event: Event, contact: Contact) -> Engagement | None:
    props = event.properties
    key = props.get("key")
    if not isinstance(key, str) or not key:
        return None
    clicked, machine = event.event == Lifecycle.CLICKED, is_machine(event)
    figure = {
        (False, False): OPENED,
        (False, True): MACHINE_OPENED,
        (True, False): CLICKED,
        (True, True): MACHINE_CLICKED,
    }[clicked, machine]
    note = _note(contact, key)
    result = Engagement()
    mine = owners(props)
    if clicked and machine and props.get("rule") == BURST and _retract(contact, key, event):
        result.figures[CLICKED] -= 1
        for owner in mine:
            result.counts[owner, CLICKED] -= 1
        result.retracted_click = campaign_of_key(key) or props.get("campaign")
    if clicked and not machine:
        if not note.clicked_at:
            note.clicked_at = event.received_at
        contact.last_click = LastClick(
            at=event.received_at, message={k: props[k] for k in _ABOUT_MESSAGE if k in props}
        )
    if figure not in note.counted:
        note.counted.append(figure)
        result.figures[figure] += 1
        for owner in mine:
            result.counts[owner, figure] += 1
    return result


def _retract(contact: Contact, key: str, burst: Event) -> bool:
    """Take back the person's click of a message a scanner was following every link of:
    whether one was counted (within the burst window before `burst`)."""
    note = contact.engaged[key]
    if CLICKED not in note.counted or burst.received_at - note.clicked_at > 2 * BURST_SECONDS:
        return False
    note.counted.remove(CLICKED)
    note.clicked_at = 0.0
    last = contact.last_click
    if last is not None and last.message.get("key") == key:
        contact.last_click = None
    return True


def _note(contact: Contact, key: str) -> MessageEngagement:
    note = contact.engaged.pop(key, None) or MessageEngagement()
    contact.engaged[key] = note  # the latest last
    for old in list(contact.engaged)[: max(0, len(contact.engaged) - KEPT_MESSAGES)]:
        del contact.engaged[old]
    return note


def _converted(event: Event, contact: Contact, conversion: Conversion) -> Engagement | None:
    if event.user_id is None and event.anonymous_id is None:
        return None  # mailpulse's own events are no one's conversion
    click = contact.last_click
    if click is None or not click.at <= event.received_at <= click.at + conversion.within:
        return None
    revenue = _amount(event.properties.get(conversion.revenue))
    result = Engagement(contact_changed=False)
    for owner in owners(click.message):
        result.counts[owner, CONVERTED] += 1
        result.amounts[owner, CONVERTED] += revenue
    result.converted = Event(
        type=EventType.TRACK,
        message_id=f"{Lifecycle.CONVERTED.value}:{event.message_id}",
        contact_key=contact.id,
        event=Lifecycle.CONVERTED.value,
        properties={
            **click.message,
            "conversion": conversion.event,
            "conversion_id": event.message_id,
            "revenue": revenue,
            "clicked_at": click.at,
        },
        context={"library": {"name": "mailpulse"}},
        timestamp=event.received_at,
        received_at=event.received_at,
    )
    return result


def _amount(value: Any) -> float:
    """A revenue as sent: a number, or a number in a string ("12.50"); anything else is 0."""
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        amount = float(value)
    elif isinstance(value, str):
        try:
            amount = float(value.strip())
        except ValueError:
            return 0.0
    else:
        return 0.0
    return amount if amount == amount and abs(amount) != float("inf") else 0.0
