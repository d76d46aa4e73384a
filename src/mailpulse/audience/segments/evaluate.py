"""Whether a condition holds: one walk of the tree for every way of knowing the history."""

from __future__ import annotations

from typing import Protocol, assert_never

from mailpulse.audience.segments.conditions import (
    AllOf,
    AnyOf,
    Condition,
    InSegment,
    Not,
    Performed,
    Seen,
    Subscribed,
    TraitCondition,
)
from mailpulse.types import Contact


class History(Protocol):
    """What the history-bound leaves need to know about a contact's past events."""

    def performed(self, condition: Performed, now: float) -> bool: ...

    def subscribed(self, topic: str) -> bool: ...

    def member(self, segment: str) -> bool: ...


def holds(condition: Condition, contact: Contact, history: History, now: float) -> bool:
    match condition:
        case TraitCondition() | Seen():
            return condition.holds(contact, now)
        case Performed():
            return history.performed(condition, now)
        case Subscribed(topic=topic):
            return history.subscribed(topic)
        case InSegment(segment=segment):
            return history.member(segment)
        case AllOf(conditions=children):
            return all(holds(child, contact, history, now) for child in children)
        case AnyOf(conditions=children):
            return any(holds(child, contact, history, now) for child in children)
        case Not(condition=child):
            return not holds(child, contact, history, now)
        case _:
            assert_never(condition)
