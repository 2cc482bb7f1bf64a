"""PNG figures of a sweep (matplotlib's object API: no pyplot state, safe in a server's worker threads).

- ``curves``: test top-1 per epoch, the mean over seeds of each variant with a ±std band;
- ``deltas``: Δ of the objective against each baseline with 95% CI whiskers (the zero line is "no difference");
- ``heatmap``: the mean objective over a 2-D grid, one panel per variant, when the sweep's grid has two knobs.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dashboards.collect import SweepData
from dashboards.layout import metric_info
from dashboards.report import ComparisonStat, Report, counted

PLOTS = ("curves", "deltas", "heatmap")
LEGEND_INSIDE = 6  # more legend entries than this go beside the axes


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _message(text: str) -> bytes:
    fig = Figure(figsize=(6, 1.2))
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#555")
    return _png(fig)


def palette(n: int) -> list[Any]:
    """``n`` distinguishable colours: tab10, tab20, then evenly spaced hues (the default cycle repeats after 10)."""
    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:  # tab20's dark shades first, then the light ones: neighbours in the legend differ in hue
        return [matplotlib.colormaps["tab20"](i) for i in [*range(0, 20, 2), *range(1, 20, 2)][:n]]
    return [matplotlib.colormaps["turbo"](0.05 + 0.9 * i / (n - 1)) for i in range(n)]


def _legend(ax: Any, entries: int, inside: str) -> None:
    """At ``inside`` within the axes for a few entries; to the right of them for many, where it cannot cover a line."""
    if entries <= LEGEND_INSIDE:
        ax.legend(fontsize=7, loc=inside)
    else:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def curves_figure(data: SweepData, metric: str = "test/top1") -> Figure | None:
    """Counted trials only (as in the table): a failed run's partial curve would widen its variant's band. The
    legend lists the variants best last value first; baselines are dashed."""
    ok = set(data.trials.loc[counted(data.trials), "run_id"]) if len(data.trials) else set()
    c = data.curves[(data.curves["metric"] == metric) & data.curves["run_id"].isin(ok)]
    if c.empty:
        return None
    info = metric_info(metric)
    baselines = set(data.trials.loc[data.trials["role"] == "baseline", "variant"])
    stats = {v: g.groupby("epoch")["value"].agg(["mean", "std", "count"]).sort_index() for v, g in c.groupby("variant")}
    order = sorted(stats, key=lambda v: stats[v]["mean"].iloc[-1], reverse=info.higher_is_better)
    many = len(order) > LEGEND_INSIDE
    fig = Figure(figsize=(9.5 if many else 7.5, 4.5))
    ax = fig.add_subplot()
    for variant, color in zip(order, palette(len(order))):
        st = stats[variant]
        x, mean, std = st.index.to_numpy(), st["mean"].to_numpy() * info.scale, st["std"].fillna(0).to_numpy()
        label = f"{variant} (n={int(st['count'].max())}): {mean[-1]:.2f}"
        base = variant in baselines
        ax.plot(x, mean, label=label, lw=2.0 if base else 1.6, color=color, ls="--" if base else "-")
        ax.fill_between(x, mean - std * info.scale, mean + std * info.scale, color=color, alpha=0.08 if many else 0.18,
                        lw=0)  # fmt: skip
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{metric} (%)" if info.scale == 100 else metric)
    ax.set_title(f"{metric}: mean ± std over seeds")
    ax.grid(alpha=0.3)
    _legend(ax, len(order), inside="lower right")
    return fig


def curves(data: SweepData, metric: str = "test/top1") -> bytes:
    fig = curves_figure(data, metric)
    return _message(f"no {metric} values yet") if fig is None else _png(fig)


def delta_span(points: list[tuple[float, list[float] | None, bool]]) -> float:
    """Half-width of the Δ axis from the comparisons with n ≥ 3 (all, if none has): their estimates and typical CI
    fit; a far wider CI, or an n = 2 estimate (t = 12.7) far out, is clipped at the edge with an arrowhead instead of
    squeezing every other comparison into a dot."""
    points = [p for p in points if p[2]] or points
    halves = [(ci[1] - ci[0]) / 2 for _, ci, _ in points if ci is not None]
    typical = float(np.median(halves)) if halves else 0.0
    largest = max([abs(d) for d, _, _ in points] + [abs(e) for _, ci, _ in points if ci is not None for e in ci])
    return max(min(largest, max(1.5 * max(abs(d) for d, _, _ in points), 3.0 * typical)), 1e-9) * 1.08


def deltas_figure(report: Report) -> Figure | None:
    comps = [c for c in report.comparisons if c.delta is not None]
    if not comps:
        return None
    scale = metric_info(report.objective.column).scale
    baselines = list(dict.fromkeys(c.baseline for c in comps))
    variants = list(dict.fromkeys(c.variant for c in comps))
    span = delta_span([_scaled(c, scale) for c in comps])
    longest = max(len(f"{v} − {b}") for v in variants for b in baselines)
    fig = Figure(figsize=(6.0 + 0.06 * longest, max(2.8, 0.9 + 0.32 * len(variants) * len(baselines))))
    ax = fig.add_subplot()
    ticks: list[int] = []
    labels: list[str] = []
    for v in variants:
        for k, b in enumerate(baselines):
            c = report.comparison(v, b)
            if c is None or c.delta is None:
                continue
            y = -len(ticks)
            d, ci, enough = _scaled(c, scale)
            _delta_point(ax, (d, ci, y), span, f"C{k}", not enough, b if v == variants[0] else None)
            ticks.append(y)
            labels.append(f"{v} − {b}")
    ax.axvline(0, color="#333", lw=0.8)
    ax.set_xlim(-span, span)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel(f"Δ {report.objective.metric}" + (" (points)" if scale == 100 else "") + ", 95% CI")
    ax.set_title("variant − baseline   (hollow: n < 3;  ▸ CI beyond the axis)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, title="baseline", title_fontsize=7)
    return fig


def _scaled(c: ComparisonStat, scale: float) -> tuple[float, list[float] | None, bool]:
    """Δ and its CI in the units shown, and whether both sides have n ≥ 3."""
    assert c.delta is not None
    return c.delta * scale, None if c.ci95 is None else [e * scale for e in c.ci95], min(c.n_variant, c.n_baseline) >= 3


def _delta_point(
    ax: Any, point: tuple[float, list[float] | None, float], span: float, color: str, low_n: bool, label: str | None
) -> None:
    """One comparison (Δ, CI, row): the estimate, its CI clipped to ±span with an arrowhead where it runs on."""
    d, ci, y = point
    face = "white" if low_n else color
    marker = ">" if d > span else "<" if d < -span else "o"  # an estimate beyond the axis sits at its edge
    ax.plot([max(min(d, span), -span)], [y], marker, color=color, mfc=face, label=label, zorder=3, clip_on=False)
    if ci is None:
        return
    lo, hi = max(ci[0], -span), min(ci[1], span)
    ax.plot([lo, hi], [y, y], color=color, lw=1.2)
    for end, clipped, marker in ((lo, ci[0] < -span, "<"), (hi, ci[1] > span, ">")):
        ax.plot([end], [y], marker if clipped else "|", color=color, ms=6 if clipped else 8, clip_on=False)


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


def deltas(report: Report) -> bytes:
    fig = deltas_figure(report)
    return _message("no comparison yet (the sweep needs baselines and finished trials)") if fig is None else _png(fig)


def render_plots(data: SweepData, report: Report) -> dict[str, bytes]:
    out = {"curves": curves(data), "deltas": deltas(report)}
    hm = heatmap(data, report)
    if hm is not None:
        out["heatmap"] = hm
    return out
