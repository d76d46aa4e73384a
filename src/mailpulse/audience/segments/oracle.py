"""Membership computed from a contact's whole history: the reference the incremental
evaluation must always agree with, and what a backfill of a new segment computes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mailpulse.audience.segments.conditions import (
    TOPIC_SUBSCRIBED,
    TOPIC_UNSUBSCRIBED,
    Performed,
    Segment,
    in_window,
)
from mailpulse.audience.segments.evaluate import holds
from mailpulse.types import Contact, Event, EventType


class _FullHistory:
    def __init__(
        self,
        contact: Contact,
        events: Sequence[Event],
        now: float,
        segments: Mapping[str, Segment],
    ) -> None:
        self._contact, self._events, self._now = contact, events, now
        self._segments = segments

    def performed(self, condition: Performed, now: float) -> bool:
        within = condition.within
        count = sum(
            1
            for event in self._events
            if condition.aggregate.matches(event)
            and (within is None or in_window(event.received_at, within, now))
        )
        return condition.count_holds(count)

    def subscribed(self, topic: str) -> bool:
        latest = False
        for event in self._events:
            if event.type == EventType.TRACK and event.properties.get("topic") == topic:
                if event.event == TOPIC_SUBSCRIBED:
                    latest = True
                elif event.event == TOPIC_UNSUBSCRIBED:
                    latest = False
        return latest

    def member(self, segment: str) -> bool:
        referred = self._segments[segment]
        return holds(referred.condition, self._contact, self, self._now)


def full_membership(
    segment: Segment,
    contact: Contact,
    history: Sequence[Event],
    now: float,
    segments: Mapping[str, Segment] | None = None,
) -> bool:
    """Whether `contact`, whose events are `history` (all of them, in log order), is in
    `segment` at `now`; `segments` holds the segments it refers to (`segment:`)."""
    full = _FullHistory(contact, history, now, segments or {})
    return holds(segment.condition, contact, full, now)
