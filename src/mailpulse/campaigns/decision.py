"""An A/B test's figures and the decision taken on them.

Each variant's rate is its `winner_by` count over the messages of it sent. The variant with
the best rate (the first listed among equals) is compared with each other variant by a
two-proportion z-test; it wins when every comparison is significant at the test's confidence
(p below 1 - confidence). The decision keeps the weakest comparison (the largest p) as its
`z` and `p`, and each variant its own against the best.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from mailpulse.campaigns.abtest import (
    CLICKS,
    CONVERSIONS,
    FIRST,
    OPENS,
    SENT,
    SPLIT,
    AbTest,
)
from mailpulse.campaigns.significance import two_proportion_z_test

Counts = Mapping[tuple[str, str], int]  # (variant, figure) → contacts counted
BY_TEST, BY_OPERATOR = "test", "operator"


class VariantFigures(msgspec.Struct, kw_only=True):
    id: str
    sent: int
    opens: int
    clicks: int
    conversions: int
    rate: float  # of the test's winner_by, over sent
    # The z-test of the best variant against this one (None for the best itself).
    z: float | None = None
    p: float | None = None


class Decision(msgspec.Struct, kw_only=True):
    winner: str | None  # None: the test could not tell
    # What the rest of the audience gets: the winner, else (by `if_undecided`) the first
    # variant or every variant evenly; empty while it waits for a person to pick.
    rest: list[str]
    by: str  # the test, or an operator
    winner_by: str
    confidence: float
    z: float | None  # the weakest comparison of the best with another variant
    p: float | None
    variants: list[VariantFigures]
    decided_at: float


decode_decision = msgspec.json.Decoder(Decision).decode


def figures(ab_test: AbTest, counts: Counts) -> list[VariantFigures]:
    """Each variant's counts and rate, with the z-test of the best against it."""
    rows = [
        VariantFigures(
            id=v.id,
            sent=counts.get((v.id, SENT), 0),
            opens=counts.get((v.id, OPENS), 0),
            clicks=counts.get((v.id, CLICKS), 0),
            conversions=counts.get((v.id, CONVERSIONS), 0),
            rate=0.0,
        )
        for v in ab_test.variants
    ]
    tried = {row.id: _tried(ab_test.winner_by, row) for row in rows}
    for row in rows:
        successes, trials = tried[row.id]
        row.rate = successes / trials if trials else 0.0
    best = _best(rows)
    for row in rows:
        if row is not best:
            test = two_proportion_z_test(*tried[best.id], *tried[row.id])
            row.z, row.p = test.z, test.p
    return rows


def decide(ab_test: AbTest, counts: Counts, now: float) -> Decision:
    """The test's decision on the figures as they stand."""
    rows = figures(ab_test, counts)
    best = _best(rows)
    others = [row for row in rows if row is not best]
    weakest = max(others, key=lambda row: row.p if row.p is not None else 1.0)
    alpha = 1 - ab_test.confidence
    decided = all(
        row.z is not None and row.p is not None and row.z > 0 and row.p < alpha for row in others
    )
    if decided:
        rest = [best.id]
    elif ab_test.if_undecided == FIRST:
        rest = [ab_test.variants[0].id]
    elif ab_test.if_undecided == SPLIT:
        rest = ab_test.variant_ids
    else:
        rest = []  # hold: a person decides
    return Decision(
        winner=best.id if decided else None,
        rest=rest,
        by=BY_TEST,
        winner_by=ab_test.winner_by,
        confidence=ab_test.confidence,
        z=weakest.z,
        p=weakest.p,
        variants=rows,
        decided_at=now,
    )


def picked(ab_test: AbTest, counts: Counts, variant: str, now: float) -> Decision:
    """An operator's pick, with the figures as they stood then."""
    decision = decide(ab_test, counts, now)
    return msgspec.structs.replace(decision, winner=variant, rest=[variant], by=BY_OPERATOR)


def _best(rows: list[VariantFigures]) -> VariantFigures:
    # max keeps the first of equals: the first listed variant wins a tie.
    return max(rows, key=lambda row: row.rate)


def _tried(winner_by: str, row: VariantFigures) -> tuple[int, int]:
    """(successes, trials) of a variant. More successes than sends happen only while some
    sends' `Email Sent` are on their way: each success was a message sent, so it is a trial."""
    successes = {OPENS: row.opens, CLICKS: row.clicks, CONVERSIONS: row.conversions}[winner_by]
    return successes, max(row.sent, successes)
