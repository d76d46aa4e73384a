"""Who gets which variant: the same answer every time, the test share as large as asked, the
variants even within it and the split rest."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from mailpulse.campaigns.abtest import AbTest, Variant, rest_variant, variant_in_test


def ab_test(share: float, variants: int = 3) -> AbTest:
    return AbTest(
        variants=tuple(Variant(id=chr(ord("a") + n)) for n in range(variants)),
        test_share=share,
        wait=60,
        winner_by="opens",
    )


@given(st.text(min_size=1, max_size=64), st.text(min_size=1, max_size=200))
def test_the_same_contact_always_gets_the_same_answer(campaign: str, contact: str) -> None:
    tested = ab_test(0.5)
    first = variant_in_test(campaign, contact, tested)
    assert all(variant_in_test(campaign, contact, tested) == first for _ in range(3))
    assert first is None or first in tested.variant_ids
    assert rest_variant(campaign, contact, ["a", "b"]) == rest_variant(
        campaign, contact, ["a", "b"]
    )


def test_the_share_and_the_variants_come_out_as_asked() -> None:
    contacts = [f"user-{n}" for n in range(20_000)]
    tested = ab_test(0.2)
    got = Counter(variant_in_test("spring", c, tested) for c in contacts)
    in_test = sum(n for v, n in got.items() if v is not None)
    # 4,000 expected; the binomial's standard deviation is about 57.
    assert 3_700 < in_test < 4_300
    assert set(got) == {None, "a", "b", "c"}
    assert all(abs(got[v] - in_test / 3) < 250 for v in "abc")
    split = Counter(rest_variant("spring", c, ["a", "b", "c"]) for c in contacts)
    assert all(abs(n - 20_000 / 3) < 400 for n in split.values())


def test_a_share_of_one_tests_everyone_and_each_campaign_draws_anew() -> None:
    contacts = [f"user-{n}" for n in range(2_000)]
    assert all(variant_in_test("c", c, ab_test(1.0)) is not None for c in contacts)
    tested = ab_test(0.5, variants=2)
    one = [variant_in_test("spring", c, tested) for c in contacts]
    other = [variant_in_test("autumn", c, tested) for c in contacts]
    assert one != other
    # A larger share takes in everyone a smaller one had, with the same variants.
    wider = ab_test(0.8, variants=2)
    assert all(
        variant_in_test("spring", c, wider) == v for c, v in zip(contacts, one, strict=True) if v
    )
