"""PNG figures of a sweep (matplotlib's object API: no pyplot state, safe in a server's worker threads).

- ``curves``: test top-1 per epoch, the mean over seeds of each variant with a ±std band;
- ``deltas``: Δ of the objective against each baseline with 95% CI whiskers (the zero line is "no difference");
- ``heatmap``: the mean objective over a 2-D grid, one panel per variant, when the sweep's grid has two knobs.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dashboards.collect import SweepData
from dashboards.layout import metric_info
from dashboards.report import Report, counted

PLOTS = ("curves", "deltas", "heatmap")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _message(text: str) -> bytes:
    fig = Figure(figsize=(6, 1.2))
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#555")
    return _png(fig)


def curves(data: SweepData, metric: str = "test/top1") -> bytes:
    """Counted trials only (as in the table): a failed run's partial curve would widen its variant's band."""
    ok = set(data.trials.loc[counted(data.trials), "run_id"]) if len(data.trials) else set()
    c = data.curves[(data.curves["metric"] == metric) & data.curves["run_id"].isin(ok)]
    if c.empty:
        return _message(f"no {metric} values yet")
    scale = metric_info(metric).scale  # accuracies are fractions; ECE is logged in %
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    for variant, g in c.groupby("variant", sort=False):
        stats = g.groupby("epoch")["value"].agg(["mean", "std", "count"]).sort_index()
        x, mean, std = stats.index.to_numpy(), stats["mean"].to_numpy() * scale, stats["std"].fillna(0).to_numpy()
        (line,) = ax.plot(x, mean, label=f"{variant} (n={int(stats['count'].max())})", lw=1.6)
        ax.fill_between(x, mean - std * scale, mean + std * scale, color=line.get_color(), alpha=0.18, lw=0)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{metric} (%)" if scale == 100 else metric)
    ax.set_title(f"{metric}: mean ± std over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def deltas(report: Report) -> bytes:
    comps = [c for c in report.comparisons if c.delta is not None]
    if not comps:
        return _message("no comparison yet (the sweep needs baselines and finished trials)")
    scale = metric_info(report.objective.column).scale
    baselines = list(dict.fromkeys(c.baseline for c in comps))
    variants = list(dict.fromkeys(c.variant for c in comps))
    longest = max(len(f"{v} − {b}") for v in variants for b in baselines)
    fig = Figure(figsize=(6.0 + 0.06 * longest, max(2.8, 0.9 + 0.32 * len(variants) * len(baselines))))
    ax = fig.add_subplot()
    y = 0
    ticks, labels = [], []
    for v in variants:
        for k, b in enumerate(baselines):
            c = report.comparison(v, b)
            if c is None or c.delta is None:
                continue
            d = c.delta * scale
            err = None if c.ci95 is None else [[d - c.ci95[0] * scale], [c.ci95[1] * scale - d]]
            ax.errorbar(d, y, xerr=err, fmt="o", color=f"C{k}", capsize=3, label=b if v == variants[0] else None)
            ticks.append(y)
            labels.append(f"{v} − {b}")
            y -= 1
    ax.axvline(0, color="#333", lw=0.8)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel(f"Δ {report.objective.metric}" + (" (points)" if scale == 100 else "") + ", 95% CI")
    ax.set_title("variant − baseline")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, title="baseline", title_fontsize=7)
    return _png(fig)


def grid_axes(data: SweepData) -> list[str]:
    """The knobs that vary within a variant (the sweep's grid); a heat-map is drawn when there are exactly two."""
    t = data.trials
    if t.empty:
        return []
    v = t[t["role"] == "variant"].copy()
    v["base"] = v["variant"].str.split("[", n=1).str[0]
    return [k for k in data.knobs if k in v and v.groupby("base")[k].nunique(dropna=True).max() > 1]


def heatmap(data: SweepData, report: Report) -> bytes | None:
    axes = grid_axes(data)
    if len(axes) != 2:
        return None
    means = {v.variant: v.mean for v in report.variants}
    t = data.trials[data.trials["role"] == "variant"].drop_duplicates("variant").copy()
    t["base"] = t["variant"].str.split("[", n=1).str[0]
    t["mean"] = t["variant"].map(means)
    scale = metric_info(report.objective.column).scale
    groups = list(t.groupby("base", sort=False))
    fig = Figure(figsize=(4.2 * len(groups), 3.8))
    for i, (base, g) in enumerate(groups):
        ax = fig.add_subplot(1, len(groups), i + 1)
        table = g.pivot_table(index=axes[0], columns=axes[1], values="mean", aggfunc="first") * scale
        im = ax.imshow(table.to_numpy(dtype=float), cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(table.columns)), [_tick(c) for c in table.columns], fontsize=8)
        ax.set_yticks(range(len(table.index)), [_tick(r) for r in table.index], fontsize=8)
        ax.set_xlabel(axes[1])
        ax.set_ylabel(axes[0])
        ax.set_title(str(base), fontsize=9)
        values = table.to_numpy(dtype=float)
        lo, hi = np.nanmin(values), np.nanmax(values)
        for (r, c), val in np.ndenumerate(values):
            if not np.isnan(val):  # dark text on the light end of viridis
                light = hi > lo and (val - lo) / (hi - lo) > 0.6
                ax.text(c, r, f"{val:.2f}", ha="center", va="center", color="k" if light else "w", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"mean {report.objective.metric} over seeds", fontsize=10)
    return _png(fig)


def _tick(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def render_plots(data: SweepData, report: Report) -> dict[str, bytes]:
    out = {"curves": curves(data), "deltas": deltas(report)}
    hm = heatmap(data, report)
    if hm is not None:
        out["heatmap"] = hm
    return out
