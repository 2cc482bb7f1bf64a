"""How many seeds a comparison needs: the n at which a two-sided paired t test at level alpha has the asked power for
the difference observed so far, taking the observed SD of the per-seed differences as the true one.

An estimate (docs/extend.md): the observed Δ and SD are themselves noisy (with 3 seeds the SD may be off by a factor
of 2), the per-seed differences are assumed normal and independent across seeds, and the level is the plain alpha —
the report's Holm correction over many comparisons asks for more. Power of the paired t test with n pairs and
standardised effect d = |Δ|/SD: P(|T| > t_{1−α/2, n−1}) for T noncentral t with n−1 degrees of freedom and
noncentrality d·√n.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from scipy import stats as st

ALPHA = 0.05  # the report's level: its 95 % intervals
POWER = 0.8
MAX_SEEDS = 10_000


def paired_power(n: int, effect: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t test with ``n`` pairs for the standardised effect |Δ|/SD."""
    if n < 2:
        return 0.0
    dof = n - 1
    crit = float(st.t.ppf(1 - alpha / 2, dof))
    nc = abs(effect) * math.sqrt(n)
    return float(st.nct.sf(crit, dof, nc) + st.nct.cdf(-crit, dof, nc))


def seeds_needed(delta: float | None, sd: float | None, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The smallest n ≥ 2 whose paired t test has ``power`` for ``delta`` given ``sd``; None when it cannot be said
    (no difference, no spread, or more than 10,000 seeds)."""
    if delta is None or sd is None or not math.isfinite(delta) or not math.isfinite(sd) or sd <= 0 or delta == 0:
        return None
    effect = abs(delta) / sd
    # normal approximation as the start, then walk: power grows with n
    z = float(st.norm.ppf(1 - alpha / 2) + st.norm.ppf(power))
    n = max(2, math.ceil((z / effect) ** 2) - 2)
    if n > MAX_SEEDS:
        return None
    while paired_power(n, effect, alpha) < power:
        n += 1
        if n > MAX_SEEDS:
            return None
    while n > 2 and paired_power(n - 1, effect, alpha) >= power:
        n -= 1
    return n


def difference_sd(variant: Mapping[int, float], baseline: Mapping[int, float]) -> float | None:
    """The SD of the per-seed differences when both ran the same seeds (≥ 2); otherwise √(s²_v + s²_b), what the
    differences' SD would be for independent runs."""

    def var(xs: list[float]) -> float:
        m = math.fsum(xs) / len(xs)
        return math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1)

    if set(variant) == set(baseline) and len(variant) >= 2:
        return math.sqrt(var([variant[s] - baseline[s] for s in variant]))
    if len(variant) >= 2 and len(baseline) >= 2:
        return math.sqrt(var(list(variant.values())) + var(list(baseline.values())))
    return None
