"""The comparison report of a sweep (pure: a ``SweepData`` in, a JSON-ready dict out).

A trial counts when it FINISHED every epoch (not stopped early by ASHA); failed, killed, unfinished and stopped trials
are excluded and counted per variant. The objective's value per trial is its final (last-epoch) value. Every variant
is compared with every baseline on the objective; p-values are Holm-corrected across all those comparisons. ``low_n``
flags fewer than 3 counted seeds.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dashboards.collect import METRICS, SweepData
from dashboards.stats import compare, describe, holm

MIN_N = 3
TABLE_METRICS = [*(f"final_{m}" for m in METRICS), "best_top1"]


def objective_column(metric: str) -> str:
    """``test/top1`` → ``final_top1`` (the objective is judged on the last epoch)."""
    name = metric.removeprefix("final/").removeprefix("best/").removeprefix("test/").removeprefix("test_")
    if name not in METRICS:
        raise ValueError(f"objective metric {metric!r} is not one of test/{{{','.join(METRICS)}}}")
    return f"final_{name}"


def counted(trials: pd.DataFrame) -> pd.Series:
    if trials.empty:
        return pd.Series([], dtype=bool)
    return (trials["status"] == "FINISHED") & ~trials["stopped_early"].astype(bool)


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _interval(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [float(ci[0]), float(ci[1])]


def build_report(data: SweepData, objective: dict[str, str] | None = None) -> dict[str, Any]:
    objective = {"metric": "test/top1", "mode": "max", **(objective or {})}
    col = objective_column(objective["metric"])
    trials = data.trials
    ok = counted(trials)
    variants: list[dict[str, Any]] = []
    values: dict[str, dict[int, float]] = {}
    roles: dict[str, str] = {}
    for name in dict.fromkeys(trials["variant"]) if len(trials) else []:
        rows = trials[trials["variant"] == name]
        good = rows[ok[rows.index] & rows[col].notna()]
        seeds = {int(s): float(v) for s, v in zip(good["seed"], good[col], strict=True)}
        values[name] = seeds
        roles[name] = str(rows["role"].iloc[0])
        d = describe(list(seeds.values()))
        metrics = {}
        for m in TABLE_METRICS:
            dm = describe([float(v) for v in good[m].dropna()])
            metrics[m] = {"n": dm.n, "mean": _num(dm.mean), "std": _num(dm.std)}
        variants.append(
            {
                "variant": name,
                "role": roles[name],
                "method": str(rows["method"].iloc[0]),
                "n": d.n,
                "mean": _num(d.mean),
                "std": _num(d.std),
                "ci95": _interval(d.ci95),
                "excluded": int(len(rows) - len(good)),
                "low_n": d.n < MIN_N,
                "seeds": sorted(seeds),
                "knobs": {k: _knob(rows[k].iloc[0]) for k in data.knobs if k in rows and pd.notna(rows[k].iloc[0])},
                "metrics": metrics,
            }
        )
    baselines = [v for v in values if roles[v] == "baseline"]
    comparisons: list[dict[str, Any]] = []
    tests = [(v, b, compare(values[v], values[b])) for v in values if roles[v] == "variant" for b in baselines]
    adjusted = holm([c.p for _, _, c in tests])
    for (v, b, c), p_holm in zip(tests, adjusted, strict=True):
        comparisons.append(
            {"variant": v, "baseline": b, "delta": _num(c.delta), "ci95": _interval(c.ci95), "p": _num(c.p),
             "p_holm": _num(p_holm), "test": c.test, "n_variant": c.n_variant, "n_baseline": c.n_baseline,
             "no_spread": c.no_spread}
        )  # fmt: skip
    return {
        "sweep_id": data.sweep_id,
        "objective": {**objective, "column": col, "value": "final"},
        "trials": len(trials),
        "excluded": sum(v["excluded"] for v in variants),
        "baselines": baselines,
        "variants": variants,
        "comparisons": comparisons,
    }


def _knob(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
