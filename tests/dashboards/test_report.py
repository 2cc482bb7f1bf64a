"""The report, tables and plots of a hand-made sweep: numbers recomputed independently with numpy/scipy."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from dashboards.layout import metric_info
from dashboards.plots import grid_axes, render_plots
from dashboards.render import csv, header_label, latex, markdown
from dashboards.report import build_report
from tests.dashboards.fixtures import FAILED, TOP1, sweep


def seeds_of(variant: str) -> dict[int, float]:
    return {s: v for (name, s), v in TOP1.items() if name == variant}


def test_variant_statistics_and_exclusions() -> None:
    rep = build_report(sweep(), {"metric": "test/top1", "mode": "max"})
    by = {v.variant: v for v in rep.variants}
    assert rep.trials == 18 and rep.excluded == 1 and rep.baselines == ["ce", "label_smoothing"]
    assert [v.role for v in rep.variants] == ["variant"] * 4 + ["baseline"] * 2
    for name, v in by.items():
        xs = list(seeds_of(name).values())
        assert v.n == len(xs) and v.mean == pytest.approx(np.mean(xs))
        assert v.std == pytest.approx(np.std(xs, ddof=1))
        assert v.ci95 == pytest.approx(st.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=st.sem(xs)))
    failed = by[FAILED[0]]
    assert failed.excluded == 1 and failed.low_n and failed.seeds == [0, 1]
    assert by["ce"].metrics["final_nll"].mean == pytest.approx(np.mean([1.2 - x for x in seeds_of("ce").values()]))


def test_comparisons_paired_or_welch_with_holm() -> None:
    rep = build_report(sweep())
    assert len(rep.comparisons) == 8
    ps = []
    for c in rep.comparisons:
        a, b = seeds_of(c.variant), seeds_of(c.baseline)
        if set(a) == set(b):
            ref = st.ttest_rel([a[s] for s in sorted(a)], [b[s] for s in sorted(a)])
            assert c.test == "paired_t"
        else:
            ref = st.ttest_ind(list(a.values()), list(b.values()), equal_var=False)
            assert c.test == "welch_t" and c.variant == FAILED[0]
        assert c.p == pytest.approx(ref.pvalue)
        assert c.ci95 == pytest.approx(list(ref.confidence_interval(0.95)))
        assert c.delta == pytest.approx(np.mean(list(a.values())) - np.mean(list(b.values())))
        ps.append(c.p)
    order = np.argsort(ps)
    m = len(ps)
    expected = np.maximum.accumulate([min(1.0, (m - r) * ps[i]) for r, i in enumerate(order)])
    for r, i in enumerate(order):
        assert rep.comparisons[i].p_holm == pytest.approx(expected[r])


def test_objective_must_be_a_test_metric() -> None:
    with pytest.raises(ValueError, match="not one of"):
        build_report(sweep(), {"metric": "train/loss", "mode": "min"})
    assert build_report(sweep(), {"metric": "test/nll", "mode": "min"}).objective.column == "final_nll"


def test_markdown_bolds_the_best_and_escapes_labels() -> None:
    md = markdown(build_report(sweep()))
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + 6 and len({ln.count(" | ") for ln in lines[2:]}) == 1
    best = max(np.mean(list(seeds_of(v).values())) for v in {k for k, _ in TOP1})
    assert f"**{best * 100:.2f} ±" in md
    assert 'rskd\\[a=1,b="x"\\]' in md and "| ref |" in md and "†" in md


def test_a_degenerate_t_test_is_marked() -> None:
    data = sweep()
    t = data.trials
    for seed in (0, 1, 2):  # the variant beats ce by exactly the same margin on every seed
        ce = float(t.loc[(t["variant"] == "ce") & (t["seed"] == seed), "final_top1"].iloc[0])
        t.loc[(t["variant"] == 'rskd[a=1,b="x"]') & (t["seed"] == seed), "final_top1"] = ce + 0.01
    rep = build_report(data)
    (c,) = [c for c in rep.comparisons if c.variant == 'rskd[a=1,b="x"]' and c.baseline == "ce"]
    assert c.no_spread and c.p == 0.0
    assert "0‡ |" in markdown(rep) and "$^\\ddagger$" in latex(rep)


def test_latex_is_well_formed_booktabs() -> None:
    tex = latex(build_report(sweep()), baseline="label_smoothing")
    for env in ("table", "tabular"):
        assert tex.count(f"\\begin{{{env}}}") == tex.count(f"\\end{{{env}}}") == 1
    assert tex.index("\\toprule") < tex.index("\\midrule") < tex.index("\\bottomrule")
    spec = re.search(r"\\begin\{tabular\}\{([lr]+)\}", tex)
    assert spec is not None
    body = tex[tex.index("\\toprule") : tex.index("\\bottomrule")]
    rows = [r for r in body.split("\n") if r.endswith(r"\\")]
    assert len(rows) == 7 and all(r.count(" & ") == len(spec.group(1)) - 1 for r in rows)
    assert tex.count("{") == tex.count("}") and "\\textbf{" in tex and "\\_" in tex
    assert "label\\_smoothing" in tex and "& ref &" in tex


def test_csv_round_trips_through_pandas() -> None:
    rep = build_report(sweep())
    df = pd.read_csv(io.StringIO(csv(rep, "ce")))
    assert list(df["variant"]) == [v.variant for v in rep.variants]
    by = {v.variant: v for v in rep.variants}
    for _, row in df.iterrows():
        assert row["final_top1_mean"] == pytest.approx(by[row["variant"]].mean, rel=1e-9)
        assert row["n"] == by[row["variant"]].n
    comps = {c.variant: c for c in rep.comparisons if c.baseline == "ce"}
    v = rep.variants[0].variant
    ci95 = comps[v].ci95
    assert ci95 is not None and df.loc[0, "delta_ci_lo"] == pytest.approx(ci95[0], rel=1e-9)
    with pytest.raises(ValueError, match="no baseline"):
        csv(rep, "nope")


def test_plots_are_pngs_and_the_grid_gets_a_heatmap() -> None:
    data = sweep()
    assert grid_axes(data) == ["a", "b"]
    plots = render_plots(data, build_report(data))
    assert set(plots) == {"curves", "deltas", "heatmap"}
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) > 5000 for p in plots.values())


def test_report_json_keeps_the_documented_shape() -> None:
    """README "JSON report": the keys of the report, its variants and its comparisons, accuracies as fractions."""
    rep = build_report(sweep()).model_dump(mode="json")
    assert list(rep) == ["sweep_id", "objective", "trials", "excluded", "baselines", "variants", "comparisons"]
    assert rep["objective"] == {"metric": "test/top1", "mode": "max", "column": "final_top1", "value": "final"}
    assert list(rep["variants"][0]) == ["variant", "role", "method", "n", "mean", "std", "ci95", "excluded", "low_n",
                                        "seeds", "knobs", "metrics", "pruned", "pruned_reason"]  # fmt: skip
    assert set(rep["variants"][0]["metrics"]) == {"final_top1", "final_top5", "final_nll", "final_ece", "best_top1"}
    assert list(rep["variants"][0]["metrics"]["final_top1"]) == ["n", "mean", "std"]
    assert list(rep["comparisons"][0]) == ["variant", "baseline", "delta", "ci95", "p", "p_holm", "test", "n_variant",
                                           "n_baseline", "no_spread", "diff_sd", "seeds_needed"]  # fmt: skip
    assert 0 < rep["variants"][0]["mean"] < 1


def test_metric_facts() -> None:
    assert [metric_info(k).name for k in ("test/top1", "final/test_top5", "final_nll", "best_top1")] == [
        "top1", "top5", "nll", "top1"
    ]  # fmt: skip
    assert metric_info("final_top1").scale == 100.0 and metric_info("final_ece").scale == 1.0  # ECE is logged in %
    assert metric_info("test/nll").best_of([0.3, 0.2]) == 0.2 and metric_info("test/top1").best_of([0.3, 0.2]) == 0.3
    assert [header_label(c) for c in ("final_top1", "best_top1", "final_nll")] == ["Top-1", "Best top-1", "NLL"]
