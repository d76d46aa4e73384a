"""Memberships kept up to date event by event, from aggregates instead of the history.

Per contact, a `SegmentState` holds only what the conditions need: for a count in a window,
the latest timestamps of the counted events, as many as decide the condition (`at_least: N`
needs N, `at_most: M` needs M + 1), shared by every condition counting the same events; for a
count over all history, a counter capped the same way; for a topic, whether its latest event
subscribed. An event touches only the aggregates of its own name, and only the segments that
depend on what it touched are evaluated again.

Time alone changes memberships too (a window passes, a date comes near enough): each segment's
next such moment is kept in the state, the fold sets a timer for `next_change_at` and calls
`tick`, which evaluates again the segments that are due.
"""

from __future__ import annotations

import hashlib
import heapq
from bisect import insort
from collections.abc import Iterable, Iterator, Sequence
from typing import assert_never

import msgspec

from mailpulse.audience.segments.conditions import (
    TOPIC_SUBSCRIBED,
    TOPIC_UNSUBSCRIBED,
    Aggregate,
    AllOf,
    AnyOf,
    Condition,
    InSegment,
    Not,
    Performed,
    Seen,
    Segment,
    Subscribed,
    TraitCondition,
    evaluation_order,
    in_window,
)
from mailpulse.audience.segments.evaluate import holds
from mailpulse.types import Contact, Event, EventType, SegmentState


class MembershipChange(msgspec.Struct, frozen=True):
    """A contact entered (or left) a segment at `at`: a `Segment Entered` / `Exited` event."""

    segment: str
    entered: bool
    at: float


class KeptHistory:
    """The history as the aggregates of a state remember it: a `History` for `holds`, which
    can also say what it counted, for explanations of a membership."""

    def __init__(self, state: SegmentState) -> None:
        self._state = state

    def performed(self, condition: Performed, now: float) -> bool:
        within = condition.within
        if within is None:
            count = self.count(condition.aggregate)
        else:
            kept = self.times(condition.aggregate)
            count = sum(1 for received_at in kept if in_window(received_at, within, now))
        return condition.count_holds(count)

    def subscribed(self, topic: str) -> bool:
        return bool(self.topic(topic))

    def member(self, segment: str) -> bool:
        return segment in self._state.members

    def times(self, aggregate: Aggregate) -> Sequence[float]:
        """When the latest events `aggregate` counts were received, ascending: as many as a
        condition in a window needs, older ones let go."""
        return self._state.recent.get(aggregate.key, ())

    def count(self, aggregate: Aggregate) -> int:
        """How many events `aggregate` counted over all history, capped where it decides."""
        return self._state.counts.get(aggregate.key, 0)

    def topic(self, topic: str) -> bool | None:
        """Whether the latest event on `topic` subscribed; None when none is on record."""
        return self._state.topics.get(topic)


def _leaves(condition: Condition) -> Iterator[Condition]:
    match condition:
        case AllOf(conditions=children) | AnyOf(conditions=children):
            for child in children:
                yield from _leaves(child)
        case Not(condition=child):
            yield from _leaves(child)
        case _:
            yield condition


def _changes_at(
    condition: Condition, contact: Contact, state: SegmentState, now: float
) -> float | None:
    """The first moment after `now` at which time alone may change a leaf of `condition`."""
    match condition:
        case TraitCondition() | Seen():
            return condition.changes_at(contact, now)
        case Performed(aggregate=aggregate, within=within) if within is not None:
            # The oldest counted event still in the window is the next to leave it.
            kept = state.recent.get(aggregate.key, ())
            return next((t + within for t in kept if in_window(t, within, now)), None)
        case Performed() | Subscribed() | InSegment():
            # A referred segment's own moments are its own; when it changes, this follows.
            return None
        case AllOf(conditions=children) | AnyOf(conditions=children):
            moments = (_changes_at(child, contact, state, now) for child in children)
            return min((moment for moment in moments if moment is not None), default=None)
        case Not(condition=child):
            return _changes_at(child, contact, state, now)
        case _:
            assert_never(condition)


def _may_change_traits(event: Event) -> bool:
    # As mailpulse.audience.profiles.apply_event: identify traits, or context.traits of others.
    return event.type == EventType.IDENTIFY or isinstance(event.context.get("traits"), dict)


class SegmentSet:
    """The segments of a project, indexed by what their conditions depend on."""

    def __init__(self, segments: Iterable[Segment]) -> None:
        self._segments: dict[str, Segment] = {}
        for segment in segments:
            if segment.id in self._segments:
                raise ValueError(f"segment {segment.id!r} is given twice")
            self._segments[segment.id] = segment
        # Each segment after those it refers to (`segment:`), so a pass sees them current.
        order = evaluation_order(self._segments)
        self._rank = {segment_id: rank for rank, segment_id in enumerate(order)}
        self._dependents: dict[str, set[str]] = {}
        self.fingerprint = hashlib.sha256(
            " ".join(f"{s.id}:{s.version}" for s in self._segments.values()).encode()
        ).hexdigest()[:16]
        # Aggregate key → how many latest timestamps (windowed) or how high a count
        # (all history) decide every condition on it.
        self._keep_recent: dict[str, int] = {}
        self._count_up_to: dict[str, int] = {}
        self._aggregates_by_event: dict[str, dict[str, Aggregate]] = {}
        self._segments_by_aggregate: dict[str, set[str]] = {}
        self._segments_by_topic: dict[str, set[str]] = {}
        self._segments_on_traits: set[str] = set()
        self._segments_on_seen: set[str] = set()
        for segment in self._segments.values():
            for leaf in _leaves(segment.condition):
                self._index(segment.id, leaf)

    def __len__(self) -> int:
        return len(self._segments)

    def __contains__(self, segment_id: object) -> bool:
        return segment_id in self._segments

    def _index(self, segment_id: str, leaf: Condition) -> None:
        match leaf:
            case TraitCondition():
                self._segments_on_traits.add(segment_id)
            case Seen():
                self._segments_on_seen.add(segment_id)
            case Performed(aggregate=aggregate):
                key = aggregate.key
                caps = self._count_up_to if leaf.within is None else self._keep_recent
                caps[key] = max(caps.get(key, 0), leaf.enough_to_decide)
                self._aggregates_by_event.setdefault(aggregate.event, {})[key] = aggregate
                self._segments_by_aggregate.setdefault(key, set()).add(segment_id)
            case Subscribed(topic=topic):
                self._segments_by_topic.setdefault(topic, set()).add(segment_id)
            case InSegment(segment=target):
                self._dependents.setdefault(target, set()).add(segment_id)

    def apply(
        self, state: SegmentState, contact: Contact, event: Event, now: float
    ) -> list[MembershipChange]:
        """Fold `event` into `state` and say whose membership changed. `contact` is the
        profile with `event` already applied; `now` is the fold's clock."""
        touched = self._record(state, event)
        if _may_change_traits(event):
            touched |= self._segments_on_traits
        touched |= self._segments_on_seen  # every event of the contact moves last_seen
        return self._evaluate(state, contact, touched, now)

    def tick(self, state: SegmentState, contact: Contact, now: float) -> list[MembershipChange]:
        """Memberships changed by time alone, up to `now` (call it at `next_change_at`)."""
        return self._evaluate(state, contact, set(), now)

    def next_change_at(self, state: SegmentState) -> float | None:
        """The earliest moment time alone may change a membership (a window passing, a
        relative date reached); None when none can. 0 for a state of another set: at once."""
        if state.evaluated_by != self.fingerprint:
            return 0.0
        return min(state.due.values(), default=None)

    # What a backfill (mailpulse.audience.segments.backfill) needs to compute the states this
    # set folds, from the whole history at once; copies, so the index stays this set's own.

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The segments, each after those it refers to (`segment:`)."""
        return tuple(sorted(self._segments.values(), key=lambda s: self._rank[s.id]))

    @property
    def aggregates(self) -> dict[str, Aggregate]:
        """Every aggregate a condition counts, by key."""
        return {
            key: agg for by_key in self._aggregates_by_event.values() for key, agg in by_key.items()
        }

    @property
    def recent_kept(self) -> dict[str, int]:
        """Aggregate key → how many of its latest timestamps a state keeps (counts in a window)."""
        return dict(self._keep_recent)

    @property
    def count_caps(self) -> dict[str, int]:
        """Aggregate key → where its count over all history stops (counts over all history)."""
        return dict(self._count_up_to)

    @property
    def topics(self) -> frozenset[str]:
        """The topics a `subscribed` condition asks about."""
        return frozenset(self._segments_by_topic)

    def _record(self, state: SegmentState, event: Event) -> set[str]:
        """Update the aggregates `event` counts for; the segments that depend on them."""
        touched: set[str] = set()
        if event.type != EventType.TRACK or event.event is None:
            return touched
        for key, aggregate in self._aggregates_by_event.get(event.event, {}).items():
            if not aggregate.matches(event):
                continue
            if key in self._keep_recent:
                kept = state.recent.setdefault(key, [])
                insort(kept, event.received_at)
                del kept[: -self._keep_recent[key]]
            if key in self._count_up_to:
                state.counts[key] = min(state.counts.get(key, 0) + 1, self._count_up_to[key])
            touched |= self._segments_by_aggregate[key]
        if event.event in (TOPIC_SUBSCRIBED, TOPIC_UNSUBSCRIBED):
            topic = event.properties.get("topic")
            if isinstance(topic, str) and topic in self._segments_by_topic:
                state.topics[topic] = event.event == TOPIC_SUBSCRIBED
                touched |= self._segments_by_topic[topic]
        return touched

    def _adopt(self, state: SegmentState) -> None:
        """Make a state from another set (or a new one) this set's: drop what no segment
        needs any more. What this set needs and the old one did not is complete only after
        a backfill from the history."""
        state.members = {s: at for s, at in state.members.items() if s in self._segments}
        state.due = {}
        state.recent = {
            key: kept[-self._keep_recent[key] :]
            for key, kept in state.recent.items()
            if key in self._keep_recent
        }
        state.counts = {
            key: min(count, self._count_up_to[key])
            for key, count in state.counts.items()
            if key in self._count_up_to
        }
        state.topics = {t: on for t, on in state.topics.items() if t in self._segments_by_topic}
        state.evaluated_by = self.fingerprint

    def _evaluate(
        self, state: SegmentState, contact: Contact, touched: set[str], now: float
    ) -> list[MembershipChange]:
        if state.evaluated_by != self.fingerprint:
            self._adopt(state)
            touched = set(self._segments)
        else:
            touched |= {segment_id for segment_id, at in state.due.items() if at <= now}
        history = KeptHistory(state)
        changes: list[MembershipChange] = []
        # In rank order: a segment that changes brings in those that refer to it, all ranked
        # after it, so each is evaluated once, on current memberships.
        pending = [(self._rank[segment_id], segment_id) for segment_id in touched]
        heapq.heapify(pending)
        queued = set(touched)
        while pending:
            _, segment_id = heapq.heappop(pending)
            condition = self._segments[segment_id].condition
            inside = holds(condition, contact, history, now)
            if inside != (segment_id in state.members):
                if inside:
                    state.members[segment_id] = now
                else:
                    del state.members[segment_id]
                changes.append(MembershipChange(segment=segment_id, entered=inside, at=now))
                for dependent in self._dependents.get(segment_id, ()):
                    if dependent not in queued:
                        queued.add(dependent)
                        heapq.heappush(pending, (self._rank[dependent], dependent))
            due = _changes_at(condition, contact, state, now)
            if due is None:
                state.due.pop(segment_id, None)
            else:
                state.due[segment_id] = due
        return changes
