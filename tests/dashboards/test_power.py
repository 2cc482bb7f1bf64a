"""Seeds needed: the paired t test's power formula, and a seeded simulation of sweeps at the recommended n."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from dashboards.power import difference_sd, paired_power, seeds_needed


def test_power_grows_with_n_and_matches_the_normal_approximation() -> None:
    powers = [paired_power(n, 0.8) for n in range(2, 30)]
    assert powers == sorted(powers) and powers[0] < 0.2 and powers[-1] > 0.95
    # d = 0.5: the textbook answer for 80 % power at alpha 0.05 (two-sided, paired) is 34
    assert seeds_needed(0.5, 1.0) == 34
    n = seeds_needed(1.0, 1.0)
    assert n is not None and paired_power(n, 1.0) >= 0.8 > paired_power(n - 1, 1.0)
    z = st.norm.ppf(0.975) + st.norm.ppf(0.8)
    assert abs(seeds_needed(0.2, 1.0) - (z / 0.2) ** 2) < 3  # type: ignore[operator]


@pytest.mark.parametrize(("delta", "sd"), [(None, 1.0), (0.3, None), (0.0, 1.0), (0.3, 0.0), (1e-9, 1.0)])
def test_no_estimate_without_a_difference_or_a_spread(delta: float | None, sd: float | None) -> None:
    assert seeds_needed(delta, sd) is None


def test_the_sd_is_of_the_paired_differences_when_the_seeds_match() -> None:
    v, b = {0: 1.0, 1: 2.0, 2: 3.5}, {0: 0.5, 1: 1.5, 2: 2.5}
    assert difference_sd(v, b) == pytest.approx(float(np.std([0.5, 0.5, 1.0], ddof=1)))
    assert difference_sd(v, {0: 0.5, 1: 1.5}) == pytest.approx(math.sqrt(np.var([1, 2, 3.5], ddof=1) + 0.5))
    assert difference_sd({0: 1.0}, {0: 2.0}) is None


@pytest.mark.parametrize(("delta", "sd"), [(0.004, 0.005), (0.01, 0.02), (0.02, 0.03), (0.03, 0.02)])
def test_power_at_the_recommended_n_is_80_percent_in_simulation(delta: float, sd: float) -> None:
    """Many simulated sweeps of n seeds (differences normal with the true Δ and SD): the paired t test at alpha 0.05
    rejects in 80 % ± 10 % of them."""
    n = seeds_needed(delta, sd)
    assert n is not None
    rng = np.random.default_rng(20261128)
    sweeps = 4000
    diffs = rng.normal(delta, sd, size=(sweeps, n))
    t = diffs.mean(axis=1) / (diffs.std(axis=1, ddof=1) / math.sqrt(n))
    rejected = float(np.mean(2 * st.t.sf(np.abs(t), n - 1) < 0.05))
    assert 0.7 <= rejected <= 0.9, (n, rejected)
    # the formula is exact for normal differences (4000 sweeps: ±2 %); n is whole, so its power is ≥ 80 %
    assert abs(rejected - paired_power(n, delta / sd)) < 0.03
