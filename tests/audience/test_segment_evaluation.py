"""Each kind of condition, evaluated event by event and as time passes.

Every step of a `Timeline` also checks the incremental memberships against the full
recomputation from the history, so each test here is an example of the property test too.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec
import pytest

from mailpulse.audience import apply_event
from mailpulse.audience.segments import (
    MembershipChange,
    Segment,
    SegmentSet,
    SegmentState,
    full_membership,
    parse_segment,
)
from mailpulse.audience.segments import incremental as incremental_module
from mailpulse.types import Contact, Event

T0 = 1_700_000_000.0
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
_message_ids = itertools.count()


def segment(segment_id: str, condition: str) -> Segment:
    return parse_segment(f"conditions: {condition}\n", Path(f"{segment_id}.yaml"))


def track(name: str, at: float, **properties: Any) -> Event:
    return Event(
        type="track",
        message_id=f"m{next(_message_ids)}",
        contact_key="u",
        user_id="u",
        event=name,
        properties=properties,
        timestamp=at,
        received_at=at,
    )


def identify(at: float, **traits: Any) -> Event:
    return Event(
        type="identify",
        message_id=f"m{next(_message_ids)}",
        contact_key="u",
        user_id="u",
        traits=traits,
        timestamp=at,
        received_at=at,
    )


def lifecycle(name: str, at: float, template: str = "weekly", **more: object) -> Event:
    # As mailpulse.runtime.lifecycle writes them: no user or anonymous id, so the fold does
    # not touch the profile with them.
    return Event(
        type="track",
        message_id=f"m{next(_message_ids)}",
        contact_key="u",
        event=name,
        properties={"template": template, "journey": "news", **more},
        timestamp=at,
        received_at=at,
    )


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


class Timeline:
    """One contact through a set of segments, as the fold will run it: each event is applied
    to the profile, then to the segment state. After every step each membership must equal
    the full recomputation from the history."""

    def __init__(self, *segments: Segment) -> None:
        self.segments = SegmentSet(segments)
        self.by_id = {s.id: s for s in segments}
        self.contact = Contact(id="u")
        self.state = SegmentState()
        self.history: list[Event] = []
        self.now = T0

    def send(self, event: Event, now: float | None = None) -> list[MembershipChange]:
        """Fold `event` at `now` (by default when it was received)."""
        self.now = max(self.now, event.received_at if now is None else now)
        if event.user_id is not None or event.anonymous_id is not None:
            apply_event(self.contact, event)
        self.history.append(event)
        changes = self.segments.apply(self.state, self.contact, event, self.now)
        self.check()
        return changes

    def tick(self, now: float) -> list[MembershipChange]:
        self.now = now
        changes = self.segments.tick(self.state, self.contact, now)
        self.check()
        return changes

    @property
    def members(self) -> set[str]:
        return set(self.state.members)

    def recomputed(self, now: float) -> set[str]:
        return {
            segment_id
            for segment_id, seg in self.by_id.items()
            if full_membership(seg, self.contact, self.history, now, self.by_id)
        }

    def check(self) -> None:
        assert self.members == self.recomputed(self.now)

    @property
    def next_change_at(self) -> float | None:
        return self.segments.next_change_at(self.state)


def entered(segment_id: str, at: float) -> MembershipChange:
    return MembershipChange(segment=segment_id, entered=True, at=at)


def exited(segment_id: str, at: float) -> MembershipChange:
    return MembershipChange(segment=segment_id, entered=False, at=at)


def test_trait_conditions_follow_the_profile() -> None:
    t = Timeline(
        segment("paying", "{trait: plan, in: [pro, team]}"),
        segment("adult", "{trait: age, gte: 18}"),
        segment("tagged", "{trait: tags, contains: vip}"),
        segment("reachable", "{trait: address.phone, exists: true}"),
        segment("early", "{trait: signed_up_on, lt: '2024-01-01'}"),
    )
    assert t.send(identify(T0, plan="free", age="19", tags=["new"])) == []
    assert t.send(identify(T0 + 1, plan="pro", age=19, signed_up_on="2023-12-31")) == [
        entered("paying", T0 + 1),
        entered("adult", T0 + 1),
        entered("early", T0 + 1),
    ]
    assert t.send(identify(T0 + 2, tags=["new", "vip"], address={"phone": "+1"})) == [
        entered("tagged", T0 + 2),
        entered("reachable", T0 + 2),
    ]
    # Other calls carry current traits in context.traits.
    downgrade = track("Plan Changed", T0 + 3)
    downgrade.context["traits"] = {"plan": "free", "address": {"phone": None}}
    assert t.send(downgrade) == [exited("paying", T0 + 3), exited("reachable", T0 + 3)]
    assert t.next_change_at is None


def test_relative_dates_switch_at_the_exact_moment() -> None:
    t = Timeline(
        segment("new", "{trait: signed_up_at, within: 7d}"),
        segment("settled", "{trait: signed_up_at, before: 30d}"),
    )
    assert t.send(identify(T0, signed_up_at=iso(T0))) == [entered("new", T0)]
    assert t.next_change_at == T0 + 7 * DAY
    assert t.tick(T0 + 7 * DAY - 0.001) == []
    assert t.tick(T0 + 7 * DAY) == [exited("new", T0 + 7 * DAY)]
    assert t.next_change_at == T0 + 30 * DAY
    assert t.tick(T0 + 30 * DAY) == [entered("settled", T0 + 30 * DAY)]
    assert t.next_change_at is None


@pytest.mark.parametrize(
    "value",
    [T0 - DAY, int(T0 - DAY), iso(T0 - DAY), iso(T0 - DAY).replace("+00:00", "Z")],
)
def test_a_date_trait_may_be_epoch_seconds_or_iso_text(value: Any) -> None:
    t = Timeline(segment("new", "{trait: signed_up_at, within: 7d}"))
    assert t.send(identify(T0, signed_up_at=value)) == [entered("new", T0)]
    assert t.next_change_at == T0 + 6 * DAY


def test_a_date_only_trait_is_midnight_utc_and_nonsense_is_no_date() -> None:
    t = Timeline(segment("new", "{trait: signed_up_at, within: 1d}"))
    day = datetime.fromtimestamp(T0, UTC).date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    assert t.send(identify(T0, signed_up_at=day.isoformat())) == [entered("new", T0)]
    assert t.next_change_at == midnight + DAY
    assert t.send(identify(T0 + 1, signed_up_at="yesterday")) == [exited("new", T0 + 1)]
    assert t.send(identify(T0 + 2, signed_up_at=True)) == []
    assert t.next_change_at is None


def test_a_future_date_is_within_a_window_only_once_it_has_come() -> None:
    t = Timeline(segment("renewing", "{trait: renews_at, within: 1d}"))
    assert t.send(identify(T0, renews_at=T0 + HOUR)) == []
    assert t.next_change_at == T0 + HOUR
    assert t.tick(T0 + HOUR) == [entered("renewing", T0 + HOUR)]


def test_first_and_last_seen() -> None:
    t = Timeline(
        segment("newcomer", "{seen: first, within: 7d}"),
        segment("lapsed", "{seen: last, before: 60d}"),
    )
    assert t.send(track("Page Viewed", T0)) == [entered("newcomer", T0)]
    assert t.tick(T0 + 7 * DAY) == [exited("newcomer", T0 + 7 * DAY)]
    assert t.next_change_at == T0 + 60 * DAY
    assert t.tick(T0 + 60 * DAY) == [entered("lapsed", T0 + 60 * DAY)]
    assert t.send(track("Page Viewed", T0 + 61 * DAY)) == [exited("lapsed", T0 + 61 * DAY)]


def test_a_window_of_counted_events_passes_with_no_new_event() -> None:
    t = Timeline(segment("carting", "{performed: Product Added, at_least: 2, within: 1h}"))
    assert t.send(track("Product Added", T0)) == []
    assert t.send(track("Product Added", T0 + 10 * MINUTE)) == [
        entered("carting", T0 + 10 * MINUTE)
    ]
    assert t.send(track("Product Added", T0 + 20 * MINUTE)) == []
    # The two latest decide: the first has been let go.
    assert list(t.state.recent.values()) == [[T0 + 10 * MINUTE, T0 + 20 * MINUTE]]
    assert t.next_change_at == T0 + 70 * MINUTE
    assert t.tick(T0 + 70 * MINUTE) == [exited("carting", T0 + 70 * MINUTE)]
    assert t.next_change_at == T0 + 80 * MINUTE  # nothing changes then, but it may
    assert t.tick(T0 + 80 * MINUTE) == []
    assert t.next_change_at is None


def test_not_performed_holds_until_the_event_and_again_once_its_window_passes() -> None:
    t = Timeline(
        segment("not_lately", "{not_performed: Order Completed, within: 30d}"),
        segment("never", "{performed: Order Completed, at_most: 0}"),
        segment("once_at_most", "{performed: Order Completed, at_most: 1, within: 30d}"),
    )
    # A new contact is evaluated against every segment, whatever its first event is.
    assert t.send(track("Page Viewed", T0)) == [
        entered("not_lately", T0),
        entered("never", T0),
        entered("once_at_most", T0),
    ]
    assert t.send(track("Order Completed", T0 + DAY)) == [
        exited("not_lately", T0 + DAY),
        exited("never", T0 + DAY),
    ]
    assert t.send(track("Order Completed", T0 + 2 * DAY)) == [exited("once_at_most", T0 + 2 * DAY)]
    assert t.tick(T0 + 31 * DAY) == [entered("once_at_most", T0 + 31 * DAY)]
    assert t.tick(T0 + 32 * DAY) == [entered("not_lately", T0 + 32 * DAY)]
    assert t.members == {"not_lately", "once_at_most"}


def test_property_filters_pick_what_counts_and_counts_stop_where_they_decide() -> None:
    t = Timeline(
        segment(
            "big_spender", "{performed: Order Completed, where: {total: {gte: 100}}, at_least: 2}"
        )
    )
    assert t.send(track("Order Completed", T0, total=50)) == []
    assert t.send(track("Order Completed", T0 + 1, total=150)) == []
    assert t.send(track("Order Completed", T0 + 2, total="200")) == []
    assert t.send(track("Order Completed", T0 + 3, total=200)) == [entered("big_spender", T0 + 3)]
    for second in range(4, 9):
        assert t.send(track("Order Completed", T0 + second, total=500)) == []
    assert list(t.state.counts.values()) == [2]
    assert t.state.recent == {}


def test_email_engagement_counts_lifecycle_events() -> None:
    t = Timeline(
        segment("reader", "{email: opened, within: 30d, template: weekly}"),
        segment("not_clicking", "{not: {email: clicked, within: 30d}}"),
        segment("mailed_twice", "{email: received, at_least: 2}"),
    )
    assert t.send(track("Signed Up", T0)) == [entered("not_clicking", T0)]
    assert t.send(lifecycle("Email Sent", T0 + 1)) == []
    assert t.send(lifecycle("Email Opened", T0 + 2, template="promo")) == []
    assert t.send(lifecycle("Email Opened", T0 + 3)) == [entered("reader", T0 + 3)]
    assert t.send(lifecycle("Email Clicked", T0 + 4)) == [exited("not_clicking", T0 + 4)]
    assert t.send(lifecycle("Email Sent", T0 + 5)) == [entered("mailed_twice", T0 + 5)]
    assert t.contact.last_seen == T0  # lifecycle events are not the contact's doing
    assert t.tick(T0 + 3 + 30 * DAY) == [exited("reader", T0 + 3 + 30 * DAY)]
    assert t.tick(T0 + 4 + 30 * DAY) == [entered("not_clicking", T0 + 4 + 30 * DAY)]


def test_opens_and_clicks_by_machines_are_not_a_persons() -> None:
    t = Timeline(
        segment("reader", "{email: opened}"),
        segment("clicker", "{email: clicked}"),
    )
    assert t.send(lifecycle("Email Opened", T0, machine=True)) == []
    assert t.send(lifecycle("Email Clicked", T0 + 1, machine=True)) == []
    assert t.send(lifecycle("Email Opened", T0 + 2, machine=False)) == [entered("reader", T0 + 2)]
    # Without the flag (an ESP's webhook, an older event): a person's.
    assert t.send(lifecycle("Email Clicked", T0 + 3)) == [entered("clicker", T0 + 3)]


def test_a_topic_subscription_follows_the_latest_event_about_it() -> None:
    t = Timeline(
        segment("news", "{subscribed: newsletter}"),
        segment("no_news", "{not: {subscribed: newsletter}}"),
    )
    assert t.send(track("Signed Up", T0)) == [entered("no_news", T0)]
    assert t.send(track("Topic Subscribed", T0 + 1, topic="offers")) == []
    assert t.send(track("Topic Subscribed", T0 + 2, topic=["newsletter"])) == []
    assert t.send(track("Topic Subscribed", T0 + 3, topic="newsletter")) == [
        entered("news", T0 + 3),
        exited("no_news", T0 + 3),
    ]
    assert t.send(track("Topic Subscribed", T0 + 4, topic="newsletter")) == []
    assert t.send(track("Topic Unsubscribed", T0 + 5, topic="newsletter")) == [
        exited("news", T0 + 5),
        entered("no_news", T0 + 5),
    ]
    assert t.state.topics == {"newsletter": False}


def test_all_any_and_not_nest() -> None:
    vip = segment(
        "vip",
        "{all: [{trait: plan, eq: pro}, "
        "{any: [{performed: Order Completed, at_least: 3}, {trait: tier, eq: gold}]}, "
        "{not: {subscribed: nothing_please}}]}",
    )
    t = Timeline(vip)
    assert t.send(identify(T0, plan="pro")) == []
    assert t.send(identify(T0 + 1, tier="gold")) == [entered("vip", T0 + 1)]
    assert t.send(track("Topic Subscribed", T0 + 2, topic="nothing_please")) == [
        exited("vip", T0 + 2)
    ]
    assert t.send(track("Topic Unsubscribed", T0 + 3, topic="nothing_please")) == [
        entered("vip", T0 + 3)
    ]
    assert t.send(identify(T0 + 4, tier="silver")) == [exited("vip", T0 + 4)]
    for second in range(5, 8):
        t.send(track("Order Completed", T0 + second))
    assert t.members == {"vip"}


def test_the_state_round_trips_through_msgspec_mid_stream() -> None:
    t = Timeline(
        segment("carting", "{performed: Product Added, at_least: 2, within: 1h}"),
        segment("news", "{subscribed: newsletter}"),
    )
    t.send(track("Product Added", T0))
    t.send(track("Topic Subscribed", T0 + 1, topic="newsletter"))
    t.send(track("Product Added", T0 + 2))
    decoded = msgspec.json.decode(msgspec.json.encode(t.state), type=SegmentState)
    assert decoded == t.state
    t.state = decoded
    assert t.tick(T0 + HOUR) == [exited("carting", T0 + HOUR)]


def test_conditions_on_the_same_events_share_one_aggregate() -> None:
    t = Timeline(
        segment("busy", "{performed: Product Added, at_least: 3, within: 1h}"),
        segment("calm", "{performed: Product Added, at_most: 1, within: 1d}"),
        segment("ever", "{performed: Product Added, at_least: 5}"),
        segment("red", "{performed: Product Added, where: {color: red}, within: 1d}"),
    )
    for minute in range(10):
        t.send(track("Product Added", T0 + minute * MINUTE, color="blue"))
    (shared_key,) = [key for key, kept in t.state.recent.items() if len(kept) == 3]
    assert t.state.recent == {shared_key: [T0 + 7 * MINUTE, T0 + 8 * MINUTE, T0 + 9 * MINUTE]}
    assert t.state.counts == {shared_key: 5}
    assert t.members == {"busy", "ever"}


def test_an_event_evaluates_only_the_segments_that_depend_on_it() -> None:
    many = [segment(f"s{i}", f"{{performed: Event {i}, within: 1d}}") for i in range(50)]
    t = Timeline(*many, segment("plan", "{trait: plan, eq: pro}"))
    t.send(track("Event 0", T0))  # a new contact: every segment is evaluated once
    with mock.patch.object(incremental_module, "holds", wraps=incremental_module.holds) as spy:
        t.send(track("Event 7", T0 + 1))
        assert [call.args[0] for call in spy.call_args_list] == [many[7].condition]
        spy.reset_mock()
        t.send(identify(T0 + 2, plan="pro"))
        assert spy.call_count == 1
        spy.reset_mock()
        t.tick(T0 + 1 + DAY)  # only the two windows that pass are due
        assert spy.call_count == 2
    assert t.members == {"plan"}


def test_a_state_from_another_set_is_adopted() -> None:
    old = [
        segment("gone", "{trait: plan, eq: pro}"),
        segment("kept", "{performed: Page Viewed, at_least: 2}"),
        segment("news", "{subscribed: newsletter}"),
    ]
    t = Timeline(*old)
    t.send(identify(T0, plan="pro"))
    t.send(track("Page Viewed", T0 + 1))
    t.send(track("Page Viewed", T0 + 2))
    t.send(track("Topic Subscribed", T0 + 3, topic="newsletter"))
    assert t.members == {"gone", "kept", "news"}

    new = [old[1], segment("free", "{trait: plan, eq: free}")]
    t.segments, t.by_id = SegmentSet(new), {s.id: s for s in new}
    assert t.next_change_at == 0.0
    # A deleted segment is dropped without an exit; a new one is evaluated at once.
    assert t.send(identify(T0 + 4, plan="free")) == [entered("free", T0 + 4)]
    assert t.members == {"kept", "free"}
    assert t.state.topics == {}
    assert t.next_change_at is None


def test_a_segment_id_is_given_once() -> None:
    with pytest.raises(ValueError, match="'a' is given twice"):
        SegmentSet([segment("a", "{trait: x, eq: 1}"), segment("a", "{trait: y, eq: 1}")])


def test_a_late_event_counts_by_when_it_was_received() -> None:
    t = Timeline(segment("carting", "{performed: Product Added, within: 1h}"))
    assert t.send(track("Product Added", T0 + HOUR)) == [entered("carting", T0 + HOUR)]
    # Received earlier, folded later (held back while a merge was pending).
    assert t.send(track("Product Added", T0 + 30 * MINUTE), now=T0 + HOUR) == []
    assert list(t.state.recent.values()) == [[T0 + HOUR]]
    assert t.next_change_at == T0 + 2 * HOUR
