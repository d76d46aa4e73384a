"""The two-proportion z-test an A/B test's decision rests on.

Two groups, `x` successes (opens, clicks, conversions) out of `n` trials (messages sent) each:
under the hypothesis that both have the same rate, the pooled rate estimates it, and the
difference of the two observed rates over its standard error is approximately normal. The
two-sided p-value is the chance of a difference at least that large if the rates were equal.
"""

from __future__ import annotations

import math

from msgspec import Struct


class ZTest(Struct, frozen=True):
    z: float  # positive when the first group's rate is the higher
    p: float  # two-sided, in [0, 1]


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> ZTest:
    """The pooled two-proportion z-test of x1/n1 against x2/n2. Where nothing can be told
    apart (a group with no trials, or both rates 0 or both 1) it says so: z 0, p 1."""
    if not (0 <= x1 <= n1 and 0 <= x2 <= n2):
        raise ValueError(f"successes must be between 0 and the trials: {x1}/{n1}, {x2}/{n2}")
    if n1 == 0 or n2 == 0:
        return ZTest(0.0, 1.0)
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance == 0:
        return ZTest(0.0, 1.0)
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return ZTest(z, min(1.0, math.erfc(abs(z) / math.sqrt(2))))
