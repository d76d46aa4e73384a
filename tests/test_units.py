"""Durations and rates people write, parsed once."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.units import format_duration, parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("7d", 604800),
        ("2w", 1209600),
        ("250ms", 0.25),
        (42, 42),
        ("1.5h", 5400),
    ],
)
def test_parse(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5", "5 parsecs", "h", "-1h", "1h-", True, -3])
def test_refuse(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10**8))
def test_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(max_size=12))
def test_anything_parses_or_is_refused(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert parse_duration(text) >= 0


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("100/s", 100), ("6000/m", 100), ("36000/h", 10), ("864000/d", 10), (" 2.5 / S ", 2.5)],
)
def test_parse_rate(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("bad", ["", "fast", "100", "/s", "100/", "100/x", "0/s", "0.0/h", "-5/s"])
def test_refuse_rate(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(bad)


@given(st.integers(min_value=1, max_value=10**9), st.sampled_from(["s", "m", "h", "d"]))
def test_rate_scales_with_its_unit(count: int, unit: str) -> None:
    assert parse_rate(f"{count}/{unit}") * parse_duration(f"1{unit}") == pytest.approx(count)


@given(st.text(max_size=12))
def test_any_rate_parses_positive_or_is_refused(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert parse_rate(text) > 0


@pytest.mark.parametrize("endless", [float("inf"), float("-inf"), float("nan")])
def test_a_duration_is_finite(endless: float) -> None:
    with pytest.raises(ValueError, match="a duration is a finite number of seconds"):
        parse_duration(endless)
