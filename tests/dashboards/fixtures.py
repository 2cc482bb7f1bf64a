"""A hand-made sweep: 2 grid variants × 3 seeds + 2 baselines, one failed trial, one 2-D grid (for the heat-map)."""

from __future__ import annotations

from typing import Any

from dashboards.collect import SweepData, frames

TOP1 = {
    ("rskd[a=1,b=\"x\"]", 0): 0.95, ("rskd[a=1,b=\"x\"]", 1): 0.96, ("rskd[a=1,b=\"x\"]", 2): 0.94,
    ("rskd[a=2,b=\"x\"]", 0): 0.97, ("rskd[a=2,b=\"x\"]", 1): 0.93, ("rskd[a=2,b=\"x\"]", 2): 0.95,
    ("rskd[a=1,b=\"y\"]", 0): 0.91, ("rskd[a=1,b=\"y\"]", 1): 0.92, ("rskd[a=1,b=\"y\"]", 2): 0.90,
    ("rskd[a=2,b=\"y\"]", 0): 0.88, ("rskd[a=2,b=\"y\"]", 1): 0.89,
    ("ce", 0): 0.93, ("ce", 1): 0.925, ("ce", 2): 0.935,
    ("label_smoothing", 0): 0.94, ("label_smoothing", 1): 0.92, ("label_smoothing", 2): 0.93,
}  # fmt: skip
FAILED = ('rskd[a=2,b="y"]', 2)


def sweep() -> SweepData:
    rows: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    for (variant, seed), top1 in [*TOP1.items(), (FAILED, 0.5)]:
        role = "baseline" if "[" not in variant else "variant"
        run = f"run-{variant}-{seed}"
        row = {"trial_id": f"t-{variant}-{seed}", "run_id": run, "experiment_id": "1", "variant": variant, "role": role,
               "method": variant.split("[")[0], "seed": seed, "status": "FAILED" if (variant, seed) == FAILED
               else "FINISHED", "stopped_early": False, "epochs_done": 3}  # fmt: skip
        for m, v in {"top1": top1, "top5": min(1.0, top1 + 0.04), "nll": 1.2 - top1, "ece": 2.0 + seed}.items():
            row[f"final_{m}"] = v
            row[f"best_{m}"] = v if m in ("top1", "top5") else v - 0.1
        if role == "variant":
            row["a"] = int(variant[7])
            row["b"] = variant.split('b="')[1][0]
        rows.append(row)
        curves += [{"run_id": run, "variant": variant, "seed": seed, "metric": "test/top1", "epoch": e,
                    "value": top1 * (e + 1) / 3} for e in range(3)]  # fmt: skip
    return frames("sw-test", rows, curves)
