"""Statistics of a comparison (pure functions; scipy only for the t distribution).

- ``describe``: n, mean, sample std (n−1) and the 95% confidence interval of the mean (Student t, n−1 dof).
- ``compare``: the difference of means, variant − baseline, with its 95% CI and a two-sided p-value. Paired t over the
  seeds when both ran exactly the same seeds (a seed fixes the data order and the initialisation, so the pairs share
  noise), Welch's unequal-variance t otherwise.
- ``holm``: Holm's step-down correction of a family of p-values (the sweep's comparisons).

Fewer than two values leave std, CI and p undefined (None), never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import stats as st

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Described:
    n: int
    mean: float | None
    std: float | None
    ci95: tuple[float, float] | None


@dataclass(frozen=True)
class Compared:
    delta: float | None
    ci95: tuple[float, float] | None
    p: float | None
    test: Literal["paired_t", "welch_t", "none"]
    n_variant: int
    n_baseline: int
    no_spread: bool = False  # every pair (or every value) agreed exactly: the t test has no variance to judge by


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def _var(xs: Sequence[float]) -> float:
    m = _mean(xs)
    return math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def _t_interval(center: float, se: float, dof: float) -> tuple[float, float]:
    half = float(st.t.ppf(0.5 + CONFIDENCE / 2, dof)) * se
    return (center - half, center + half)


def _no_spread(se: float, center: float) -> bool:
    """A spread that is only floating-point noise (e.g. 355/359 − 354/359 on every seed)."""
    return se <= 1e-12 * max(1.0, abs(center))


def _t_p(center: float, se: float, dof: float) -> float:
    if se == 0.0:  # no spread at all: any non-zero difference is certain, a zero one is no evidence
        return 0.0 if center != 0.0 else 1.0
    return float(2.0 * st.t.sf(abs(center / se), dof))


def describe(values: Sequence[float]) -> Described:
    n = len(values)
    if n == 0:
        return Described(0, None, None, None)
    mean = _mean(values)
    if n == 1:
        return Described(1, mean, None, None)
    std = math.sqrt(_var(values))
    return Described(n, mean, std, _t_interval(mean, std / math.sqrt(n), n - 1))


def compare(variant: Mapping[int, float], baseline: Mapping[int, float]) -> Compared:
    """``variant`` and ``baseline`` map seed → value (finished trials only)."""
    nv, nb = len(variant), len(baseline)
    if nv == 0 or nb == 0:
        return Compared(None, None, None, "none", nv, nb)
    if set(variant) == set(baseline) and nv >= 2:
        diffs = [variant[s] - baseline[s] for s in sorted(variant)]
        d = _mean(diffs)
        se = math.sqrt(_var(diffs) / nv)
        se = 0.0 if _no_spread(se, d) else se
        return Compared(d, _t_interval(d, se, nv - 1), _t_p(d, se, nv - 1), "paired_t", nv, nb, se == 0.0)
    a, b = list(variant.values()), list(baseline.values())
    d = _mean(a) - _mean(b)
    if nv < 2 or nb < 2:
        return Compared(d, None, None, "none", nv, nb)
    va, vb = _var(a) / nv, _var(b) / nb
    se = math.sqrt(va + vb)
    se = 0.0 if _no_spread(se, d) else se
    # Welch–Satterthwaite degrees of freedom (both variances zero: any dof, the interval is a point)
    dof = (va + vb) ** 2 / (va**2 / (nv - 1) + vb**2 / (nb - 1)) if se > 0 else float(nv + nb - 2)
    return Compared(d, _t_interval(d, se, dof), _t_p(d, se, dof), "welch_t", nv, nb, se == 0.0)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values, in the input order; None (no test) stays None and does not count."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(tested)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
