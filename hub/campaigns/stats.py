"""The statistics of a campaign report, in plain math: a Wilson score interval for a
conversion rate and a two-proportion z-test for a variant against the holdout."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def wilson(successes: int, trials: int, z: float = Z95) -> Interval | None:
    """The Wilson score interval of successes/trials (None without trials)."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class Lift:
    """A variant's rate against the holdout's: absolute and relative difference, z, p."""

    absolute: float
    relative: float | None
    z: float
    p_value: float


def lift(conv_a: int, n_a: int, conv_b: int, n_b: int) -> Lift | None:
    """Variant A (conv_a of n_a) against baseline B, with a pooled two-sided z-test;
    None when either group is empty or nobody (or everybody) converted in both."""
    if n_a <= 0 or n_b <= 0:
        return None
    p_a, p_b = conv_a / n_a, conv_b / n_b
    pooled = (conv_a + conv_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return None
    z = (p_a - p_b) / math.sqrt(variance)
    p_value = math.erfc(abs(z) / math.sqrt(2))  # two-sided: 2 × (1 − Φ(|z|))
    return Lift(p_a - p_b, (p_a - p_b) / p_b if p_b > 0 else None, z, p_value)
