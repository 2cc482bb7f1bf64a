"""Plots stay readable with many variants: distinct colours, the legend beside the axes, the Δ axis not stretched by
one n = 2 comparison's enormous CI."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.colors import to_hex

from dashboards.collect import SweepData, frames
from dashboards.plots import curves_figure, delta_span, deltas_figure, render_plots
from dashboards.report import build_report

VARIANTS = [f"rskd_{i:02d}" for i in range(16)]


def many_variants() -> SweepData:
    """16 variants and CE, 3 seeds each (one variant with 2: its CI is t(1)=12.7 wide), 4 epochs."""
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    for variant in ["ce", *VARIANTS]:
        seeds = 2 if variant == "rskd_15" else 3
        for seed in range(seeds):
            top1 = 0.90 + 0.004 * VARIANTS.index(variant) if variant in VARIANTS else 0.93
            top1 += rng.normal(0, 0.2 if variant == "rskd_15" else 0.005)
            run = f"run-{variant}-{seed}"
            rows.append({"trial_id": f"t-{variant}-{seed}", "run_id": run, "experiment_id": "1", "variant": variant,
                         "role": "baseline" if variant == "ce" else "variant", "method": variant.split("_")[0],
                         "seed": seed, "status": "FINISHED", "stopped_early": False, "epochs_done": 4,
                         **{f"{k}_{m}": top1 if m.startswith("top") else 1.2 - top1
                            for k in ("final", "best") for m in ("top1", "top5", "nll", "ece")}})  # fmt: skip
            curves += [{"run_id": run, "variant": variant, "seed": seed, "metric": "test/top1", "epoch": e,
                        "value": top1 * (e + 1) / 4} for e in range(4)]  # fmt: skip
    return frames("sw-many", rows, curves)


def test_curves_of_many_variants_have_distinct_colours_and_a_legend_beside_the_axes() -> None:
    data = many_variants()
    fig = curves_figure(data)
    assert fig is not None
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 17 and len({to_hex(line.get_color()) for line in lines}) == 17
    assert [line.get_linestyle() for line in lines].count("--") == 1  # the baseline
    legend = ax.get_legend()
    assert legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # beside the axes, not over the lines
    texts = [t.get_text() for t in legend.get_texts()]
    finals = [float(t.rsplit(": ", 1)[1]) for t in texts]
    assert finals == sorted(finals, reverse=True)  # best first


def test_one_enormous_ci_does_not_stretch_the_delta_axis() -> None:
    data = many_variants()
    report = build_report(data)
    wide = report.comparison("rskd_15", "ce")
    assert (
        wide is not None and wide.ci95 is not None and wide.ci95[1] - wide.ci95[0] > 1.0
    )  # fractions: over 100 points
    fig = deltas_figure(report)
    assert fig is not None
    lo, hi = fig.axes[0].get_xlim()
    others = [c for c in report.comparisons if c.variant != "rskd_15" and c.delta is not None]
    assert hi == -lo and hi < 0.25 * (wide.ci95[1] - wide.ci95[0]) * 100
    assert all(abs(c.delta) * 100 < hi for c in others)  # every other estimate is on the axis
    assert delta_span([(1.0, [0.5, 1.5], True), (-2.0, [-3.0, -1.0], True)]) >= 3.0  # narrow CIs: nothing clipped
    assert delta_span([(30.0, [-500.0, 560.0], False)]) > 30.0  # only n = 2 comparisons: their estimates fit
    assert all(p.startswith(b"\x89PNG") for p in render_plots(data, report).values())
