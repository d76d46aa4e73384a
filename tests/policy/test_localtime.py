from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.policy.localtime import contact_zone, next_local_time, trait_instant

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_the_zone_is_the_trait_when_it_names_one_else_the_default() -> None:
    assert contact_zone({"timezone": "Asia/Tokyo"}, "UTC") == ZoneInfo("Asia/Tokyo")
    assert contact_zone({"timezone": "Mars/Olympus"}, "Europe/Berlin") == BERLIN
    assert contact_zone({"timezone": 3}, "Europe/Berlin") == BERLIN
    assert contact_zone({}, "America/New_York") == ZoneInfo("America/New_York")


def test_the_next_local_time_is_today_or_tomorrow() -> None:
    nine = time(9, 0)
    assert next_local_time(at("2026-03-02T07:00:00+01:00"), nine, BERLIN) == at(
        "2026-03-02T09:00:00+01:00"
    )
    assert next_local_time(at("2026-03-02T09:30:00+01:00"), nine, BERLIN) == at(
        "2026-03-03T09:00:00+01:00"
    )
    assert next_local_time(at("2026-03-02T09:00:00+01:00"), nine, BERLIN) == at(
        "2026-03-02T09:00:00+01:00"
    )


def test_across_a_dst_change_the_wall_clock_time_is_kept() -> None:
    # Berlin springs forward on 2026-03-29: 09:00 is +02:00 from then on.
    assert next_local_time(at("2026-03-28T10:00:00+01:00"), time(9), BERLIN) == at(
        "2026-03-29T09:00:00+02:00"
    )


@given(
    now=st.floats(min_value=0, max_value=4e9),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    name=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
)
def test_the_next_local_time_is_never_before_now_nor_more_than_a_day_and_a_bit_after(
    now: float, hour: int, minute: int, name: str
) -> None:
    found = next_local_time(now, time(hour, minute), ZoneInfo(name))
    assert now <= found <= now + 25 * 3600


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-01", "2026-05-01T00:00:00+02:00"),
        ("2026-05-01T12:30:00", "2026-05-01T12:30:00+02:00"),
        ("2026-05-01T12:30:00Z", "2026-05-01T12:30:00+00:00"),
        ("2026-05-01T12:30:00-04:00", "2026-05-01T12:30:00-04:00"),
        (1_777_000_000, datetime.fromtimestamp(1_777_000_000, UTC).isoformat()),
    ],
)
def test_trait_dates_in_the_forms_libraries_send(value: object, expected: str) -> None:
    assert trait_instant(value, BERLIN) == at(expected)


@pytest.mark.parametrize("value", ["soon", "", None, True, ["2026-05-01"], "2026-13-01"])
def test_a_trait_that_names_no_moment_is_none(value: object) -> None:
    assert trait_instant(value, BERLIN) is None


def test_an_endless_trait_names_no_moment() -> None:
    from zoneinfo import ZoneInfo

    from mailpulse.policy.localtime import trait_instant

    assert trait_instant(float("inf"), ZoneInfo("UTC")) is None
    assert trait_instant(float("nan"), ZoneInfo("UTC")) is None
