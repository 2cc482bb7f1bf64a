"""The comparison report of a sweep (pure: a ``SweepData`` in, a typed ``Report`` out).

A trial counts when it FINISHED every epoch (not stopped early by ASHA); failed, killed, unfinished and stopped trials
are excluded and counted per variant. The objective's value per trial is its final (last-epoch) value. Every variant
is compared with every baseline on the objective; p-values are Holm-corrected across all those comparisons. ``low_n``
flags fewer than 3 counted seeds.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from dashboards.collect import SweepData
from dashboards.layout import METRICS, Marks, RunState, metric_info, pruned_variants
from dashboards.power import difference_sd, seeds_needed
from dashboards.stats import Compared, compare, describe, holm

MIN_N = 3
TABLE_METRICS = [*(f"final_{m}" for m in METRICS), "best_top1"]


class Objective(BaseModel):
    metric: str = Field(description="test/top1, test/top5, test/nll or test/ece")
    mode: Literal["max", "min"]
    column: str = Field(description="the trials' column it is judged on: final_<metric>")
    value: Literal["final"] = Field("final", description="judged on the last epoch's value, never the best epoch's")


class MetricStat(BaseModel):
    n: int
    mean: float | None
    std: float | None


class VariantStat(BaseModel):
    variant: str
    role: str
    method: str
    n: int
    mean: float | None = Field(description="mean of the objective's final value over the counted seeds")
    std: float | None
    ci95: list[float] | None
    excluded: int = Field(description="trials not counted: failed, killed, unfinished or stopped early")
    low_n: bool = Field(description="fewer than 3 counted seeds")
    seeds: list[int]
    knobs: dict[str, Any]
    metrics: dict[str, MetricStat]
    pruned: bool = Field(False, description="racing stopped this variant as clearly worse than a baseline; its "
                         "statistics are those of the seeds it finished before the stop")  # fmt: skip
    pruned_reason: str | None = Field(None, description="why racing stopped it: the test's bound and n at the "
                                      "stop, or its failed trials (racing.max_failed)")  # fmt: skip


class ComparisonStat(BaseModel):
    variant: str
    baseline: str
    delta: float | None = Field(description="mean(variant) − mean(baseline) of the objective")
    ci95: list[float] | None
    p: float | None
    p_holm: float | None
    test: str = Field(description="paired_t (same seeds), welch_t, or none (too few values)")
    n_variant: int
    n_baseline: int
    no_spread: bool = Field(False, description="every seed gave the same difference: the t test is degenerate")
    diff_sd: float | None = Field(
        None, description="SD of the per-seed differences (paired), else √(s²_variant + s²_baseline)"
    )
    seeds_needed: int | None = Field(
        None,
        description="estimate: the seeds at which a paired t test at alpha 0.05 has 80 % power for the observed delta "
        "with the observed diff_sd (docs/extend.md); None without a difference or a spread",
    )


class Report(BaseModel):
    """A sweep's comparison against its baselines; accuracies as fractions (JSON: README, "JSON report")."""

    sweep_id: str
    objective: Objective
    trials: int
    excluded: int
    baselines: list[str]
    variants: list[VariantStat]
    comparisons: list[ComparisonStat]

    def comparison(self, variant: str, baseline: str | None) -> ComparisonStat | None:
        return next((c for c in self.comparisons if c.variant == variant and c.baseline == baseline), None)

    def chosen_baseline(self, baseline: str | None) -> str | None:
        """``baseline`` when the sweep has it (ValueError otherwise), the first baseline when None."""
        if baseline is not None and baseline not in self.baselines:
            raise ValueError(f"no baseline {baseline!r} in this sweep; choose one of {self.baselines}")
        return baseline or (self.baselines[0] if self.baselines else None)


def objective_column(metric: str) -> str:
    """``test/top1`` → ``final_top1`` (the objective is judged on the last epoch)."""
    try:
        return f"final_{metric_info(metric).name}"
    except KeyError:
        raise ValueError(f"objective metric {metric!r} is not one of test/{{{','.join(METRICS)}}}") from None


def counted(trials: pd.DataFrame) -> pd.Series:
    if trials.empty:
        return pd.Series([], dtype=bool)
    return (trials["status"] == RunState.FINISHED) & ~trials["stopped_early"].astype(bool)


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _interval(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [float(ci[0]), float(ci[1])]


def _knob(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def variant_stat(data: SweepData, name: str, col: str, ok: pd.Series) -> tuple[VariantStat, dict[int, float]]:
    """One variant's (or baseline's) statistics over its counted trials, and its objective value per seed."""
    rows = data.trials[data.trials["variant"] == name]
    good = rows[ok[rows.index] & rows[col].notna()]
    seeds = {int(s): float(v) for s, v in zip(good["seed"], good[col], strict=True)}
    d = describe(list(seeds.values()))
    metrics = {}
    for m in TABLE_METRICS:
        dm = describe([float(v) for v in good[m].dropna()])
        metrics[m] = MetricStat(n=dm.n, mean=_num(dm.mean), std=_num(dm.std))
    stat = VariantStat(
        variant=name,
        role=str(rows["role"].iloc[0]),
        method=str(rows["method"].iloc[0]),
        n=d.n,
        mean=_num(d.mean),
        std=_num(d.std),
        ci95=_interval(d.ci95),
        excluded=int(len(rows) - len(good)),
        low_n=d.n < MIN_N,
        seeds=sorted(seeds),
        knobs={k: _knob(rows[k].iloc[0]) for k in data.knobs if k in rows and pd.notna(rows[k].iloc[0])},
        metrics=metrics,
        **_pruned(rows),
    )
    return stat, seeds


def _pruned(rows: pd.DataFrame) -> dict[str, Any]:
    """A variant is pruned while racing's decision holds (``pruned_variants``: a run it stopped or kept from starting
    that no extension reopened since); a reopened variant is a plain row again."""
    if "pruned" not in rows:
        return {}
    reason = pruned_variants(Marks.of(row) for row in rows.to_dict("records")).get(str(rows["variant"].iloc[0]))
    return {} if reason is None else {"pruned": True, "pruned_reason": reason}


def _comparison(
    variant: str, baseline: str, c: Compared, p_holm: float | None, values: dict[str, dict[int, float]]
) -> ComparisonStat:
    sd = difference_sd(values[variant], values[baseline])
    return ComparisonStat(
        diff_sd=sd,
        seeds_needed=seeds_needed(c.delta, sd),
        variant=variant,
        baseline=baseline,
        delta=_num(c.delta),
        ci95=_interval(c.ci95),
        p=_num(c.p),
        p_holm=_num(p_holm),
        test=c.test,
        n_variant=c.n_variant,
        n_baseline=c.n_baseline,
        no_spread=c.no_spread,
    )


def build_report(data: SweepData, objective: dict[str, str] | None = None) -> Report:
    spec = {"metric": "test/top1", "mode": "max", **(objective or {})}
    col = objective_column(spec["metric"])
    ok = counted(data.trials)
    variants: list[VariantStat] = []
    values: dict[str, dict[int, float]] = {}
    for name in dict.fromkeys(data.trials["variant"]) if len(data.trials) else []:
        stat, values[name] = variant_stat(data, name, col, ok)
        variants.append(stat)
    baselines = [v.variant for v in variants if v.role == "baseline"]
    tests = [(v.variant, b, compare(values[v.variant], values[b])) for v in variants if v.role == "variant"
             for b in baselines]  # fmt: skip
    adjusted = holm([c.p for _, _, c in tests])
    return Report(
        sweep_id=data.sweep_id,
        objective=Objective(metric=spec["metric"], mode=spec["mode"], column=col),
        trials=len(data.trials),
        excluded=sum(v.excluded for v in variants),
        baselines=baselines,
        variants=variants,
        comparisons=[_comparison(v, b, c, p, values) for (v, b, c), p in zip(tests, adjusted, strict=True)],
    )
