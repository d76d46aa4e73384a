"""Compiled segment conditions and the time rules they share.

A condition is a tree: `AllOf`, `AnyOf` and `Not` over leaves. Trait and `Seen` leaves depend on
the contact alone and answer for themselves; `Performed` and `Subscribed` leaves depend on the
contact's history, which the full recomputation reads whole and the incremental evaluation
keeps as aggregates.

Time rules, one for every condition so a timer set for a change fires exactly at it:
- an event counts in a window `within: W` at `now` while `now < received_at + W` (an event in
  the log has happened, even if its clock ran ahead of ours);
- a date `within: D` holds while `date <= now < date + D` (a future date has not happened yet);
- a date `before: D` holds once `now >= date + D`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import msgspec

from mailpulse.events.filters import EventMatch, Filter, matches
from mailpulse.types import Contact

TOPIC_SUBSCRIBED = "Topic Subscribed"
TOPIC_UNSUBSCRIBED = "Topic Unsubscribed"


def in_window(received_at: float, within: float, now: float) -> bool:
    return now < received_at + within


def epoch(value: Any) -> float | None:
    """Epoch seconds of a date a trait holds: a number, or ISO-8601 text (UTC unless it says
    otherwise); None for anything else, since traits come from outside and may hold anything."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class RelativeDate(msgspec.Struct, frozen=True, omit_defaults=True):
    """`before` / `within` a duration of now, for a date."""

    before: float | None = None
    within: float | None = None

    def holds(self, date: float, now: float) -> bool:
        if self.before is not None and not now >= date + self.before:
            return False
        return self.within is None or date <= now < date + self.within

    def changes_at(self, date: float, now: float) -> float | None:
        """The first moment after `now` at which `holds` may change for this date."""
        edges = []
        if self.before is not None:
            edges.append(date + self.before)
        if self.within is not None:
            edges += [date, date + self.within]
        return min((edge for edge in edges if edge > now), default=None)


class TraitCondition(msgspec.Struct, frozen=True, tag="trait", omit_defaults=True):
    """Filters on the trait at `path` (compiled with that path, matched against the traits)
    and, optionally, a relative date the trait must hold."""

    path: tuple[str, ...]
    filters: tuple[Filter, ...] = ()
    date: RelativeDate | None = None

    def _date(self, traits: Mapping[str, Any]) -> float | None:
        value: Any = traits
        for name in self.path:
            if not isinstance(value, Mapping) or name not in value:
                return None
            value = value[name]
        return epoch(value)

    def holds(self, contact: Contact, now: float) -> bool:
        if not matches(self.filters, contact.traits):
            return False
        if self.date is None:
            return True
        date = self._date(contact.traits)
        return date is not None and self.date.holds(date, now)

    def changes_at(self, contact: Contact, now: float) -> float | None:
        date = None if self.date is None else self._date(contact.traits)
        return None if self.date is None or date is None else self.date.changes_at(date, now)


class Seen(msgspec.Struct, frozen=True, tag="seen"):
    """A relative date on when the contact was first or last seen (`which`)."""

    which: str  # "first" or "last"
    date: RelativeDate

    def _seen(self, contact: Contact) -> float | None:
        seen = contact.first_seen if self.which == "first" else contact.last_seen
        return seen or None  # 0: a contact made without events (an import) was never seen

    def holds(self, contact: Contact, now: float) -> bool:
        seen = self._seen(contact)
        return seen is not None and self.date.holds(seen, now)

    def changes_at(self, contact: Contact, now: float) -> float | None:
        seen = self._seen(contact)
        return None if seen is None else self.date.changes_at(seen, now)


class Aggregate(EventMatch, frozen=True, dict=True, omit_defaults=True):
    """What a behaviour condition counts: track events named `event` whose properties match
    `where`. Conditions that count the same events share one aggregate, found by `key`."""

    @cached_property
    def key(self) -> str:
        # Short, because a contact's state stores it once per aggregate; stable across runs.
        return hashlib.blake2b(msgspec.json.encode(self), digest_size=8).hexdigest()


class Performed(msgspec.Struct, frozen=True, tag="performed", omit_defaults=True):
    """The contact did `aggregate` at least `at_least` and at most `at_most` times, in the
    last `within` seconds (None: in all its history)."""

    aggregate: Aggregate
    within: float | None = None
    at_least: int = 1
    at_most: int | None = None

    @property
    def enough_to_decide(self) -> int:
        """How many occurrences decide the condition: counting past this changes nothing."""
        return max(self.at_least, 0 if self.at_most is None else self.at_most + 1)

    def count_holds(self, count: int) -> bool:
        return self.at_least <= count and (self.at_most is None or count <= self.at_most)


class Subscribed(msgspec.Struct, frozen=True, tag="subscribed"):
    """The contact's latest `Topic Subscribed` / `Topic Unsubscribed` for `topic` subscribed."""

    topic: str


class InSegment(msgspec.Struct, frozen=True, tag="segment"):
    """The contact is a member of another segment (or, in a journey's branch, of a project
    segment): evaluated after that one, whenever it changes."""

    segment: str


class AllOf(msgspec.Struct, frozen=True, tag="all"):
    conditions: tuple[Condition, ...]


class AnyOf(msgspec.Struct, frozen=True, tag="any"):
    conditions: tuple[Condition, ...]


class Not(msgspec.Struct, frozen=True, tag="not"):
    condition: Condition


Condition = TraitCondition | Seen | Performed | Subscribed | InSegment | AllOf | AnyOf | Not


class Segment(msgspec.Struct, frozen=True):
    """One named audience. `version` is a hash of its compiled condition: the same conditions
    written another way (or with another name) keep it, a change of meaning does not."""

    id: str
    name: str
    condition: Condition
    version: str
    description: str = ""


def referenced(condition: Condition) -> set[str]:
    """The segments a condition refers to with `segment:`."""
    match condition:
        case InSegment(segment=segment):
            return {segment}
        case AllOf(conditions=children) | AnyOf(conditions=children):
            return set().union(*(referenced(child) for child in children))
        case Not(condition=child):
            return referenced(child)
        case _:
            return set()


class BadReference(ValueError):
    """A `segment:` condition that names no segment, or closes a cycle."""

    def __init__(self, segment: str, target: str, reason: str) -> None:
        super().__init__(reason)
        self.segment, self.target = segment, target


def evaluation_order(segments: Mapping[str, Segment]) -> list[str]:
    """Segment ids, each after the segments it refers to. Raises `BadReference` for a
    reference to no segment or a cycle, naming the segment it is in (`segment`) and the
    segment referred to (`target`)."""
    order: list[str] = []
    state: dict[str, str] = {}  # id → "visiting" or "done"

    def visit(segment_id: str, path: list[str]) -> None:
        if state.get(segment_id) == "done":
            return
        if state.get(segment_id) == "visiting":
            cycle = [*path[path.index(segment_id) :], segment_id]
            raise BadReference(
                path[-1],
                segment_id,
                f"{' → '.join(cycle)}: segments refer to each other in a cycle; break it",
            )
        state[segment_id] = "visiting"
        for target in sorted(referenced(segments[segment_id].condition)):
            if target not in segments:
                known = ", ".join(sorted(segments)) or "none"
                raise BadReference(
                    segment_id, target, f"no segment named {target!r} (segments: {known})"
                )
            visit(target, [*path, segment_id])
        state[segment_id] = "done"
        order.append(segment_id)

    for segment_id in segments:
        visit(segment_id, [])
    return order


def condition_version(condition: Condition) -> str:
    return hashlib.sha256(msgspec.json.encode(condition)).hexdigest()[:12]
