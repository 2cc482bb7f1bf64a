"""A sweep's child runs in MLflow → a tidy table, one row per trial, and the per-epoch test curves.

Columns of ``SweepData.trials``: trial_id, run_id, experiment_id, variant, role, method, seed, status, stopped_early,
epochs_done, pruned and pruned_reason (racing stopped the run's variant), reopened (an extension reopened the variant
since), ``final_<m>`` and ``best_<m>`` for m in top1, top5, nll, ece (final = the last epoch's value; best = the best
epoch's, max for accuracies, min for NLL and ECE), and one column per swept knob (its dotted path). Accuracies are
fractions; ECE is in % as rskd_core logs it (METHODS.md).
``SweepData.curves``: run_id, variant, seed, metric, epoch, value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dashboards.layout import KIND_TRIAL, METRICS, TrialRecord, sweep_filter

RECORD_COLUMNS = ["trial_id", "run_id", "experiment_id", "variant", "role", "method", "seed", "status",
                  "stopped_early", "epochs_done", "pruned", "pruned_reason", "reopened"]  # fmt: skip
TRIAL_COLUMNS = [*RECORD_COLUMNS, *(f"{w}_{m}" for m in METRICS for w in ("final", "best"))]
CURVE_COLUMNS = ["run_id", "variant", "seed", "metric", "epoch", "value"]


@dataclass(frozen=True)
class SweepData:
    sweep_id: str
    trials: pd.DataFrame
    curves: pd.DataFrame
    knobs: list[str] = field(default_factory=list)  # dotted paths set by some trial, in first-seen order


def _knob_value(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list | dict) else v


def trial_row(record: TrialRecord, histories: dict[str, list[tuple[int, float]]]) -> dict[str, Any]:
    """One trial's row from its MLflow record and its test-metric histories (metric → [(epoch, value)])."""
    row: dict[str, Any] = {c: getattr(record, c) for c in RECORD_COLUMNS}
    for m, info in METRICS.items():
        points = histories.get(info.key, [])
        values = [v for _, v in points]
        final = record.metrics.get(info.final_key)
        row[f"final_{m}"] = final if final is not None else (points[-1][1] if points else None)
        row[f"best_{m}"] = info.best_of(values) if values else None
    for k, v in record.knobs.items():
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
    return list(client.search_runs(exps, filter_string=sweep_filter(sweep_id, kind), max_results=10_000))


def trial_runs(client: Any, sweep_id: str, experiment: str | None = None) -> list[Any]:
    """The sweep's child (trial) runs."""
    return sweep_runs(client, sweep_id, experiment, kind=KIND_TRIAL)


def collect(client: Any, sweep_id: str, experiment: str | None = None) -> SweepData:
    """Read the sweep's trial runs (from its experiment when the name is given) and their test-metric histories."""
    rows, curves = [], []
    for run in trial_runs(client, sweep_id, experiment):
        record = TrialRecord.from_run(run)
        histories: dict[str, list[tuple[int, float]]] = {}
        for info in METRICS.values():
            if info.key in record.metrics:
                history = client.get_metric_history(record.run_id, info.key)
                histories[info.key] = sorted((int(p.step), float(p.value)) for p in history)
        row = trial_row(record, histories)
        rows.append(row)
        for metric, points in histories.items():
            curves += [
                {"run_id": row["run_id"], "variant": row["variant"], "seed": row["seed"], "metric": metric,
                 "epoch": e, "value": v}
                for e, v in points
            ]  # fmt: skip
    return frames(sweep_id, rows, curves)
