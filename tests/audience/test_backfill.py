"""Backfill: the states computed at once from the whole history are those the live fold reaches
event by event (but for entered-at, which is the backfill's `now`), and their memberships
those of the full recomputation."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpulse.audience import apply_event
from mailpulse.audience.segments import Segment, SegmentSet, SegmentState, full_membership
from mailpulse.audience.segments import backfill as backfill_module
from mailpulse.audience.segments.backfill import (
    History,
    PropertyColumn,
    backfill,
    build_history,
)
from mailpulse.audience.segments.schema import segment_from_data
from mailpulse.types import Contact, Event
from tests.audience.test_segment_evaluation import (
    DAY,
    HOUR,
    MINUTE,
    T0,
    identify,
    iso,
    lifecycle,
    segment,
    track,
)
from tests.audience.test_segment_properties import _event, events, gaps, lags, segment_sets


def _owned(event: Event, contact_id: str) -> Event:
    """`event` as one of `contact_id`'s (the helpers make them all the contact "u"'s)."""
    return msgspec.structs.replace(
        event,
        contact_key=contact_id,
        user_id=None if event.user_id is None else contact_id,
    )


class Replay:
    """Contacts and the log of their events, folded live as the fold does (the profile, then
    `SegmentSet.apply`); `backfill` computes the states at once from the same log and checks
    them against the live ones and the full recomputation."""

    def __init__(self, *segments: Segment, contacts: tuple[str, ...] = ("a",)) -> None:
        self.segments = SegmentSet(segments)
        self.contacts = {contact_id: Contact(id=contact_id) for contact_id in contacts}
        self.states = {contact_id: SegmentState() for contact_id in contacts}
        self.log: list[Event] = []
        self.now = T0

    def send(self, contact_id: str, event: Event, now: float | None = None) -> None:
        event = _owned(event, contact_id)
        self.now = max(self.now, event.received_at if now is None else now)
        contact = self.contacts[contact_id]
        if event.user_id is not None or event.anonymous_id is not None:
            apply_event(contact, event)
        self.log.append(event)
        self.segments.apply(self.states[contact_id], contact, event, self.now)

    def backfill(self, now: float) -> dict[str, SegmentState]:
        """The backfilled states at `now`, by contact id, once checked."""
        contacts = list(self.contacts.values())
        history = build_history(self.segments, self.contacts, self.log)
        states = backfill(self.segments, contacts, history, now).states()
        for contact, state in zip(contacts, states, strict=True):
            live = self.states[contact.id]
            self.segments.tick(live, contact, now)
            assert_same(state, live)
            assert set(state.members.values()) <= {now}
            own = [event for event in self.log if event.contact_key == contact.id]
            by_id = {s.id: s for s in self.segments.segments}
            assert set(state.members) == {
                s.id for s in by_id.values() if full_membership(s, contact, own, now, by_id)
            }
        return {contact.id: state for contact, state in zip(contacts, states, strict=True)}


def assert_same(backfilled: SegmentState, live: SegmentState) -> None:
    assert backfilled.members.keys() == live.members.keys()
    assert backfilled.due == live.due
    assert backfilled.recent == live.recent
    assert backfilled.counts == live.counts
    assert backfilled.topics == live.topics
    assert backfilled.evaluated_by == live.evaluated_by


# Each step: whose event, how long after the previous step, how late it is received, what.
steps = st.lists(st.tuples(st.integers(0, 2), gaps, lags, events), max_size=40)


@settings(max_examples=1000, deadline=None)
@given(definitions=segment_sets(), steps=steps, last_gap=gaps)
def test_backfill_equals_the_live_fold_and_the_full_recomputation(
    definitions: list[dict[str, Any]],
    steps: list[tuple[int, float, float, tuple[Any, ...]]],
    last_gap: float,
) -> None:
    segments = [
        segment_from_data(f"s{index}", {"conditions": condition})
        for index, condition in enumerate(definitions)
    ]
    replay = Replay(*segments, contacts=("a", "b", "c"))
    for who, gap, lag, spec in steps:
        at = replay.now + gap
        replay.send("abc"[who], _event(spec, at - lag), now=at)
    replay.backfill(replay.now + last_gap)


def test_a_window_keeps_the_latest_that_decide_and_is_due_when_the_oldest_leaves() -> None:
    replay = Replay(
        segment("carting", "{performed: Product Added, at_least: 2, within: 1h}"),
        segment("calm", "{performed: Product Added, at_most: 2, within: 1d}"),
        contacts=("a", "b"),
    )
    for minute in (0, 10, 20, 30):
        replay.send("a", track("Product Added", T0 + minute * MINUTE))
    replay.send("b", track("Product Added", T0))
    # Received earlier than the others, folded last: it counts by when it was received.
    replay.send("a", track("Product Added", T0 - DAY), now=T0 + 30 * MINUTE)
    states = replay.backfill(T0 + 40 * MINUTE)
    a, b = states["a"], states["b"]
    assert a.members.keys() == {"carting"}
    assert list(a.recent.values()) == [[T0 + 10 * MINUTE, T0 + 20 * MINUTE, T0 + 30 * MINUTE]]
    assert a.due == {"carting": T0 + 70 * MINUTE, "calm": T0 + 10 * MINUTE + DAY}
    assert b.members == {"calm": T0 + 40 * MINUTE}  # entered when backfilled
    assert list(b.recent.values()) == [[T0]]


def test_counts_over_all_history_stop_where_they_decide_and_filters_pick_what_counts() -> None:
    replay = Replay(
        segment("big", "{performed: Order Completed, where: {total: {gte: 100}}, at_least: 2}"),
        segment("never", "{not_performed: Order Completed}"),
        contacts=("a", "b", "c"),
    )
    for total in (50, 150, "200", 200, 500, 500):
        replay.send("a", track("Order Completed", T0, total=total))
    replay.send("b", track("Order Completed", T0, total=150))
    states = replay.backfill(T0 + DAY)
    assert states["a"].members.keys() == {"big"}
    assert sorted(states["a"].counts.values()) == [1, 2]  # both capped: at 2 and at 1
    assert states["b"].members.keys() == set()
    assert states["c"].members.keys() == {"never"}
    assert states["c"].counts == {}


def test_the_latest_topic_event_in_log_order_decides() -> None:
    replay = Replay(
        segment("news", "{subscribed: newsletter}"),
        segment("no_news", "{not: {subscribed: newsletter}}"),
        contacts=("a", "b", "c"),
    )
    replay.send("a", track("Topic Subscribed", T0 + HOUR, topic="newsletter"))
    # Later in the log, though received earlier: it is the latest word.
    replay.send("a", track("Topic Unsubscribed", T0, topic="newsletter"), now=T0 + HOUR)
    replay.send("b", track("Topic Subscribed", T0, topic="newsletter"))
    replay.send("b", track("Topic Unsubscribed", T0 + 1, topic=["newsletter"]))
    replay.send("b", track("Topic Unsubscribed", T0 + 2, topic="offers"))
    states = replay.backfill(T0 + DAY)
    assert states["a"].topics == {"newsletter": False}
    assert states["a"].members.keys() == {"no_news"}
    assert states["b"].topics == {"newsletter": True}
    assert states["b"].members.keys() == {"news"}
    assert states["c"].topics == {}


def test_trait_and_date_conditions_read_the_profile() -> None:
    replay = Replay(
        segment("paying", "{trait: plan, in: [pro, team]}"),
        segment("tagged", "{trait: tags, contains: vip}"),
        segment("adult", "{trait: age, gte: 18}"),
        segment("settled", "{trait: signed_up_at, before: 30d}"),
        segment("new", "{trait: signed_up_at, within: 7d}"),
        contacts=("a", "b", "c", "d"),
    )
    replay.send("a", identify(T0, plan="pro", tags=["vip"], age=30, signed_up_at=iso(T0)))
    replay.send("b", identify(T0, plan="free", tags="vip", age="30", signed_up_at=T0 - 40 * DAY))
    replay.send("c", identify(T0, plan="team", tags=["new"], age=True, signed_up_at="soon"))
    states = replay.backfill(T0 + DAY)
    assert states["a"].members.keys() == {"paying", "tagged", "adult", "new"}
    assert states["a"].due == {"settled": T0 + 30 * DAY, "new": T0 + 7 * DAY}
    assert states["b"].members.keys() == {"tagged", "settled"}
    assert states["c"].members.keys() == {"paying"}
    assert states["d"].members.keys() == set()


def test_first_and_last_seen_and_a_contact_never_seen() -> None:
    replay = Replay(
        segment("newcomer", "{seen: first, within: 7d}"),
        segment("lapsed", "{seen: last, before: 60d}"),
        contacts=("a", "b", "imported"),
    )
    replay.send("a", track("Page Viewed", T0))
    replay.send("a", track("Page Viewed", T0 + 10 * DAY))
    replay.send("b", track("Page Viewed", T0 + 65 * DAY))
    replay.send("b", lifecycle("Email Sent", T0 + 66 * DAY))  # not the contact's doing
    states = replay.backfill(T0 + 71 * DAY)
    assert states["a"].members.keys() == {"lapsed"}
    assert states["b"].members.keys() == {"newcomer"}
    assert states["b"].due == {"newcomer": T0 + 72 * DAY, "lapsed": T0 + 125 * DAY}
    assert states["imported"] == SegmentState(evaluated_by=replay.segments.fingerprint)


def test_the_live_fold_goes_on_from_a_backfilled_state() -> None:
    replay = Replay(segment("carting", "{performed: Product Added, at_least: 2, within: 1h}"))
    replay.send("a", track("Product Added", T0))
    (state,) = replay.backfill(T0 + MINUTE).values()
    contact = replay.contacts["a"]
    assert replay.segments.next_change_at(state) == T0 + HOUR  # not 0: no evaluation anew
    (change,) = replay.segments.apply(state, contact, track("Product Added", T0 + 2 * MINUTE), T0)
    assert (change.segment, change.entered) == ("carting", True)


def test_members_are_positions_among_the_contacts() -> None:
    segments = SegmentSet([segment("buyer", "{performed: Order Completed}")])
    contacts = [Contact(id=contact_id) for contact_id in ("a", "b", "c")]
    log = [_owned(track("Order Completed", T0), "c"), _owned(track("Order Completed", T0), "a")]
    result = backfill(segments, contacts, build_history(segments, ["a", "b", "c"], log), T0)
    assert result.members("buyer").tolist() == [0, 2]


def test_events_of_another_contact_are_an_error() -> None:
    segments = SegmentSet([segment("buyer", "{performed: Order Completed}")])
    stranger = _owned(track("Page Viewed", T0), "z")
    with pytest.raises(ValueError, match="of contact 'z', which is not among the contacts"):
        build_history(segments, ["a"], [stranger])
    with pytest.raises(ValueError, match="'a' is given twice"):
        build_history(segments, ["a", "a"], [])


def test_a_history_built_for_other_segments_is_an_error() -> None:
    shoes = segment("shoes", "{performed: Product Added, where: {category: shoes}}")
    history = build_history(SegmentSet([segment("any", "{performed: Product Added}")]), ["a"], [])
    with pytest.raises(ValueError, match="does not hold the 'Product Added' events"):
        backfill(SegmentSet([shoes]), [Contact(id="a")], history, T0)


def test_columns_made_without_events_backfill_the_same() -> None:
    """How a caller (the benchmark) hands over columns it made itself."""
    shoes = SegmentSet([segment("shoes", "{performed: Product Added, where: {category: shoes}}")])
    (name,) = build_history(shoes, [], []).wanted
    history = History(
        contact=np.array([0, 1, 1], dtype=np.int32),
        name=np.zeros(3, dtype=np.int32),
        received_at=np.array([T0, T0, T0 + 1]),
        wanted={name: (("category",),)},
        properties={
            ("category",): PropertyColumn(
                codes=np.array([0, 1, 0], dtype=np.int32),
                values=["shoes", "hats"],
            )
        },
    )
    result = backfill(shoes, [Contact(id="a"), Contact(id="b")], history, T0 + 2)
    assert result.members("shoes").tolist() == [0, 1]
    with pytest.raises(ValueError, match="outside the 1 given"):
        backfill(shoes, [Contact(id="a")], history, T0 + 2)


def test_a_history_read_in_many_chunks_is_the_one_read_in_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    segments = SegmentSet(
        [
            segment("shoes", "{performed: Product Added, where: {category: shoes}, within: 1d}"),
            segment("news", "{subscribed: newsletter}"),
        ]
    )
    log = [
        _owned(
            track("Product Added", T0 + n, category=["shoes", "hats", ["x"]][n % 3]), "ab"[n % 2]
        )
        for n in range(7)
    ]
    log += [
        _owned(track("Topic Subscribed", T0, topic="newsletter"), "b"),
        _owned(identify(T0), "a"),
    ]
    whole = build_history(segments, ["a", "b"], log)
    monkeypatch.setattr(backfill_module.HistoryBuilder, "CHUNK", 2)
    chunked = build_history(segments, ["a", "b"], log)
    for field in ("contact", "name", "received_at"):
        assert np.array_equal(getattr(chunked, field), getattr(whole, field))
    for path, column in whole.properties.items():
        assert np.array_equal(chunked.properties[path].codes, column.codes)
        assert chunked.properties[path].values == column.values
