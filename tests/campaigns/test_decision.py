"""The decision on an A/B test's figures: the best variant wins when it is told apart from
every other at the test's confidence; otherwise what `if_undecided` says."""

from __future__ import annotations

import pytest

from mailpulse.campaigns.abtest import AbTest, Variant
from mailpulse.campaigns.decision import decide, figures, picked


def ab_test(if_undecided: str = "first", winner_by: str = "opens") -> AbTest:
    return AbTest(
        variants=(Variant(id="a"), Variant(id="b"), Variant(id="c")),
        test_share=0.2,
        wait=60,
        winner_by=winner_by,
        if_undecided=if_undecided,
    )


def counts(**per_variant: tuple[int, int]) -> dict[tuple[str, str], int]:
    """variant=(sent, opens)"""
    out = {}
    for variant, (sent, opens) in per_variant.items():
        out[variant, "sent"], out[variant, "opens"] = sent, opens
    return out


def test_a_clear_best_wins_with_its_numbers() -> None:
    decision = decide(ab_test(), counts(a=(500, 50), b=(500, 150), c=(500, 60)), now=7.0)
    assert (decision.winner, decision.rest, decision.by, decision.decided_at) == (
        "b",
        ["b"],
        "test",
        7.0,
    )
    rows = {row.id: row for row in decision.variants}
    assert (rows["b"].sent, rows["b"].opens, rows["b"].rate) == (500, 150, 0.3)
    assert rows["b"].z is None and rows["b"].p is None
    # b against a: 30% against 10% of 500 each, z = 7.9057; c is the closer rival.
    assert rows["a"].z == pytest.approx(7.90569, abs=1e-5)
    assert rows["c"].p is not None and rows["a"].p is not None and rows["c"].p > rows["a"].p
    assert (decision.z, decision.p) == (rows["c"].z, rows["c"].p)


@pytest.mark.parametrize(
    ("if_undecided", "rest"), [("first", ["a"]), ("split", ["a", "b", "c"]), ("hold", [])]
)
def test_undecided_the_rest_gets_what_the_test_says(if_undecided: str, rest: list[str]) -> None:
    # b is best, but 55 against 50 of 500 tells nothing at 95 %.
    decision = decide(ab_test(if_undecided), counts(a=(500, 50), b=(500, 55), c=(500, 10)), 1.0)
    assert (decision.winner, decision.rest) == (None, rest)
    assert decision.p is not None and decision.p > 0.05


def test_nothing_sent_decides_nothing_and_a_tie_goes_to_the_first() -> None:
    nothing = decide(ab_test("hold"), {}, 1.0)
    assert (nothing.winner, nothing.rest, nothing.p) == (None, [], 1.0)
    assert [row.rate for row in nothing.variants] == [0.0, 0.0, 0.0]
    rows = figures(ab_test(), counts(a=(10, 5), b=(10, 5), c=(10, 1)))
    assert [row.id for row in rows if row.z is None] == ["a"]


def test_counts_run_ahead_of_sends_only_as_far_as_the_sends() -> None:
    # Opens folded before some of their `Email Sent`: every open was a message sent.
    rows = figures(ab_test(), counts(a=(3, 5), b=(10, 1), c=(0, 0)))
    assert [(row.sent, row.rate) for row in rows] == [(3, 1.0), (10, 0.1), (0, 0.0)]


def test_an_operator_picks_with_the_figures_of_the_moment() -> None:
    decision = picked(ab_test("hold"), counts(a=(500, 50), b=(500, 55)), "c", now=9.0)
    assert (decision.winner, decision.rest, decision.by, decision.decided_at) == (
        "c",
        ["c"],
        "operator",
        9.0,
    )
    assert [row.opens for row in decision.variants] == [50, 55, 0]


def test_conversions_and_clicks_are_rates_too() -> None:
    tested = ab_test(winner_by="clicks")
    got = figures(tested, {("a", "sent"): 100, ("a", "clicks"): 7, ("a", "opens"): 30})
    assert (got[0].rate, got[0].opens, got[0].clicks) == (0.07, 30, 7)
