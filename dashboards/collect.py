"""A sweep's child runs in MLflow → a tidy table, one row per trial, and the per-epoch test curves.

Columns of ``SweepData.trials``: trial_id, run_id, experiment_id, variant, role, method, seed, status, stopped_early,
epochs_done, ``final_<m>`` and ``best_<m>`` for m in top1, top5, nll, ece (final = the last epoch's value; best = the
best epoch's, max for accuracies, min for NLL and ECE), and one column per swept knob (its dotted path). Accuracies
are fractions; ECE is in % as rskd_core logs it (METHODS.md).
``SweepData.curves``: run_id, variant, seed, metric, epoch, value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

METRICS = ("top1", "top5", "nll", "ece")
HIGHER_IS_BETTER = {"top1": True, "top5": True, "nll": False, "ece": False}
TRIAL_COLUMNS = [
    "trial_id", "run_id", "experiment_id", "variant", "role", "method", "seed", "status", "stopped_early",
    "epochs_done", *(f"{w}_{m}" for m in METRICS for w in ("final", "best")),
]  # fmt: skip
CURVE_COLUMNS = ["run_id", "variant", "seed", "metric", "epoch", "value"]


@dataclass(frozen=True)
class SweepData:
    sweep_id: str
    trials: pd.DataFrame
    curves: pd.DataFrame
    knobs: list[str] = field(default_factory=list)  # dotted paths set by some trial, in first-seen order


def _knob_value(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list | dict) else v


def trial_row(run: Any, histories: dict[str, list[tuple[int, float]]]) -> dict[str, Any]:
    """One trial's row from an MLflow run and its test-metric histories (metric → [(epoch, value)])."""
    tags, metrics = run.data.tags, run.data.metrics
    row: dict[str, Any] = {
        "trial_id": tags["rskd.trial_id"],
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "variant": tags.get("rskd.variant", ""),
        "role": tags.get("rskd.role", ""),
        "method": tags.get("rskd.method", ""),
        "seed": int(tags.get("rskd.seed", "0")),
        "status": run.info.status,
        "stopped_early": tags.get("rskd.stopped_early") == "true",
        "epochs_done": int(metrics.get("epoch", 0)),
    }
    for m in METRICS:
        points = histories.get(f"test/{m}", [])
        values = [v for _, v in points]
        final = metrics.get(f"final/test_{m}")
        row[f"final_{m}"] = final if final is not None else (points[-1][1] if points else None)
        row[f"best_{m}"] = (max(values) if HIGHER_IS_BETTER[m] else min(values)) if values else None
    for k, v in json.loads(tags.get("rskd.knobs", "{}")).items():
        row[k] = _knob_value(v)
    return row


def frames(sweep_id: str, rows: list[dict[str, Any]], curves: list[dict[str, Any]]) -> SweepData:
    trials = pd.DataFrame(rows, columns=None if rows else TRIAL_COLUMNS)
    knobs = [c for c in trials.columns if c not in TRIAL_COLUMNS]
    if len(trials):
        trials = trials.sort_values(["role", "variant", "seed"], key=_role_first, kind="stable").reset_index(drop=True)
    return SweepData(sweep_id, trials, pd.DataFrame(curves, columns=CURVE_COLUMNS), knobs)


def _role_first(col: pd.Series) -> pd.Series:
    return col.map({"variant": 0, "baseline": 1}) if col.name == "role" else col


def experiment_ids(client: Any, name: str | None) -> list[str]:
    """The sweep's experiment when its name is known (one experiment per sweep name), else every experiment."""
    from mlflow.entities import ViewType

    if name is not None:
        exp = client.get_experiment_by_name(name)
        return [] if exp is None else [exp.experiment_id]
    return [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]


def sweep_runs(client: Any, sweep_id: str, experiment: str | None = None, kind: str | None = None) -> list[Any]:
    """The sweep's runs (``kind``: ``trial`` for the children, ``sweep`` for the parent, None for both)."""
    exps = experiment_ids(client, experiment)
    if not exps:
        return []
    query = f"tags.`rskd.sweep_id` = '{sweep_id}'" + (f" and tags.`rskd.kind` = '{kind}'" if kind else "")
    return list(client.search_runs(exps, filter_string=query, max_results=10_000))


def trial_runs(client: Any, sweep_id: str, experiment: str | None = None) -> list[Any]:
    """The sweep's child (trial) runs."""
    return sweep_runs(client, sweep_id, experiment, kind="trial")


def collect(client: Any, sweep_id: str, experiment: str | None = None) -> SweepData:
    """Read the sweep's trial runs (from its experiment when the name is given) and their test-metric histories."""
    runs = trial_runs(client, sweep_id, experiment)
    rows, curves = [], []
    for run in runs:
        histories: dict[str, list[tuple[int, float]]] = {}
        for m in METRICS:
            if f"test/{m}" not in run.data.metrics:
                continue
            history = client.get_metric_history(run.info.run_id, f"test/{m}")
            histories[f"test/{m}"] = sorted((int(p.step), float(p.value)) for p in history)
        row = trial_row(run, histories)
        rows.append(row)
        for metric, points in histories.items():
            curves += [
                {"run_id": row["run_id"], "variant": row["variant"], "seed": row["seed"], "metric": metric,
                 "epoch": e, "value": v}
                for e, v in points
            ]  # fmt: skip
    return frames(sweep_id, rows, curves)
