"""The last gate before a send intent reaches the outbox.

A contact with no usable address gets nothing, nor one whose address a suppression entry
blocks the message for (see mailpulse.policy.suppression). Marketing of an opt-in topic goes only
with the contact's consent (see mailpulse.policy.consent). Marketing also meets the project's send
policy: a frequency cap (at most N marketing messages per contact per period, counted across
all journeys), one per topic if set (at most M of a topic's messages per period), and quiet
hours on the contact's own clock, during which a message is held and sent when they end,
never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time

import msgspec

from mailpulse.policy.consent import consent_problem
from mailpulse.policy.localtime import contact_zone, next_local_time
from mailpulse.policy.suppression import blocking, describe
from mailpulse.policy.topics import Topic
from mailpulse.types import Contact, MessageClass, Suppression


class QuietHours(msgspec.Struct, frozen=True):
    """From `start` to `end`, local time; a window that crosses midnight (21:00-08:00) too."""

    start: time
    end: time

    def held_until(self, now: float, contact: Contact, default_timezone: str) -> float | None:
        where = contact_zone(contact.traits, default_timezone)
        clock = datetime.fromtimestamp(now, where).time()
        if self.start <= self.end:
            inside = self.start <= clock < self.end
        else:
            inside = clock >= self.start or clock < self.end
        return next_local_time(now, self.end, where) if inside else None


class FrequencyCap(msgspec.Struct, frozen=True):
    count: int
    period: float

    def reached(self, sent: list[float], now: float) -> bool:
        return sum(1 for at in sent if at > now - self.period) >= self.count


class SendPolicy(msgspec.Struct, frozen=True):
    quiet_hours: QuietHours | None = None
    frequency_cap: FrequencyCap | None = None
    default_timezone: str = "UTC"
    # Topic → its own cap, counted on top of (not instead of) the one across all marketing.
    topic_caps: dict[str, FrequencyCap] = msgspec.field(default_factory=dict)
    # The project's topics: an opt-in one's marketing goes only with the contact's consent.
    topics: dict[str, Topic] = msgspec.field(default_factory=dict)
    # Soft bounces of one address within a period that suppress it ([policy] soft_bounce_limit).
    soft_bounce_limit: FrequencyCap | None = None


class Verdict(msgspec.Struct, frozen=True):
    allowed: bool
    reason: str = ""
    # Allowed, but to be sent at this time (epoch seconds), not now.
    hold_until: float | None = None
    suppressed_by: Suppression | None = None  # the entry it was refused for


ALLOW = Verdict(True)
NO_POLICY = SendPolicy()


def check_send(
    contact: Contact,
    message_class: str,
    now: float = 0.0,
    policy: SendPolicy = NO_POLICY,
    topic: str | None = None,
    not_before: float | None = None,
    suppressions: Sequence[Suppression] = (),
) -> Verdict:
    """Whether, and when, a message may go. `not_before`: it is not to go before then (a
    campaign at each recipient's local time); quiet hours are judged at that moment.
    `suppressions`: the entries of the contact's address."""
    if contact.email is None:
        return Verdict(False, contact.email_error or "contact has no email address")
    entry = blocking(suppressions, message_class, topic)
    if entry is not None:
        return Verdict(False, describe(entry), suppressed_by=entry)
    if message_class != MessageClass.MARKETING:
        return ALLOW  # receipts and password resets are never capped or held
    defined = None if topic is None else policy.topics.get(topic)
    problem = None if defined is None else consent_problem(contact.consent, defined)
    if problem is not None:
        return Verdict(False, problem)
    cap = policy.frequency_cap
    if cap is not None and cap.reached(contact.marketing_sent, now):
        return Verdict(False, f"frequency cap: {cap.count} marketing messages per {cap.period:g}s")
    topic_cap = None if topic is None else policy.topic_caps.get(topic)
    if topic_cap is not None and topic_cap.reached(contact.topic_sent.get(topic, []), now):
        return Verdict(
            False,
            f"frequency cap of topic {topic}: {topic_cap.count} per {topic_cap.period:g}s",
        )
    goes = now if not_before is None else max(now, not_before)
    quiet = policy.quiet_hours
    held = None if quiet is None else quiet.held_until(goes, contact, policy.default_timezone)
    if held is not None:
        return Verdict(True, "quiet hours on the contact's clock", hold_until=held)
    if goes > now:
        return Verdict(True, "the time it is to go", hold_until=goes)
    return ALLOW


def remember_marketing(
    contact: Contact, now: float, policy: SendPolicy, topic: str | None = None
) -> None:
    """Count a marketing message against the caps; only what a cap can still see is kept."""
    cap = policy.frequency_cap
    if cap is not None:
        contact.marketing_sent = _recent(contact.marketing_sent, now, cap)
    topic_cap = None if topic is None else policy.topic_caps.get(topic)
    if topic is not None and topic_cap is not None:
        contact.topic_sent[topic] = _recent(contact.topic_sent.get(topic, []), now, topic_cap)


def _recent(sent: list[float], now: float, cap: FrequencyCap) -> list[float]:
    return [*(at for at in sent if at > now - cap.period), now]
