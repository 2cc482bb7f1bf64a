"""Seed-aware racing: a sequential one-sided test, valid under optional stopping, that a variant is worse than its
baseline by more than a margin (pure functions; scipy only for the t distribution).

The design is a group-sequential paired t test with a **Bonferroni (uniform) alpha-spending** over the planned looks.
A sweep with ``N`` seeds and ``min_seeds = k`` is looked at after each paired seed ``n = k … N``: ``L = N − k + 1``
looks, each spending ``alpha / L``. At look ``n`` the paired differences ``d_i = s·(variant_i − baseline_i)``
(``s = +1`` when higher is better, ``−1`` otherwise, so ``d < 0`` is always "worse") give

    d̄ₙ, SEₙ = sₙ/√n,   upper boundₙ = d̄ₙ + t_{n−1, 1−alpha/L} · SEₙ,

and the variant is stopped when ``upper boundₙ < −margin`` (equivalently the one-sided p-value of
``H0: E[d] ≥ −margin`` is ≤ alpha/L). By the union bound, P(any wrongful stop over all L looks) ≤ L · alpha/L =
alpha, whatever the dependence between looks and whenever the looks are taken (after every seed, or skipping some):
this is what makes the test valid under optional stopping, which a fixed-n t test re-run at each look is not.
Unlike the O'Brien–Fleming or Lan–DeMets boundaries it needs no joint-normal approximation, which is poor at 2–10
seeds, and it spends evenly, which is what early stopping wants (a broken variant is caught at seed 3–5).

With several baselines (``baseline: each``) a variant is stopped when it is worse than *any* of them; the family of
``m`` baselines is Holm-corrected at each look at level alpha/L (the first rejection of Holm is Bonferroni at
alpha/(L·m), so P(any wrongful stop of the family) ≤ alpha).

Assumption: each look's t test is valid at its level — exact for Gaussian differences, conservative for symmetric
heavy tails (Student-t(3)) and for differences with a long tail on the "worse" side (a collapsing seed); the
simulation test ``tests/dashboards/test_racing_error.py`` measures the wrongful-stop rate under those. A look whose
differences have no spread (every seed gave the same difference) never stops: the t test has nothing to judge by.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

from scipy import stats as st

from dashboards.stats import holm


@dataclass(frozen=True)
class RacePlan:
    """The planned looks: after each paired seed from ``min_seeds`` to ``max_seeds``."""

    alpha: float = 0.05
    margin: float = 0.0
    min_seeds: int = 2
    max_seeds: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        if self.margin < 0:
            raise ValueError(f"margin must be ≥ 0, got {self.margin}")
        if not 2 <= self.min_seeds <= self.max_seeds:
            raise ValueError(f"need 2 ≤ min_seeds ≤ max_seeds, got {self.min_seeds}, {self.max_seeds}")

    @property
    def looks(self) -> int:
        return self.max_seeds - self.min_seeds + 1

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / self.looks

    def t_critical(self, n: int) -> float:
        """The one-sided critical value of a look with ``n`` pairs."""
        return _t_quantile(1.0 - self.alpha_per_look, n - 1)


@cache
def _t_quantile(q: float, dof: int) -> float:
    return float(st.t.ppf(q, dof))


@dataclass(frozen=True)
class Look:
    """One baseline's test at one look: ``delta`` = mean of the signed differences (negative = worse), ``upper`` its
    upper confidence bound at level 1 − alpha/L, ``p`` the one-sided p-value of "not worse by more than margin"."""

    baseline: str
    n: int
    delta: float | None
    upper: float | None
    p: float | None

    def describe(self, margin: float) -> str:
        if self.delta is None or self.upper is None:
            return f"vs {self.baseline}: n={self.n}, no test"
        return (
            f"vs {self.baseline}: n={self.n} paired seeds, mean difference {self.delta:+.4g}, "
            f"upper bound {self.upper:+.4g} < {-margin or 0.0:+.4g} (-margin)"
        )


@dataclass(frozen=True)
class RaceDecision:
    stop: bool
    looks: list[Look] = field(default_factory=list)
    against: list[str] = field(default_factory=list)  # the baselines the variant is worse than (Holm-rejected)
    reason: str = ""


def look(baseline: str, diffs: Sequence[float], plan: RacePlan) -> Look:
    """The test of one baseline's paired signed differences (in the order of the seeds)."""
    n = len(diffs)
    if n < plan.min_seeds or n < 2:
        return Look(baseline, n, None, None, None)
    n = min(n, plan.max_seeds)
    xs = list(diffs)[:n]
    mean = math.fsum(xs) / n
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    se = math.sqrt(var / n)
    if se <= 1e-12 * max(1.0, abs(mean)):  # no spread: no evidence either way
        return Look(baseline, n, mean, None, None)
    upper = mean + plan.t_critical(n) * se
    p = float(st.t.cdf((mean + plan.margin) / se, n - 1))
    return Look(baseline, n, mean, upper, p)


def signed_differences(
    variant: Mapping[int, float], baseline: Mapping[int, float], seeds: Sequence[int], higher_is_better: bool
) -> list[float]:
    """The paired differences, in ``seeds`` order, for seeds both have (positive = variant better)."""
    s = 1.0 if higher_is_better else -1.0
    return [s * (variant[x] - baseline[x]) for x in seeds if x in variant and x in baseline]


def decide(diffs_by_baseline: Mapping[str, Sequence[float]], plan: RacePlan) -> RaceDecision:
    """Stop the variant when, at this look, Holm at level alpha/L rejects "not worse" for at least one baseline."""
    looks = [look(b, d, plan) for b, d in diffs_by_baseline.items()]
    adjusted = holm([lk.p for lk in looks])
    against = [lk for lk, p in zip(looks, adjusted, strict=True) if p is not None and p <= plan.alpha_per_look]
    if not against:
        return RaceDecision(False, looks)
    reason = "; ".join(lk.describe(plan.margin) for lk in against) + (
        f" (alpha {plan.alpha:g} over {plan.looks} looks, Holm over {len(looks)} baseline(s))"
    )
    return RaceDecision(True, looks, [lk.baseline for lk in against], reason)
