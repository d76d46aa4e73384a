"""Why a contact is in or out of a segment: its condition tree, each node judged with a reason.

Every verdict comes from the calls `holds` makes (a leaf's own `holds`, the history's
`performed` and `subscribed`), so an explanation cannot disagree with the membership it
explains; the reasons read what the history counted and the dates the leaves compare.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, assert_never

import msgspec

from mailpulse.audience.segments.conditions import (
    Aggregate,
    AllOf,
    AnyOf,
    Condition,
    InSegment,
    Not,
    Performed,
    RelativeDate,
    Seen,
    Segment,
    Subscribed,
    TraitCondition,
    epoch,
    in_window,
)
from mailpulse.audience.segments.evaluate import History
from mailpulse.events.filters import Filter, matches
from mailpulse.types import Contact
from mailpulse.units import format_duration

_UNITS = (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0), ("second", 1.0))
_TOPIC = {True: "subscribed", False: "unsubscribed", None: "no Topic Subscribed on record"}


class Recollection(History, Protocol):
    """A history that can also say what it counted (as `KeptHistory` does), for reasons."""

    def times(self, aggregate: Aggregate) -> Sequence[float]: ...

    def count(self, aggregate: Aggregate) -> int: ...

    def topic(self, topic: str) -> bool | None: ...


class Verdict(msgspec.Struct, frozen=True):
    """One node of a condition: what it asks, whether it holds, and why."""

    condition: str  # e.g. `trait plan eq "pro"`
    holds: bool
    reason: str  # e.g. `plan is "pro"`
    children: tuple[Verdict, ...] = ()  # of all, any and not


class Explanation(msgspec.Struct, frozen=True):
    """Whether a contact is in a segment, and why, at one moment."""

    segment: str
    name: str
    member: bool
    condition: Verdict
    member_since: float | None = None  # when the contact's state last entered the segment
    # The next moment time alone may change the membership (a window passing, a date
    # coming near enough), as the contact's state keeps it; None: only events can.
    next_change_at: float | None = None


def explain(
    segment: Segment,
    contact: Contact,
    history: Recollection,
    now: float,
    segments: Mapping[str, Segment] | None = None,
) -> Explanation:
    """Why `contact`, whose past `history` recalls, is in or out of `segment` at `now`.
    A `segment:` condition is judged from the referred segment's own condition at `now`, when
    `segments` holds it (its verdict comes as the child), else from the stored membership."""
    verdict = _Judge(contact, history, now, segments or {}).judge(segment.condition)
    state = contact.segments
    return Explanation(
        segment=segment.id,
        name=segment.name,
        member=verdict.holds,
        condition=verdict,
        # A state not yet evaluated at `now` may still hold a membership the verdict ended.
        member_since=state.members.get(segment.id) if verdict.holds else None,
        next_change_at=state.due.get(segment.id),
    )


class _Judge:
    """Judges the nodes of one contact's conditions at one moment."""

    def __init__(
        self,
        contact: Contact,
        history: Recollection,
        now: float,
        segments: Mapping[str, Segment],
    ) -> None:
        self._contact, self._history, self._now = contact, history, now
        self._segments = segments

    def judge(self, condition: Condition) -> Verdict:
        contact, history, now = self._contact, self._history, self._now
        match condition:
            case TraitCondition():
                return _trait(condition, contact, now)
            case Seen():
                return _seen(condition, contact, now)
            case Performed():
                return Verdict(
                    _performed_text(condition),
                    history.performed(condition, now),
                    _count_reason(condition, history, now),
                )
            case Subscribed(topic=topic):
                return Verdict(
                    f"subscribed {topic}", history.subscribed(topic), _TOPIC[history.topic(topic)]
                )
            case InSegment(segment=segment):
                return self._in_segment(segment)
            case AllOf(conditions=children) | AnyOf(conditions=children):
                judged = tuple(self.judge(child) for child in children)
                held = sum(verdict.holds for verdict in judged)
                every = isinstance(condition, AllOf)
                return Verdict(
                    f"{'all' if every else 'any'} of {len(judged)}",
                    held == len(judged) if every else held > 0,
                    f"{held} of {len(judged)} {'hold' if held != 1 else 'holds'}",
                    judged,
                )
            case Not(condition=child):
                inner = self.judge(child)
                return Verdict(
                    "not", not inner.holds, f"its condition {_word(inner.holds)}", (inner,)
                )
            case _:
                assert_never(condition)

    def _in_segment(self, segment: str) -> Verdict:
        referred = self._segments.get(segment)
        if referred is None:
            inside = self._history.member(segment)
            reason = f"{'a member' if inside else 'not a member'} of {segment}"
            return Verdict(f"segment {segment}", inside, reason)
        judged = self.judge(referred.condition)
        reason = f"{'a member' if judged.holds else 'not a member'} of {segment}: its condition"
        return Verdict(f"segment {segment}", judged.holds, reason, (judged,))


def _trait(condition: TraitCondition, contact: Contact, now: float) -> Verdict:
    name = ".".join(condition.path)
    terms = [_test_text(f) for f in condition.filters] + _date_terms(condition.date)
    text, holds = f"trait {name} {', '.join(terms)}", condition.holds(contact, now)
    found, value = _lookup(contact.traits, condition.path)
    if not found:
        return Verdict(text, holds, f"{name} is not set")
    reason = f"{name} is {_json(value)}"
    if condition.date is None:
        return Verdict(text, holds, reason)
    date = epoch(value)
    if date is None:
        return Verdict(text, holds, f"{reason}: not a date")
    turns = matches(condition.filters, contact.traits)  # time changes nothing while one fails
    return Verdict(text, holds, f"{reason}: {_moment(condition.date, date, now, turns)}")


def _seen(condition: Seen, contact: Contact, now: float) -> Verdict:
    text = f"seen {condition.which} {', '.join(_date_terms(condition.date))}"
    seen = contact.first_seen if condition.which == "first" else contact.last_seen
    holds = condition.holds(contact, now)
    if not seen:  # a contact made without events (an import) was never seen
        return Verdict(text, holds, "never seen")
    return Verdict(
        text, holds, f"{condition.which} seen {_moment(condition.date, seen, now, turns=True)}"
    )


def _moment(rule: RelativeDate, date: float, now: float, turns: bool) -> str:
    """`date` and how long ago it was; with `turns`, when `rule` next changes its verdict."""
    text = f"{_iso(date)}, {_ago(date, now)}"
    if not turns:
        return text
    holds = rule.holds(date, now)
    at = rule.changes_at(date, now)
    # `changes_at` names every edge, some of which change nothing (before 3d within 1d).
    while at is not None and rule.holds(date, at) == holds:
        at = rule.changes_at(date, at)
    return text if at is None else f"{text}; {_word(not holds)} from {_iso(at)}"


def _performed_text(condition: Performed) -> str:
    aggregate = condition.aggregate
    where = f" where {', '.join(map(_where_text, aggregate.where))}" if aggregate.where else ""
    within = "" if condition.within is None else f" within {_duration(condition.within)}"
    least, most = condition.at_least, condition.at_most
    if most == 0:
        return f"not performed {aggregate.event}{where}{within}"
    if most is None:
        count = f"at least {_times(least)}"
    elif least == most:
        count = f"exactly {_times(least)}"
    elif least == 0:
        count = f"at most {_times(most)}"
    else:
        count = f"between {least} and {_times(most)}"
    return f"performed {aggregate.event}{where} {count}{within}"


def _count_reason(condition: Performed, history: Recollection, now: float) -> str:
    within = condition.within
    if within is None:
        return f"{_counted(history.count(condition.aggregate), condition)} in all history"
    kept = history.times(condition.aggregate)
    inside = [received_at for received_at in kept if in_window(received_at, within, now)]
    reason = f"{_counted(len(inside), condition)} in the window"
    if inside:
        return f"{reason}; the earliest of them leaves it at {_iso(inside[0] + within)}"
    if kept:
        return f"{reason}; last at {_iso(kept[-1])}, left the window at {_iso(kept[-1] + within)}"
    return f"{reason}; none on record"


def _counted(count: int, condition: Performed) -> str:
    # The state stops counting where a count decides every condition on it, at least
    # where it decides this one: from there on the true count may be higher.
    more = " or more" if count and count >= condition.enough_to_decide else ""
    return f"{_times(count)}{more}"


def _date_terms(rule: RelativeDate | None) -> list[str]:
    if rule is None:
        return []
    terms = [] if rule.before is None else [f"before {_duration(rule.before)}"]
    return terms + ([] if rule.within is None else [f"within {_duration(rule.within)}"])


def _duration(seconds: float) -> str:
    # As people write them: 60d, not the shortest spelling 8w4d.
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit[0]}"
    return format_duration(seconds) if seconds else "0s"


def _test_text(test: Filter) -> str:
    return f"{test.op} {_json(test.value)}"


def _where_text(test: Filter) -> str:
    return f"{'.'.join(test.path)} {_test_text(test)}"


def _lookup(values: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    value: Any = values
    for name in path:
        if not isinstance(value, Mapping) or name not in value:
            return False, None
        value = value[name]
    return True, value


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _word(holds: bool) -> str:
    return "holds" if holds else "fails"


def _times(count: int) -> str:
    return f"{count} time{'' if count == 1 else 's'}"


def _iso(moment: float) -> str:
    try:
        return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):  # a trait may hold any number
        return f"{moment:g} (epoch seconds)"


def _ago(moment: float, now: float) -> str:
    span = abs(now - moment)
    unit, size = next(((u, size) for u, size in _UNITS if span >= size), _UNITS[-1])
    count = int(span // size)
    amount = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{amount} ago" if moment <= now else f"in {amount}"
