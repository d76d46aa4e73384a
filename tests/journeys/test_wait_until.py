"""`wait_until`: a time of day on the contact's clock, or a date in a trait."""

from datetime import datetime
from pathlib import Path

import pytest

from mailpulse.errors import ProjectError
from mailpulse.journeys import ContactTime, Transition, on_event, on_timer, parse_journey
from tests.journeys.test_engine import journey, track

MORNING = """\
trigger: {event: Signed Up}
steps:
  - wait_until: {time: "09:00"}
  - send: good_morning
"""

RENEWAL = """\
trigger: {event: Subscribed}
steps:
  - wait_until: {trait: renews_on, offset: -3d}
  - send: renewal_reminder
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def start(text: str, now: float, traits: dict, default: str = "UTC") -> Transition:
    return on_event(
        journey(text),
        contact_id="c1",
        event=track("Signed Up" if "Signed" in text else "Subscribed", "m1"),
        active=None,
        last_entered_at=None,
        now=now,
        contact=ContactTime(traits, default),
    )


def test_the_morning_is_the_contacts_own() -> None:
    now = at("2026-06-01T12:00:00+00:00")
    tokyo = start(MORNING, now, {"timezone": "Asia/Tokyo"}).instance
    assert tokyo is not None and tokyo.wake_at == at("2026-06-02T09:00:00+09:00")
    # No trait: the project's default zone.
    berlin = start(MORNING, now, {}, default="Europe/Berlin").instance
    assert berlin is not None and berlin.wake_at == at("2026-06-02T09:00:00+02:00")
    done = on_timer(journey(MORNING), berlin, now=berlin.wake_at)
    assert [e.template for e in done.effects] == ["good_morning"]


def test_an_unquoted_time_is_read_as_written() -> None:
    unquoted = parse_journey(MORNING.replace('"09:00"', "9:30"), Path("journeys/j.yaml"))
    assert unquoted.steps[0].time == (9, 30)  # type: ignore[union-attr]


def test_a_date_trait_with_an_offset() -> None:
    now = at("2026-06-01T12:00:00+00:00")
    waiting = start(RENEWAL, now, {"renews_on": "2026-07-01"}).instance
    assert waiting is not None and waiting.wake_at == at("2026-06-28T00:00:00+00:00")


@pytest.mark.parametrize("renews_on", ["2026-05-01", None, "soon"])
def test_a_past_missing_or_unreadable_date_does_not_hold_the_journey_up(renews_on: object) -> None:
    traits = {} if renews_on is None else {"renews_on": renews_on}
    went_on = start(RENEWAL, at("2026-06-01T12:00:00+00:00"), traits)
    assert [e.template for e in went_on.effects] == ["renewal_reminder"]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("{}", "either a time or a trait"),
        ("{time: '09:00', trait: x}", "either a time or a trait"),
        ("{time: '25:00'}", "HH:MM"),
        ("{time: '09:00', offset: 1h}", "an offset goes with a trait"),
        ("{trait: x, offset: soon}", "not a duration"),
        ("{trait: x, at: 1}", "at"),
    ],
)
def test_bad_wait_until_names_the_line_and_the_fix(spec: str, reason: str) -> None:
    text = f"trigger: {{event: Signed Up}}\nsteps:\n  - wait_until: {spec}\n"
    with pytest.raises(ProjectError) as caught:
        parse_journey(text, Path("journeys/j.yaml"))
    assert "j.yaml:3:" in str(caught.value) and reason in str(caught.value)
