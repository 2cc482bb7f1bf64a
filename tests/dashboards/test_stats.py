"""dashboards.stats against scipy.stats and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from dashboards.stats import compare, describe, holm

A = {0: 0.912, 1: 0.934, 2: 0.925, 3: 0.941, 4: 0.918}
B = {0: 0.901, 1: 0.915, 2: 0.921, 3: 0.922, 4: 0.899}


def test_describe_matches_numpy_and_scipy() -> None:
    xs = list(A.values())
    d = describe(xs)
    assert d.n == 5 and d.mean == pytest.approx(np.mean(xs)) and d.std == pytest.approx(np.std(xs, ddof=1))
    lo, hi = st.t.interval(0.95, 4, loc=np.mean(xs), scale=st.sem(xs))
    assert d.ci95 == pytest.approx((lo, hi))


def test_describe_by_hand_and_small_n() -> None:
    d = describe([1.0, 2.0, 3.0])  # mean 2, s = 1, se = 1/sqrt(3), t_{0.975,2} = 4.302653
    assert d.std == pytest.approx(1.0)
    assert d.ci95 == pytest.approx((2 - 4.302653 / math.sqrt(3), 2 + 4.302653 / math.sqrt(3)), abs=1e-6)
    assert describe([0.5]) == describe([0.5]) and describe([0.5]).std is None and describe([0.5]).ci95 is None
    assert describe([]).mean is None


def test_paired_when_the_seeds_are_the_same() -> None:
    c = compare(A, B)
    a, b = np.array(list(A.values())), np.array(list(B.values()))
    ref = st.ttest_rel(a, b)
    assert c.test == "paired_t" and c.delta == pytest.approx(float(np.mean(a - b)))
    assert c.p == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert c.ci95 == pytest.approx((ci.low, ci.high))


def test_welch_when_the_seeds_differ() -> None:
    b = {5: 0.901, 6: 0.915, 7: 0.921, 8: 0.890}
    c = compare(A, b)
    ref = st.ttest_ind(list(A.values()), list(b.values()), equal_var=False)
    assert c.test == "welch_t" and c.p == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert c.ci95 == pytest.approx((ci.low, ci.high))
    assert c.delta == pytest.approx(np.mean(list(A.values())) - np.mean(list(b.values())))
    assert (c.n_variant, c.n_baseline) == (5, 4)


def test_partial_overlap_is_welch_and_too_few_is_no_test() -> None:
    assert compare({0: 0.9, 1: 0.8, 2: 0.85}, {0: 0.7, 1: 0.75}).test == "welch_t"
    one = compare({0: 0.9}, {0: 0.8})
    assert one.test == "none" and one.delta == pytest.approx(0.1) and one.p is None and one.ci95 is None
    assert compare({}, B).delta is None


def test_no_spread_gives_a_point_interval() -> None:
    c = compare({0: 0.75, 1: 0.5}, {0: 0.5, 1: 0.25})  # every difference is exactly 0.25
    assert c.test == "paired_t" and c.p == 0.0 and c.ci95 == pytest.approx((0.25, 0.25))
    assert compare({0: 0.9, 1: 0.8}, {0: 0.9, 1: 0.8}).p == 1.0
    # one more correct image out of 359 on every seed: equal differences up to floating-point noise
    noisy = compare({0: 355 / 359, 1: 351 / 359, 2: 350 / 359}, {0: 354 / 359, 1: 350 / 359, 2: 349 / 359})
    assert noisy.no_spread and noisy.p == 0.0 and noisy.ci95 == pytest.approx((1 / 359, 1 / 359))
    assert not compare(A, B).no_spread


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.02, 0.03, 0.5 (m = 4): 0.04, 0.06, 0.06 (monotone), 0.5
    assert holm([0.03, 0.5, 0.01, None, 0.02]) == pytest.approx([0.06, 0.5, 0.04, None, 0.06])
    assert holm([0.4, 0.6]) == pytest.approx([0.8, 0.8])  # capped at 1 then monotone
    assert holm([]) == []
