"""Why a contact is in or out of a segment: readable examples of each kind of condition, and the
property that an explanation's every verdict is what `holds` says of that part of the tree."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpulse.audience.segments import full_membership, segment_from_data
from mailpulse.audience.segments.conditions import (
    AllOf,
    AnyOf,
    Condition,
    InSegment,
    Not,
    Segment,
)
from mailpulse.audience.segments.evaluate import holds
from mailpulse.audience.segments.explain import Explanation, Verdict, explain
from mailpulse.audience.segments.incremental import KeptHistory
from mailpulse.types import Contact
from tests.audience.test_segment_evaluation import (
    DAY,
    HOUR,
    MINUTE,
    T0,
    Timeline,
    identify,
    iso,
    lifecycle,
    segment,
    track,
)
from tests.audience.test_segment_properties import _event, gaps, segment_sets, steps

# T0 is 2023-11-14T22:13:20Z.


def explained(t: Timeline, segment_id: str, now: float | None = None) -> Explanation:
    """The explanation the admin API gives: the contact as stored, its state as history."""
    contact = msgspec.structs.replace(t.contact, segments=t.state)
    return explain(
        t.by_id[segment_id], contact, KeptHistory(t.state), t.now if now is None else now
    )


def lines(verdict: Verdict, depth: int = 0) -> list[str]:
    line = f"{'  ' * depth}{verdict.condition}: {'holds' if verdict.holds else 'fails'}"
    own = [f"{line} ({verdict.reason})"]
    return own + [text for child in verdict.children for text in lines(child, depth + 1)]


def test_a_trait_quotes_the_value_it_found() -> None:
    t = Timeline(
        segment("pro", "{trait: plan, eq: pro}"),
        segment("paying", "{trait: plan, in: [pro, team]}"),
        segment("adult", "{trait: age, gte: 18}"),
        segment("phone", "{trait: address.phone, exists: true}"),
    )
    t.send(identify(T0, plan="pro", age="30"))
    assert lines(explained(t, "pro").condition) == ['trait plan eq "pro": holds (plan is "pro")']
    assert lines(explained(t, "paying").condition) == [
        'trait plan in ["pro","team"]: holds (plan is "pro")'
    ]
    # Text is not a number: the quotes show why 30 is not 18 or more.
    assert lines(explained(t, "adult").condition) == ['trait age gte 18: fails (age is "30")']
    assert lines(explained(t, "phone").condition) == [
        "trait address.phone exists true: fails (address.phone is not set)"
    ]


def test_a_date_trait_says_how_long_ago_and_when_it_turns() -> None:
    t = Timeline(
        segment("settled", "{trait: signed_up_at, before: 30d}"),
        segment("new", "{trait: signed_up_at, within: 7d}"),
    )
    t.send(identify(T0, signed_up_at=iso(T0 - 3 * DAY)))
    assert lines(explained(t, "settled").condition) == [
        "trait signed_up_at before 30d: fails (signed_up_at is "
        '"2023-11-11T22:13:20+00:00": 2023-11-11T22:13:20Z, 3 days ago; '
        "holds from 2023-12-11T22:13:20Z)"
    ]
    assert lines(explained(t, "new").condition) == [
        "trait signed_up_at within 7d: holds (signed_up_at is "
        '"2023-11-11T22:13:20+00:00": 2023-11-11T22:13:20Z, 3 days ago; '
        "fails from 2023-11-18T22:13:20Z)"
    ]
    t.send(identify(T0 + 1, signed_up_at="soon"))
    assert explained(t, "new").condition.reason == 'signed_up_at is "soon": not a date'


def test_a_date_that_can_never_hold_names_no_moment() -> None:
    t = Timeline(segment("never", "{trait: signed_up_at, before: 3d, within: 1d}"))
    t.send(identify(T0, signed_up_at=T0 - HOUR))
    assert explained(t, "never").condition.reason == (
        "signed_up_at is 1699996400.0: 2023-11-14T21:13:20Z, 1 hour ago"
    )


def test_seen_says_when() -> None:
    t = Timeline(segment("lapsed", "{seen: last, before: 60d}"))
    t.send(track("Page Viewed", T0))
    assert lines(explained(t, "lapsed", T0 + 88 * DAY).condition) == [
        "seen last before 60d: holds (last seen 2023-11-14T22:13:20Z, 88 days ago)"
    ]
    never = explain(t.by_id["lapsed"], Contact(id="imported"), KeptHistory(t.state), T0)
    assert lines(never.condition) == ["seen last before 60d: fails (never seen)"]


def test_a_count_in_a_window_says_what_left_it_and_when() -> None:
    t = Timeline(segment("carting", "{performed: Product Added, at_least: 1, within: 1h}"))
    t.send(track("Product Added", T0))
    t.send(track("Product Added", T0 + 10 * MINUTE))
    assert lines(explained(t, "carting").condition) == [
        "performed Product Added at least 1 time within 1h: holds (1 time or more in the "
        "window; the earliest of them leaves it at 2023-11-14T23:23:20Z)"
    ]
    t.tick(T0 + 2 * HOUR)
    assert lines(explained(t, "carting").condition) == [
        "performed Product Added at least 1 time within 1h: fails (0 times in the window; "
        "last at 2023-11-14T22:23:20Z, left the window at 2023-11-14T23:23:20Z)"
    ]


def test_counts_say_where_the_state_stopped_counting() -> None:
    t = Timeline(
        segment("buyer", "{performed: Order Completed, at_least: 3}"),
        segment("never", "{not_performed: Order Completed}"),
        segment("few", "{performed: Order Completed, at_least: 1, at_most: 5, within: 1d}"),
        segment("opener", "{email: opened, template: weekly, at_least: 2}"),
    )
    t.send(track("Signed Up", T0))
    assert lines(explained(t, "never").condition) == [
        "not performed Order Completed: holds (0 times in all history)"
    ]
    assert explained(t, "few").condition.reason == "0 times in the window; none on record"
    for second in range(1, 5):
        t.send(track("Order Completed", T0 + second))
    assert lines(explained(t, "buyer").condition) == [
        "performed Order Completed at least 3 times: holds (3 times or more in all history)"
    ]
    assert explained(t, "few").condition.reason.startswith("4 times in the window")
    t.send(lifecycle("Email Opened", T0 + 5))
    assert lines(explained(t, "opener").condition) == [
        'performed Email Opened where template eq "weekly", machine ne true at least 2 times: '
        "fails (1 time in all history)"
    ]


def test_a_subscription_is_the_latest_event_on_its_topic() -> None:
    t = Timeline(segment("news", "{subscribed: newsletter}"))
    t.send(track("Signed Up", T0))
    assert explained(t, "news").condition.reason == "no Topic Subscribed on record"
    t.send(track("Topic Subscribed", T0 + 1, topic="newsletter"))
    assert lines(explained(t, "news").condition) == ["subscribed newsletter: holds (subscribed)"]
    t.send(track("Topic Unsubscribed", T0 + 2, topic="newsletter"))
    assert lines(explained(t, "news").condition) == ["subscribed newsletter: fails (unsubscribed)"]


def test_all_any_and_not_judge_their_children() -> None:
    t = Timeline(
        segment(
            "vip",
            "{all: [{trait: plan, eq: pro}, "
            "{any: [{performed: Order Completed, at_least: 3}, {trait: tier, eq: gold}]}, "
            "{not: {subscribed: nothing_please}}]}",
        )
    )
    t.send(identify(T0, plan="pro", tier="silver"))
    assert lines(explained(t, "vip").condition) == [
        "all of 3: fails (2 of 3 hold)",
        '  trait plan eq "pro": holds (plan is "pro")',
        "  any of 2: fails (0 of 2 hold)",
        "    performed Order Completed at least 3 times: fails (0 times in all history)",
        '    trait tier eq "gold": fails (tier is "silver")',
        "  not: holds (its condition fails)",
        "    subscribed nothing_please: fails (no Topic Subscribed on record)",
    ]


def test_membership_since_and_the_next_change_come_from_the_state() -> None:
    t = Timeline(segment("carting", "{performed: Product Added, within: 1h}"))
    t.send(track("Product Added", T0))
    t.send(track("Product Added", T0 + MINUTE))
    explanation = explained(t, "carting")
    assert (explanation.member, explanation.member_since) == (True, T0)
    assert explanation.next_change_at == T0 + MINUTE + HOUR
    # Past the window but before the fold's timer: the verdict is now's, the state's entry
    # no longer applies.
    late = explained(t, "carting", T0 + 2 * HOUR)
    assert (late.member, late.member_since, late.next_change_at) == (False, None, T0 + 61 * MINUTE)


def test_an_explanation_is_plain_json() -> None:
    t = Timeline(segment("news", "{not: {subscribed: newsletter}}"))
    t.send(track("Signed Up", T0))
    assert msgspec.json.decode(msgspec.json.encode(explained(t, "news"))) == {
        "segment": "news",
        "name": "news",
        "member": True,
        "member_since": T0,
        "next_change_at": None,
        "condition": {
            "condition": "not",
            "holds": True,
            "reason": "its condition fails",
            "children": [
                {
                    "condition": "subscribed newsletter",
                    "holds": False,
                    "reason": "no Topic Subscribed on record",
                    "children": [],
                }
            ],
        },
    }


class _Recomputed(KeptHistory):
    """The kept aggregates, and memberships of referred segments judged at `now`, as an
    explanation judges them."""

    def __init__(self, contact: Contact, now: float, segments: dict[str, Segment]) -> None:
        super().__init__(contact.segments)
        self._contact, self._now, self._segments = contact, now, segments

    def member(self, segment: str) -> bool:
        return holds(self._segments[segment].condition, self._contact, self, self._now)


def _agrees(
    condition: Condition,
    verdict: Verdict,
    contact: Contact,
    now: float,
    segments: dict[str, Segment],
) -> None:
    """Every node's verdict is what the full recomputation says of that subtree."""
    assert verdict.holds == holds(condition, contact, _Recomputed(contact, now, segments), now)
    match condition:
        case InSegment(segment=segment):
            (judged,) = verdict.children
            _agrees(segments[segment].condition, judged, contact, now, segments)
        case AllOf(conditions=children) | AnyOf(conditions=children):
            assert len(verdict.children) == len(children)
            for child, judged in zip(children, verdict.children, strict=True):
                _agrees(child, judged, contact, now, segments)
        case Not(condition=child):
            (judged,) = verdict.children
            _agrees(child, judged, contact, now, segments)
        case _:
            assert verdict.children == ()


@settings(max_examples=300, deadline=None)
@given(definitions=segment_sets(), steps=steps, later=st.lists(gaps, max_size=3))
def test_every_verdict_agrees_with_holds(
    definitions: list[dict[str, Any]], steps: list[tuple[str, float, Any]], later: list[float]
) -> None:
    segments = [
        segment_from_data(f"s{index}", {"conditions": condition})
        for index, condition in enumerate(definitions)
    ]
    t = Timeline(*segments)
    t.tick(T0)
    for kind, gap, spec in steps:
        at = t.now + gap
        if kind == "event":
            lag, event = spec
            t.send(_event(event, at - lag), now=at)
        else:
            t.tick(at)
        contact = msgspec.structs.replace(t.contact, segments=t.state)
        # Also between the fold's steps: an explanation may be asked for at any time.
        for now in [t.now, *(t.now + gap for gap in later)]:
            for seg in segments:
                explanation = explain(seg, contact, KeptHistory(t.state), now, t.by_id)
                recomputed = full_membership(seg, t.contact, t.history, now, t.by_id)
                assert explanation.member == recomputed
                _agrees(seg.condition, explanation.condition, contact, now, t.by_id)
