"""The racing test's error rate under optional stopping, by simulation (seeded; a few seconds).

Null: the variant equals the baseline (paired differences centred on −margin, the edge of the null), looked at after
every seed from 2 to 10; a wrongful stop is any stop at any look. Power: a variant 3 SDs of the paired difference
worse is stopped by seed 5.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from dashboards.sequential import RacePlan, decide

SIMS = 10_000
ALPHA = 0.05
Sampler = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def _gauss(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.standard_normal(shape)


def _student3(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.standard_t(3, shape)


def _collapse_both(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Variant and baseline each collapse (lose 20 SDs) on 10 % of seeds: the difference is symmetric."""
    arm = lambda: rng.standard_normal(shape) - 20.0 * (rng.random(shape) < 0.1)  # noqa: E731
    return (arm() - arm()) / math.sqrt(2.0)


def _collapse_variant(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Only the variant collapses on 10 % of seeds, re-centred so its mean difference is 0 (a null, skewed)."""
    x = rng.standard_normal(shape) - 20.0 * (rng.random(shape) < 0.1)
    return x + 2.0


NULLS: dict[str, Sampler] = {
    "gaussian": _gauss,
    "student_t3": _student3,
    "collapse_10pct": _collapse_both,
    "collapse_10pct_variant_only": _collapse_variant,
}


def stops(diffs: np.ndarray, plan: RacePlan) -> np.ndarray:
    """The first look (number of seeds) at which each simulated sweep stops, 0 for never; the same rule as
    ``decide`` (checked below), vectorised over sweeps."""
    first = np.zeros(diffs.shape[0], dtype=int)
    for n in range(plan.min_seeds, plan.max_seeds + 1):
        x = diffs[:, :n]
        mean = x.mean(axis=1)
        se = x.std(axis=1, ddof=1) / math.sqrt(n)
        spread = se > 1e-12 * np.maximum(1.0, np.abs(mean))
        stop = spread & (mean + plan.t_critical(n) * se < -plan.margin)
        first[(first == 0) & stop] = n
    return first


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize("margin", [0.0, 0.5])
@pytest.mark.parametrize("name", list(NULLS))
def test_wrongful_stop_rate_under_the_null(name: str, margin: float) -> None:
    rng = np.random.default_rng(20261128 + int(10 * margin))
    plan = RacePlan(alpha=ALPHA, margin=margin, min_seeds=2, max_seeds=10)
    diffs = NULLS[name](rng, (SIMS, 10)) - margin  # the edge of the null: worse by exactly the margin
    k = int((stops(diffs, plan) > 0).sum())
    lo, hi = wilson(k, SIMS)
    print(f"{name} margin={margin}: wrongful stops {k}/{SIMS} = {k / SIMS:.4f} (95% CI {lo:.4f}–{hi:.4f})")
    assert k / SIMS <= ALPHA


@pytest.mark.parametrize("seeds", [2, 3, 5, 10])
def test_wrongful_stop_rate_for_every_number_of_seeds(seeds: int) -> None:
    rng = np.random.default_rng(seeds)
    plan = RacePlan(alpha=ALPHA, min_seeds=2, max_seeds=seeds)
    k = int((stops(_student3(rng, (SIMS, seeds)), plan) > 0).sum())
    lo, hi = wilson(k, SIMS)
    print(f"student_t3, {seeds} seeds: wrongful stops {k / SIMS:.4f} (95% CI {lo:.4f}–{hi:.4f})")
    assert k / SIMS <= ALPHA


def test_power_three_sd_worse_is_stopped_by_seed_5() -> None:
    rng = np.random.default_rng(7)
    plan = RacePlan(alpha=ALPHA, min_seeds=2, max_seeds=10)
    first = stops(rng.standard_normal((SIMS, 10)) - 3.0, plan)
    power = float(((first > 0) & (first <= 5)).mean())
    lo, hi = wilson(int(power * SIMS), SIMS)
    print(f"power by seed 5 at -3 SD: {power:.4f} (95% CI {lo:.4f}–{hi:.4f}); by seed 10: {(first > 0).mean():.4f}")
    assert power >= 0.80


def test_vectorised_rule_is_decide() -> None:
    rng = np.random.default_rng(3)
    plan = RacePlan(alpha=ALPHA, margin=0.2, min_seeds=2, max_seeds=6)
    diffs = rng.standard_normal((300, 6)) - 1.5
    first = stops(diffs, plan)
    for row, f in zip(diffs, first, strict=True):
        got = next((n for n in range(2, 7) if decide({"b": list(row[:n])}, plan).stop), 0)
        assert got == f


def test_holm_across_baselines_and_reason() -> None:
    plan = RacePlan(alpha=0.05, min_seeds=2, max_seeds=5)
    worse = [-3.0, -3.2, -2.9, -3.1]
    same = [0.1, -0.2, 0.05, -0.1]
    d = decide({"ce": worse, "ps_kd": same}, plan)
    assert d.stop and d.against == ["ce"] and "vs ce: n=4" in d.reason
    assert not decide({"ce": same}, plan).stop
    assert not decide({"ce": worse[:1]}, plan).stop  # below min_seeds
    assert not decide({"ce": [-1.0, -1.0, -1.0]}, plan).stop  # no spread: no evidence
