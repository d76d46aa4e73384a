"""The two-proportion z-test: a worked example, and the properties every answer has."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.campaigns.significance import two_proportion_z_test


def test_a_worked_example() -> None:
    # 120 of 1000 against 100 of 1000: pooled rate 0.11, standard error
    # sqrt(0.11 * 0.89 * (1/1000 + 1/1000)) = 0.0139929, z = 0.02 / 0.0139929 = 1.42930,
    # two-sided p = 2 * (1 - Phi(1.42930)) = 0.152918 (Simpson's rule on the normal density).
    test = two_proportion_z_test(120, 1000, 100, 1000)
    assert test.z == pytest.approx(1.42930, abs=1e-5)
    assert test.p == pytest.approx(0.152918, abs=1e-6)


def test_a_clear_difference_is_significant() -> None:
    # 30% against 10% of 500 each: z = 0.2 / sqrt(0.2 * 0.8 * 2 / 500) = 7.9057.
    test = two_proportion_z_test(150, 500, 50, 500)
    assert test.z == pytest.approx(7.90569, abs=1e-5)
    assert test.p < 1e-14


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"), [(0, 0, 3, 10), (3, 10, 0, 0), (0, 10, 0, 20), (10, 10, 5, 5)]
)
def test_nothing_to_tell_apart(x1: int, n1: int, x2: int, n2: int) -> None:
    test = two_proportion_z_test(x1, n1, x2, n2)
    assert (test.z, test.p) == (0.0, 1.0)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(11, 10, 1, 10), (-1, 10, 1, 10)])
def test_impossible_counts_are_refused(x1: int, n1: int, x2: int, n2: int) -> None:
    with pytest.raises(ValueError, match="between 0 and the trials"):
        two_proportion_z_test(x1, n1, x2, n2)


@st.composite
def groups(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(min_value=0, max_value=10**6))
    return draw(st.integers(min_value=0, max_value=n)), n


@given(groups(), groups())
def test_symmetric_and_p_is_a_probability(a: tuple[int, int], b: tuple[int, int]) -> None:
    forward = two_proportion_z_test(*a, *b)
    backward = two_proportion_z_test(*b, *a)
    assert 0.0 <= forward.p <= 1.0
    assert math.isfinite(forward.z)
    assert backward.z == -forward.z
    assert backward.p == forward.p


@given(groups())
def test_equal_rates_give_no_evidence(a: tuple[int, int]) -> None:
    x, n = a
    test = two_proportion_z_test(x, n, 3 * x, 3 * n)
    assert test.z == pytest.approx(0.0, abs=1e-9)
    assert test.p == pytest.approx(1.0, abs=1e-9)


@given(groups(), groups())
def test_a_larger_difference_never_weakens_the_evidence(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    (x1, n1), (x2, n2) = a, b
    if x1 < n1 and x1 * n2 >= x2 * n1:  # the first rate already the higher: raise it further
        assert (
            two_proportion_z_test(x1 + 1, n1, x2, n2).z
            >= two_proportion_z_test(x1, n1, x2, n2).z - 1e-9
        )
