"""Regenerate the figures of docs/rskd.md from a finished sweep in MLflow.

    python docs/rskd/figures.py --tracking-uri URI --sweep-id ID --out docs/rskd/failure_modes.png \
        --select 'rskd_l[method.gap_grad="stop",teacher.bn_mode="eval",teacher.rule="prev_epoch"]' ...

For each selected variant (its exact label in the sweep's report), three panels of per-epoch means over seeds:
test top-1, the residual term ``train/res_out`` and the CE term ``train/ce`` — where the two failure modes show.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dashboards.collect import trial_runs
from dashboards.layout import TrialRecord

PANELS = (
    ("test/top1", "test top-1 (%)", 100.0),
    ("train/res_out", "train/res_out", 1.0),
    ("train/ce", "train/ce", 1.0),
)


def histories(client: MlflowClient, sweep_id: str, labels: list[str]) -> dict[str, dict[str, dict[int, list[float]]]]:
    """variant → metric → epoch → values over seeds."""
    out: dict[str, dict[str, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for run in trial_runs(client, sweep_id):
        record = TrialRecord.from_run(run)
        if record.variant not in labels:
            continue
        for metric, _, _ in PANELS:
            for point in client.get_metric_history(record.run_id, metric):
                out[record.variant][metric][point.step].append(point.value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", required=True)
    ap.add_argument("--sweep-id", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--select", nargs="+", required=True, help="variant labels as the report names them")
    ap.add_argument("--names", nargs="*", help="legend names, one per --select")
    args = ap.parse_args()
    data = histories(MlflowClient(args.tracking_uri), args.sweep_id, args.select)
    names = args.names or args.select
    fig, axes = plt.subplots(1, len(PANELS), figsize=(13, 3.6))
    for (metric, title, scale), ax in zip(PANELS, axes, strict=True):
        for label, name in zip(args.select, names, strict=True):
            series = data[label][metric]
            epochs = sorted(series)
            ax.plot(epochs, [scale * sum(series[e]) / len(series[e]) for e in epochs], marker="o", ms=3, label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if metric != "test/top1":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
