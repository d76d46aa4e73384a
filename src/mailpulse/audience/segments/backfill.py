"""Backfill: every contact's segment state computed at once from the whole history, for a new
or changed segment set, so that the live fold goes on from it event by event.

The states are those incremental evaluation reaches (`SegmentSet.apply` over every event in
log order, then `tick` at `now`): the same memberships, aggregates, due moments and
`evaluated_by`. One thing differs: a member's entered-at is `now`, the moment the backfill
made it a member, because a segment that did not exist was entered by nobody earlier (and a
changed one means something else than when its members entered it).

Python work per event is far too slow for millions of events, so the history is columnar
(`History`: numpy arrays of contact, event name, received_at and, for the properties `where`
filters read, codes into the distinct values) and all that follows is vectorised over events
or over contacts. What reads an arbitrary value runs once per distinct value, with the code
the live evaluation runs (`matches` for property and trait filters, `epoch` for trait dates);
windows, counts, dates and all/any/not are computed over columns with the float arithmetic of
conditions.py, so that a due moment is the very float the live fold would set a timer for.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, assert_never

import numpy as np
import numpy.typing as npt

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
    RelativeDate,
    Seen,
    Subscribed,
    TraitCondition,
    epoch,
)
from mailpulse.audience.segments.incremental import SegmentSet
from mailpulse.events.filters import Filter, matches
from mailpulse.types import Contact, Event, EventType, SegmentState

Path = tuple[str, ...]
Ints = npt.NDArray[np.int32]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

_TOPIC: Path = ("topic",)


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()  # the value at a path that leads nowhere


# -- the columnar history ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PropertyColumn:
    """One property path over the events whose names need it, as codes of distinct values."""

    codes: Ints  # per event: an index into `values`, -1 for events that do not need the path
    values: Sequence[Any]  # per code: the value at the path, `ABSENT` for none


@dataclass(frozen=True, eq=False)
class History:
    """The track events a segment set counts, in log order, one array per field."""

    contact: Ints  # the event's contact: an index into the contacts
    name: Ints  # the event's name: an index into `wanted`
    received_at: Floats
    # Event name → the property paths recorded for its events: what the history was built
    # for, and all it can tell.
    wanted: Mapping[str, tuple[Path, ...]]
    properties: Mapping[Path, PropertyColumn]

    def __len__(self) -> int:
        return len(self.contact)

    def code(self, name: str) -> int:
        return list(self.wanted).index(name)


def wanted_properties(segments: SegmentSet) -> dict[str, tuple[Path, ...]]:
    """The event names `segments` counts, each with the property paths its filters read."""
    wanted: dict[str, set[Path]] = {}
    for aggregate in segments.aggregates.values():
        wanted.setdefault(aggregate.event, set()).update(f.path for f in aggregate.where)
    if segments.topics:
        for name in (TOPIC_SUBSCRIBED, TOPIC_UNSUBSCRIBED):
            wanted.setdefault(name, set()).add(_TOPIC)
    return {name: tuple(sorted(paths)) for name, paths in wanted.items()}


def _lookup(mapping: Mapping[str, Any], path: Path) -> Any:
    # As filters and trait dates read a path: through mappings only.
    value: Any = mapping
    for name in path:
        if not isinstance(value, Mapping) or name not in value:
            return ABSENT
        value = value[name]
    return value


def _values_at(mappings: Iterable[Mapping[str, Any]], path: Path) -> list[Any]:
    """The value at `path` of each of `mappings` (properties, traits: dicts by their types)."""
    if len(path) == 1:  # the usual path, read with no Python call per value
        (name,) = path
        return [mapping.get(name, ABSENT) for mapping in mappings]
    return [_lookup(mapping, path) for mapping in mappings]


def _holding(path: Path, value: Any) -> Mapping[str, Any]:
    """A mapping with `value` at `path`, for a filter on that path to read."""
    if value is ABSENT:
        return {}
    for name in reversed(path):
        value = {name: value}
    return value


class _Alone:
    """An unhashable value (a list, a mapping), as a key equal to nothing else."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Distinct:
    """Codes for values, one per distinct value: equal and of the same type, since a filter
    tells 1 from 1.0 and from True. An unhashable value gets a code of its own: correct, only
    not shared."""

    def __init__(self) -> None:
        self._codes: dict[tuple[type, Any], int] = {}  # in the order of the codes

    def codes(self, values: list[Any]) -> list[int]:
        codes = self._codes
        try:
            return [codes.setdefault((type(v), v), len(codes)) for v in values]
        except TypeError:  # an unhashable value: again, each value asked whether it is one
            return [codes.setdefault(_key(v), len(codes)) for v in values]

    @property
    def values(self) -> list[Any]:
        return [v.value if type(v) is _Alone else v for _, v in self._codes]


def _key(value: Any) -> tuple[type, Any]:
    try:
        hash(value)
    except TypeError:
        return type(value), _Alone(value)
    return type(value), value


class _ColumnBuilder:
    """The codes of one property path, for the events of the names that need it."""

    def __init__(self, path: Path, needing: list[int]) -> None:
        self.path = path
        self.needing = needing  # name codes
        self.distinct = _Distinct()
        self.codes: list[Ints] = []  # per chunk, aligned with its events kept

    def add(self, events: list[Event], kept: npt.NDArray[np.intp], name: Ints) -> None:
        codes = np.full(len(kept), -1, dtype=np.int32)
        rows = np.flatnonzero(np.isin(name, self.needing))
        properties = [events[row].properties for row in kept[rows].tolist()]
        codes[rows] = self.distinct.codes(_values_at(properties, self.path))
        self.codes.append(codes)


class HistoryBuilder:
    """The columnar history of a list of contacts, built from their events in log order, a
    page at a time (`add`), then `build`."""

    # Events are taken a chunk at a time, each field read for the whole chunk by one
    # comprehension: a third faster than one event at a time through all fields.
    CHUNK = 65536

    def __init__(self, segments: SegmentSet, contact_ids: Iterable[str]) -> None:
        self._index: dict[str, int] = {}
        for contact_id in contact_ids:
            if contact_id in self._index:
                raise ValueError(f"contact {contact_id!r} is given twice")
            self._index[contact_id] = len(self._index)
        self._wanted = wanted_properties(segments)
        self._codes = {name: code for code, name in enumerate(self._wanted)}
        paths = sorted({path for paths in self._wanted.values() for path in paths})
        self._columns = [
            _ColumnBuilder(path, [self._codes[n] for n, ps in self._wanted.items() if path in ps])
            for path in paths
        ]
        self._contact: list[Ints] = []
        self._name: list[Ints] = []
        self._received_at: list[Floats] = []

    def add(self, events: list[Event]) -> None:
        index, codes = self._index, self._codes
        contact = np.array([index.get(e.contact_key, -1) for e in events], dtype=np.int32)
        unknown = np.flatnonzero(contact < 0)
        if len(unknown):
            stranger = events[unknown[0]]
            raise ValueError(
                f"event {stranger.message_id!r} is of contact {stranger.contact_key!r}, which "
                "is not among the contacts: give the history of these contacts only, keyed by "
                "their ids"
            )
        # Only the track events some segment counts: no other event moves an aggregate.
        name = np.array(
            [codes.get(e.event, -1) if e.type == EventType.TRACK else -1 for e in events],
            dtype=np.int32,
        )
        kept = np.flatnonzero(name >= 0)
        self._contact.append(contact[kept])
        self._name.append(name[kept])
        self._received_at.append(np.array([e.received_at for e in events], dtype=np.float64)[kept])
        for column in self._columns:
            column.add(events, kept, name[kept])

    def feed(self, events: Iterable[Event]) -> None:
        stream = iter(events)
        while chunk := list(islice(stream, self.CHUNK)):
            self.add(chunk)

    def build(self) -> History:
        return History(
            contact=_joined(self._contact, np.int32),
            name=_joined(self._name, np.int32),
            received_at=_joined(self._received_at, np.float64),
            wanted=self._wanted,
            properties={
                column.path: PropertyColumn(_joined(column.codes, np.int32), column.distinct.values)
                for column in self._columns
            },
        )


def _joined(chunks: list[Any], dtype: type) -> Any:
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=dtype)


def build_history(
    segments: SegmentSet, contact_ids: Iterable[str], events: Iterable[Event]
) -> History:
    """The columnar history of `events` (log order, streamed once) for `segments`, for the
    contacts `contact_ids` in that order. An event belongs to the contact whose id is its
    `contact_key` (resolve merged identities first); one of another contact is a ValueError.
    Only the track events some segment counts are kept: no other event moves an aggregate."""
    builder = HistoryBuilder(segments, contact_ids)
    builder.feed(events)
    return builder.build()


# -- aggregates, per contact ---------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Counted:
    """The events one aggregate counts, per contact."""

    count: npt.NDArray[np.intp]  # over all history, not capped
    # The latest `keep` of each contact, by contact, then ascending received_at.
    kept_contact: Ints
    kept_time: Floats


def _per_value(test: Callable[[Any], bool], column: PropertyColumn) -> Bools:
    return np.fromiter(map(test, column.values), bool, len(column.values))


def _passing(where: Filter, column: PropertyColumn) -> Bools:
    """Per value of `column`, whether `where` (on its path) holds for it."""
    return _per_value(lambda value: matches((where,), _holding(where.path, value)), column)


def _matching(history: History, aggregate: Aggregate) -> npt.NDArray[np.intp]:
    """Positions of the events `aggregate` counts."""
    events = np.flatnonzero(history.name == history.code(aggregate.event))
    for where in aggregate.where:
        column = history.properties[where.path]
        events = events[_passing(where, column)[column.codes[events]]]
    return events


def _by_contact_then_time(contact: Ints, received_at: Floats) -> npt.NDArray[np.intp]:
    """The order of events by contact, then received_at."""
    by_time = np.argsort(received_at, kind="stable")
    # One sort of (contact, rank in time) packed in an int64, not an argsort or lexsort:
    # sorting plain integers is several times faster. Ranks fit 32 bits, contacts 31.
    packed = (contact[by_time].astype(np.int64) << 32) | np.arange(len(contact), dtype=np.int64)
    packed.sort()
    return by_time[packed & 0xFFFFFFFF]


def _count(history: History, aggregate: Aggregate, keep: int, contacts: int) -> _Counted:
    events = _matching(history, aggregate)
    contact, received_at = history.contact[events], history.received_at[events]
    count = np.bincount(contact, minlength=contacts)
    if not keep:
        return _Counted(count, contact[:0], received_at[:0])
    order = _by_contact_then_time(contact, received_at)
    contact, received_at = contact[order], received_at[order]
    # How many later events of the same contact follow each: 0 for its latest.
    later = np.cumsum(count)[contact] - np.arange(1, len(contact) + 1)
    latest = later < keep
    return _Counted(count, contact[latest], received_at[latest])


def _subscriptions(history: History, topic: str, contacts: int) -> npt.NDArray[np.int8]:
    """Per contact, 1 when its latest event on `topic` (in log order) subscribed, 0 when it
    unsubscribed, -1 when it has none."""
    column = history.properties[_TOPIC]
    # As the live fold reads it: a text naming the topic.
    about = _per_value(lambda value: isinstance(value, str) and value == topic, column)
    subscribed, unsubscribed = history.code(TOPIC_SUBSCRIBED), history.code(TOPIC_UNSUBSCRIBED)
    events = np.flatnonzero(np.isin(history.name, (subscribed, unsubscribed)))
    events = events[about[column.codes[events]]][::-1]
    # The first of each contact, latest first, is its latest.
    owners, first = np.unique(history.contact[events], return_index=True)
    latest = np.full(contacts, -1, dtype=np.int8)
    latest[owners] = history.name[events[first]] == subscribed
    return latest


# -- conditions, over every contact at once ------------------------------------------------

# A condition over the contacts: who it holds for, and per contact the next moment time alone
# may change it (NaN: none; None: none for anyone).
Evaluated = tuple[Bools, Floats | None]


def _earliest(moments: Iterable[Floats | None]) -> Floats | None:
    known = [m for m in moments if m is not None]
    return np.fmin.reduce(known) if known else None


def _first_after(edges: list[Floats], now: float) -> Floats:
    return np.fmin.reduce([np.where(edge > now, edge, np.nan) for edge in edges])


def _relative_date(rule: RelativeDate, date: Floats, now: float) -> Evaluated:
    """As `RelativeDate.holds` and `changes_at`, for dates where NaN is no date."""
    inside = ~np.isnan(date)
    edges = []
    if rule.before is not None:
        edges.append(date + rule.before)
        inside &= now >= edges[-1]
    if rule.within is not None:
        end = date + rule.within
        edges += [date, end]
        inside &= (date <= now) & (now < end)
    return inside, _first_after(edges, now) if edges else None


def _count_holds(condition: Performed, count: npt.NDArray[np.intp]) -> Bools:
    inside = count >= condition.at_least
    return inside if condition.at_most is None else inside & (count <= condition.at_most)


class _Evaluation:
    """Conditions evaluated for every contact at `now`, from the aggregates of the history."""

    def __init__(
        self,
        segments: SegmentSet,
        contacts: Sequence[Contact],
        counted: Mapping[str, _Counted],
        subscriptions: Mapping[str, npt.NDArray[np.int8]],
        now: float,
    ) -> None:
        self._contacts = contacts
        self._counted = counted
        self._subscriptions = subscriptions
        self._caps = segments.count_caps
        self._now = now
        self._seen: dict[str, Floats] = {}
        self._traits: dict[Path, PropertyColumn] = {}  # per contact, as events' properties
        self._dates: dict[Path, Floats] = {}
        # Memberships already evaluated, for `segment:` (segments come in evaluation order).
        self.members: dict[str, Bools] = {}

    def condition(self, condition: Condition) -> Evaluated:
        match condition:
            case TraitCondition():
                return self._trait(condition)
            case Seen(which=which, date=date):
                return _relative_date(date, self._seen_at(which), self._now)
            case Performed(within=None):
                counted = self._counted[condition.aggregate.key]
                cap = self._caps[condition.aggregate.key]
                return _count_holds(condition, np.minimum(counted.count, cap)), None
            case Performed():
                return self._performed_within(condition)
            case Subscribed(topic=topic):
                return self._subscriptions[topic] == 1, None
            case InSegment(segment=segment):
                return self.members[segment], None
            case AllOf(conditions=children):
                evaluated = [self.condition(child) for child in children]
                inside = np.logical_and.reduce([inside for inside, _ in evaluated])
                return inside, _earliest(due for _, due in evaluated)
            case AnyOf(conditions=children):
                evaluated = [self.condition(child) for child in children]
                inside = np.logical_or.reduce([inside for inside, _ in evaluated])
                return inside, _earliest(due for _, due in evaluated)
            case Not(condition=child):
                inside, due = self.condition(child)
                return ~inside, due
            case _:
                assert_never(condition)

    def _performed_within(self, condition: Performed) -> Evaluated:
        assert condition.within is not None
        counted = self._counted[condition.aggregate.key]
        ends = counted.kept_time + condition.within
        window = self._now < ends  # as `in_window`: a suffix of each contact's kept times
        contacts = len(self._contacts)
        count = np.bincount(counted.kept_contact[window], minlength=contacts)
        # The oldest kept event still in the window is the next to leave it.
        in_window = np.flatnonzero(window)
        owner = counted.kept_contact[in_window]
        oldest = np.ones(len(owner), dtype=bool)
        oldest[1:] = owner[1:] != owner[:-1]
        due = np.full(contacts, np.nan)
        due[owner[oldest]] = ends[in_window[oldest]]
        return _count_holds(condition, count), due

    def _seen_at(self, which: str) -> Floats:
        if which not in self._seen:
            seen = np.fromiter(
                (c.first_seen if which == "first" else c.last_seen for c in self._contacts),
                np.float64,
                len(self._contacts),
            )
            # 0: a contact made without events (an import) was never seen.
            self._seen[which] = np.where(seen == 0, np.nan, seen)
        return self._seen[which]

    def _trait(self, condition: TraitCondition) -> Evaluated:
        """As `TraitCondition.holds` and `changes_at`: filters, once per distinct value of
        their path; the date, over all contacts."""
        inside = np.ones(len(self._contacts), dtype=bool)
        for where in condition.filters:
            column = self._trait_column(where.path)
            inside &= _passing(where, column)[column.codes]
        if condition.date is None:
            return inside, None
        held, due = _relative_date(condition.date, self._trait_dates(condition.path), self._now)
        return inside & held, due

    def _trait_column(self, path: Path) -> PropertyColumn:
        if path not in self._traits:
            distinct = _Distinct()
            codes = distinct.codes(_values_at([c.traits for c in self._contacts], path))
            self._traits[path] = PropertyColumn(np.array(codes, dtype=np.int32), distinct.values)
        return self._traits[path]

    def _trait_dates(self, path: Path) -> Floats:
        """Per contact, the date the trait at `path` holds (as `epoch` reads it), NaN for none."""
        if path not in self._dates:
            column = self._trait_column(path)
            dates = [epoch(value) for value in column.values]
            at = np.array([np.nan if date is None else date for date in dates], dtype=np.float64)
            self._dates[path] = at[column.codes]
        return self._dates[path]


# -- the backfill ----------------------------------------------------------------------------


class Backfill:
    """The segment states of a list of contacts at `now`, columnar: `states` makes them."""

    def __init__(
        self,
        segments: SegmentSet,
        contacts: int,
        now: float,
        evaluated: Mapping[str, Evaluated],
        counted: Mapping[str, _Counted],
        subscriptions: Mapping[str, npt.NDArray[np.int8]],
    ) -> None:
        self.now = now
        self.fingerprint = segments.fingerprint
        self._contacts = contacts
        self._evaluated = evaluated
        self._counted = counted
        self._subscriptions = subscriptions
        self._kept = segments.recent_kept
        self._caps = segments.count_caps

    def members(self, segment_id: str) -> npt.NDArray[np.intp]:
        """The positions, among the contacts, of the members of `segment_id`."""
        return np.flatnonzero(self._evaluated[segment_id][0])

    def states(self) -> list[SegmentState]:
        """Each contact's `SegmentState`, in the order of the contacts (members entered at
        `now`)."""
        with _collector_paused():
            return self._states()

    def _states(self) -> list[SegmentState]:
        states = [SegmentState(evaluated_by=self.fingerprint) for _ in range(self._contacts)]
        for segment_id, (inside, due) in self._evaluated.items():
            for index in np.flatnonzero(inside).tolist():
                states[index].members[segment_id] = self.now
            if due is not None:
                timed = np.flatnonzero(~np.isnan(due))
                for index, at in zip(timed.tolist(), due[timed].tolist(), strict=True):
                    states[index].due[segment_id] = at
        for key, counted in self._counted.items():
            if key in self._kept:
                _fill_recent(states, key, counted)
            if key in self._caps:
                counting = np.flatnonzero(counted.count)
                capped = np.minimum(counted.count[counting], self._caps[key])
                for index, count in zip(counting.tolist(), capped.tolist(), strict=True):
                    states[index].counts[key] = count
        for topic, latest in self._subscriptions.items():
            known = np.flatnonzero(latest >= 0)
            for index, subscribed in zip(known.tolist(), latest[known].tolist(), strict=True):
                states[index].topics[topic] = bool(subscribed)
        return states


def _fill_recent(states: list[SegmentState], key: str, counted: _Counted) -> None:
    owner, times = counted.kept_contact, counted.kept_time.tolist()
    # Where each contact's run of kept times starts, and after the last, where it ends.
    bounds = np.flatnonzero(np.diff(owner, prepend=-1, append=-1))
    starts, ends = bounds[:-1], bounds[1:]
    for index, start, end in zip(
        owner[starts].tolist(), starts.tolist(), ends.tolist(), strict=True
    ):
        states[index].recent[key] = times[start:end]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Millions of new objects that all stay alive set off the cyclic garbage collector again
    and again, each time going over all of them: it made the states three times slower."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def backfill(
    segments: SegmentSet, contacts: Sequence[Contact], history: History, now: float
) -> Backfill:
    """The segment states of `contacts` at `now`, from `history` (built for `segments` and
    these contacts by `build_history`, or columns of the same meaning). Members entered at
    `now`."""
    with _collector_paused():
        return _backfill(segments, contacts, history, now)


def _backfill(
    segments: SegmentSet, contacts: Sequence[Contact], history: History, now: float
) -> Backfill:
    _check(segments, len(contacts), history)
    kept = segments.recent_kept
    counted = {
        key: _count(history, aggregate, kept.get(key, 0), len(contacts))
        for key, aggregate in segments.aggregates.items()
    }
    subscriptions = {
        topic: _subscriptions(history, topic, len(contacts)) for topic in segments.topics
    }
    evaluation = _Evaluation(segments, contacts, counted, subscriptions, now)
    evaluated: dict[str, Evaluated] = {}
    for segment in segments.segments:
        evaluated[segment.id] = evaluation.condition(segment.condition)
        evaluation.members[segment.id] = evaluated[segment.id][0]
    return Backfill(segments, len(contacts), now, evaluated, counted, subscriptions)


def _check(segments: SegmentSet, contacts: int, history: History) -> None:
    for name, paths in wanted_properties(segments).items():
        if name not in history.wanted or not set(paths) <= set(history.wanted[name]):
            raise ValueError(
                f"the history does not hold the {name!r} events these segments count, with "
                f"properties {[list(p) for p in paths]}: build it for this segment set"
            )
    if len(history) and not 0 <= history.contact.min() <= history.contact.max() < contacts:
        raise ValueError(f"the history names contacts outside the {contacts} given")
