"""The breaker's rule: an exact rate against two thresholds, judged only from enough sends;
percentages read and written back; buckets of time."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.policy.breaker import (
    BUCKET,
    BreakerSettings,
    Figures,
    Level,
    bucket_of,
    counts_as_complaint,
    format_percent,
    judge,
    parse_percent,
)

DEFAULTS = BreakerSettings()


def figures(sends: int, complaints: int) -> Figures:
    return Figures(sends=sends, complaints=complaints, since=0.0, at=86400.0)


@pytest.mark.parametrize(
    ("sends", "complaints", "level"),
    [
        (2000, 0, Level.CLEAR),
        (2000, 1, Level.CLEAR),  # 0.05 %
        (2000, 2, Level.ALERT),  # 0.1 %: Gmail asks for below it
        (2000, 5, Level.ALERT),  # 0.25 %
        (2000, 6, Level.PAUSE),  # 0.3 %: never to be reached
        (1999, 600, Level.UNJUDGED),  # too few sends, however many complaints
        (50, 1, Level.UNJUDGED),  # one unhappy recipient of a small send stops nothing
        (0, 3, Level.UNJUDGED),
        (10_000, 12_000, Level.PAUSE),  # complaints about mail sent before the window
    ],
)
def test_levels_at_the_defaults(sends: int, complaints: int, level: Level) -> None:
    assert judge(figures(sends, complaints), DEFAULTS) == level


@given(
    sends=st.integers(min_value=0, max_value=10**9),
    complaints=st.integers(min_value=0, max_value=10**7),
    alert=st.fractions(min_value=Fraction(1, 10**6), max_value=1),
    factor=st.fractions(min_value=1, max_value=100),
    min_sends=st.integers(min_value=0, max_value=10**6),
)
def test_judging_is_exact(
    sends: int, complaints: int, alert: Fraction, factor: Fraction, min_sends: int
) -> None:
    pause = min(alert * factor, Fraction(1))
    settings = BreakerSettings(alert=alert, pause=pause, min_sends=min_sends)
    level = judge(figures(sends, complaints), settings)
    if sends == 0 or sends < min_sends:
        assert level == Level.UNJUDGED
    elif complaints * pause.denominator >= pause.numerator * sends:
        assert level == Level.PAUSE
    elif complaints * alert.denominator >= alert.numerator * sends:
        assert level == Level.ALERT
    else:
        assert level == Level.CLEAR


@pytest.mark.parametrize(
    ("written", "share"),
    [("0.1%", Fraction(1, 1000)), (" 0.3 % ", Fraction(3, 1000)), ("100%", Fraction(1))],
)
def test_percentages_are_read_exactly(written: str, share: Fraction) -> None:
    assert parse_percent(written) == share


@pytest.mark.parametrize(
    "written", ["0.3", 0.003, "0%", "101%", "-1%", "%", "0.1 percent", "", None]
)
def test_what_is_no_share_is_refused(written: object) -> None:
    with pytest.raises(ValueError, match="%"):
        parse_percent(written)


@given(st.integers(min_value=1, max_value=1_000_000))
def test_written_shares_read_back(ten_thousandths: int) -> None:
    share = Fraction(ten_thousandths, 1_000_000)
    assert parse_percent(format_percent(share)) == share


def test_figures_say_what_they_count() -> None:
    shown = Figures(sends=2500, complaints=9, since=0.0, at=86400.0).describe()
    assert shown == "0.36%: 9 complaints about 2,500 marketing messages sent in the last 24 h"
    assert Figures(sends=0, complaints=0, since=0.0, at=90.0).describe().startswith("no rate")


@pytest.mark.parametrize(
    ("feedback_type", "counted"),
    [("abuse", True), ("Fraud", True), (None, True), ("opt-out", False), ("not-spam", False)],
)
def test_which_reports_are_complaints(feedback_type: str | None, counted: bool) -> None:
    properties = {} if feedback_type is None else {"feedback_type": feedback_type}
    assert counts_as_complaint(properties) is counted


@given(st.floats(min_value=0, max_value=4e9))
def test_a_moment_falls_in_its_bucket(at: float) -> None:
    start = bucket_of(at)
    assert start <= at < start + BUCKET
    assert start % BUCKET == 0
