"""Acceptance: for random event streams and random segments, the incremental memberships equal
a full recomputation from the history at every point in time.

Checked after every event, at random ticks in between (time passing with no event), at the
exact moment `next_change_at` names, and just before it: until then nothing may change by time
alone, so a timer set for it never misses a change.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpulse.audience.segments import SegmentState, segment_from_data
from mailpulse.types import Event
from tests.audience.test_segment_evaluation import (
    DAY,
    HOUR,
    T0,
    Timeline,
    identify,
    lifecycle,
    track,
)

durations = st.sampled_from(["30m", "1h", "6h", "1d", "3d"])
relative_dates = st.one_of(
    st.builds(lambda d: {"before": d}, durations),
    st.builds(lambda d: {"within": d}, durations),
    st.builds(lambda b, w: {"before": b, "within": w}, durations, durations),
)

trait_leaves = st.one_of(
    st.fixed_dictionaries({"trait": st.just("plan"), "eq": st.sampled_from(["free", "pro"])}),
    st.just({"trait": "plan", "in": ["pro", "team"]}),
    st.fixed_dictionaries({"trait": st.just("plan"), "exists": st.booleans()}),
    st.fixed_dictionaries({"trait": st.just("age"), "gte": st.sampled_from([18, 40])}),
    st.just({"trait": "tags", "contains": "vip"}),
    st.builds(lambda date: {"trait": "signed_up_at", **date}, relative_dates),
)
seen_leaves = st.builds(
    lambda which, date: {"seen": which, **date}, st.sampled_from(["first", "last"]), relative_dates
)
counts = st.one_of(
    st.just({}),
    st.builds(lambda n: {"at_least": n}, st.integers(1, 3)),
    st.builds(lambda m: {"at_most": m}, st.integers(0, 2)),
    st.builds(
        lambda n, more: {"at_least": n, "at_most": n + more}, st.integers(0, 2), st.integers(0, 2)
    ),
)
wheres = st.sampled_from([{"sku": "a"}, {"price": {"gte": 10}}, {"sku": {"in": ["a", "b"]}}])
performed_leaves = st.builds(
    lambda event, options, count: {"performed": event, **options, **count},
    st.sampled_from(["Product Added", "Order Completed"]),
    st.fixed_dictionaries({}, optional={"where": wheres, "within": durations}),
    counts,
)
not_performed_leaves = st.fixed_dictionaries(
    {"not_performed": st.sampled_from(["Product Added", "Order Completed"])},
    optional={"where": wheres, "within": durations},
)
email_leaves = st.builds(
    lambda kind, options, count: {"email": kind, **options, **count},
    st.sampled_from(["opened", "clicked", "received"]),
    st.fixed_dictionaries({}, optional={"template": st.just("weekly"), "within": durations}),
    counts,
)
subscribed_leaves = st.fixed_dictionaries({"subscribed": st.sampled_from(["newsletter", "offers"])})
leaves = st.one_of(
    trait_leaves,
    seen_leaves,
    performed_leaves,
    not_performed_leaves,
    email_leaves,
    subscribed_leaves,
)


def conditions(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Trees of at most `depth` levels."""
    if depth == 1:
        return leaves
    children = conditions(depth - 1)
    return st.one_of(
        leaves,
        st.builds(lambda items: {"all": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda child: {"not": child}, children),
    )


@st.composite
def segment_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Conditions of segments s0, s1, ...; a later one may refer to earlier ones (`segment:`),
    alone, negated or combined with its own condition."""
    definitions = draw(st.lists(conditions(3), min_size=1, max_size=4))
    for index in range(1, len(definitions)):
        referred = {"segment": f"s{draw(st.integers(0, index - 1))}"}
        definitions[index] = draw(
            st.sampled_from(
                [
                    definitions[index],
                    referred,
                    {"not": referred},
                    {"all": [definitions[index], referred]},
                    {"any": [definitions[index], {"not": referred}]},
                ]
            )
        )
    return definitions


# Gaps between steps: round ones land exactly on window edges, random ones anywhere; most are
# short, so that counts within a window build up.
gaps = st.one_of(
    st.sampled_from([0.0, 1.0, 60.0, 10 * 60.0, 30 * 60.0, HOUR, 6 * HOUR, DAY, 3 * DAY]),
    st.floats(min_value=0, max_value=HOUR),
    st.floats(min_value=0, max_value=4 * DAY),
)
# Most events arrive in order, some late: received before others already folded.
lags = st.sampled_from([0.0, 0.0, 0.0, 5 * 60.0, 2 * HOUR, DAY])
properties = st.fixed_dictionaries(
    {}, optional={"sku": st.sampled_from(["a", "b"]), "price": st.sampled_from([5, 20, "20"])}
)


def _date_value(offset: float, form: str, now: float) -> Any:
    moment = now + offset
    if form == "epoch":
        return moment
    if form == "iso":
        return datetime.fromtimestamp(moment, UTC).isoformat()
    if form == "date":
        return datetime.fromtimestamp(moment, UTC).date().isoformat()
    return "soon"


trait_updates = st.fixed_dictionaries(
    {},
    optional={
        "plan": st.sampled_from(["free", "pro", "team", None]),
        "age": st.sampled_from([15, 30, 50, "30"]),
        "tags": st.sampled_from([[], ["vip"], "vip"]),
        "signed_up_at": st.tuples(
            st.one_of(
                st.sampled_from([-31 * DAY, -7 * DAY, -DAY, -HOUR, 0.0, HOUR, DAY]),
                st.floats(min_value=-40 * DAY, max_value=2 * DAY),
            ),
            st.sampled_from(["epoch", "iso", "date", "nonsense"]),
        ),
    },
)

# Each step says what happens `gap` seconds after the previous one; built at its time.
tracks = st.tuples(
    st.just("track"),
    st.sampled_from(["Product Added", "Order Completed", "Page Viewed"]),
    properties,
    st.one_of(st.none(), trait_updates),  # context.traits
)
events = st.one_of(
    tracks,
    tracks,  # twice as likely: counts need several of the same event
    st.tuples(st.just("page"), st.sampled_from(["Product Added", "Home"])),
    st.tuples(
        st.just("lifecycle"),
        st.sampled_from(["Email Sent", "Email Opened", "Email Clicked"]),
        st.sampled_from(["weekly", "promo"]),
    ),
    st.tuples(
        st.just("topic"),
        st.sampled_from(["Topic Subscribed", "Topic Unsubscribed"]),
        st.sampled_from(["newsletter", "offers"]),
    ),
    st.tuples(st.just("identify"), trait_updates),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("event"), gaps, st.tuples(lags, events)),
        st.tuples(st.just("event"), gaps, st.tuples(lags, events)),
        st.tuples(st.just("tick"), gaps, st.none()),
        st.tuples(st.just("tick at the next change"), st.just(0.0), st.none()),
        st.tuples(st.just("tick at the next change"), st.just(0.0), st.none()),
    ),
    min_size=15,
    max_size=50,
)


def _traits(updates: dict[str, Any], now: float) -> dict[str, Any]:
    traits = dict(updates)
    if "signed_up_at" in traits:
        traits["signed_up_at"] = _date_value(*traits["signed_up_at"], now)
    return traits


def _event(spec: tuple[Any, ...], at: float) -> Event:
    kind = spec[0]
    if kind == "track":
        _, name, props, context_traits = spec
        event = track(name, at, **props)
        if context_traits is not None:
            event.context["traits"] = _traits(context_traits, at)
        return event
    if kind == "page":
        return Event(
            type="page",
            message_id=f"page {at}",
            contact_key="u",
            user_id="u",
            name=spec[1],
            timestamp=at,
            received_at=at,
        )
    if kind == "lifecycle":
        return lifecycle(spec[1], at, template=spec[2])
    if kind == "topic":
        return track(spec[1], at, topic=spec[2])
    return identify(at, **_traits(spec[1], at))


def _nothing_changes_before(t: Timeline, until: float, fractions: list[float]) -> None:
    """Until the next change `next_change_at` names (or `until`), time alone changes nothing."""
    due = t.next_change_at
    horizon = until if due is None else min(due, until)
    if horizon <= t.now:
        return
    probes = [math.nextafter(horizon, -math.inf)]
    probes += [t.now + (horizon - t.now) * fraction for fraction in fractions]
    for probe in probes:
        if t.now <= probe < horizon:
            assert t.recomputed(probe) == t.members, f"a change before {horizon} at {probe}"


_encode = msgspec.json.Encoder().encode
_decode_state = msgspec.json.Decoder(SegmentState).decode


@settings(max_examples=1000, deadline=None)
@given(
    definitions=segment_sets(),
    steps=steps,
    fractions=st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), max_size=3),
)
def test_incremental_memberships_equal_the_full_recomputation(
    definitions: list[dict[str, Any]],
    steps: list[tuple[str, float, Any]],
    fractions: list[float],
) -> None:
    segments = [
        segment_from_data(f"s{index}", {"conditions": condition})
        for index, condition in enumerate(definitions)
    ]
    t = Timeline(*segments)
    t.tick(T0)  # a contact's state starts evaluated against every segment
    for kind, gap, spec in steps:
        if kind == "tick at the next change":
            due = t.next_change_at
            if due is None:
                continue
            at = due
        else:
            at = t.now + gap
        _nothing_changes_before(t, at, fractions)
        # The state is stored with the contact between events.
        t.state = _decode_state(_encode(t.state))
        if kind == "event":
            lag, event = spec
            t.send(_event(event, at - lag), now=at)
        else:
            t.tick(at)
