"""What the fold's rollup counts of single events (mailpulse.runtime.rollup), and the hours a range
is widened to, checked over any range."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.observe.kpis import hours_of
from mailpulse.policy.consent import unsubscribed_event
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.runtime.rollup import HOUR, Rollup
from mailpulse.types import MessageClass, SendIntent

AT = 1_772_000_000.0  # within an hour that starts at HOUR_START
HOUR_START = int(AT // HOUR * HOUR)


def _intent(key: str = "campaign:spring:c1", **more: str) -> SendIntent:
    return SendIntent(
        key=key,
        contact_id="c1",
        email="c1@example.com",
        template="promo",
        context={},
        message_class=MessageClass.MARKETING,
        **more,  # type: ignore[arg-type]
    )


def test_each_of_our_lifecycle_events_counts_once_by_its_message() -> None:
    rollup = Rollup()
    campaign, journey = _intent(campaign="spring"), _intent("welcome:c1:s0", journey="welcome")
    rollup.count(lifecycle_event(Lifecycle.SENT, campaign, AT), {})
    rollup.count(lifecycle_event(Lifecycle.BOUNCED, journey, AT, source="dsn"), {})
    rollup.count(lifecycle_event(Lifecycle.CONVERTED, campaign, AT, revenue=12.5), {})
    rollup.count(lifecycle_event(Lifecycle.CONVERTED, campaign, AT, revenue="lots"), {})
    # A customer's own event of the same name is none of ours.
    theirs = msgspec.structs.replace(lifecycle_event(Lifecycle.SENT, campaign, AT), user_id="u1")
    rollup.count(theirs, {})
    # Not counted one per event: opens and clicks come through the engagement.
    rollup.count(lifecycle_event(Lifecycle.OPENED, campaign, AT, machine=False), {})
    rollup.engaged(lifecycle_event(Lifecycle.CLICKED, campaign, AT), {"clicked": 1, "opened": 0})
    assert rollup.rows() == [
        (HOUR_START, "", "welcome", "promo", "bounced", 1, 0.0),
        (HOUR_START, "", "welcome", "promo", "bounced_late", 1, 0.0),
        (HOUR_START, "spring", "", "promo", "clicked", 1, 0.0),
        (HOUR_START, "spring", "", "promo", "converted", 2, 12.5),
        (HOUR_START, "spring", "", "promo", "sent", 1, 0.0),
    ]


def test_an_unsubscribe_is_counted_for_the_message_its_key_names() -> None:
    journey = _intent("welcome:c1:s0", journey="welcome")
    event = unsubscribed_event("c1", "c1@example.com", "", source="api", at=AT, key=journey.key)
    found, lost = Rollup(), Rollup()
    found.count(event, {journey.key: journey})
    lost.count(event, {})  # its row gone: only what the key says (no campaign in it)
    assert found.rows() == [(HOUR_START, "", "welcome", "promo", "unsubscribed", 1, 0.0)]
    assert lost.rows() == [(HOUR_START, "", "", "", "unsubscribed", 1, 0.0)]
    campaign_key = unsubscribed_event(
        "c1", "c1@example.com", "", source="api", at=AT, key="campaign:spring:c1"
    )
    named = Rollup()
    named.count(campaign_key, {})
    assert named.rows() == [(HOUR_START, "spring", "", "", "unsubscribed", 1, 0.0)]


def test_counts_that_cancel_out_write_nothing() -> None:
    rollup = Rollup()
    event = lifecycle_event(Lifecycle.CLICKED, _intent(campaign="spring"), AT)
    rollup.engaged(event, {"clicked": 1})
    rollup.engaged(event, {"clicked": -1})  # a scanner's first click, taken back
    assert rollup.rows() == []


_MOMENTS = st.floats(min_value=0, max_value=4e9, allow_nan=False)


@given(_MOMENTS, _MOMENTS)
def test_a_range_widens_to_the_fewest_whole_hours_that_hold_it(a: float, b: float) -> None:
    start, end = sorted((a, b))
    since, until = hours_of(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))
    first = datetime.fromtimestamp(start, UTC).timestamp()
    last = datetime.fromtimestamp(end, UTC).timestamp()
    assert since % HOUR == 0 and until % HOUR == 0
    assert since <= first < since + HOUR
    assert until - HOUR < max(last, since + HOUR) <= until
