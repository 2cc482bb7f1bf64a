"""Where RSKD's loss terms push the network: the gradient each term sends into the last feature layer and every
stage, relative to CE's, with the pseudo-teacher's own test accuracy — for the old and the new defaults side by side.

    python benchmarks/rskd_diagnostics.py                    # digits recipe of examples/sweeps/rskd_stability.yaml
    python benchmarks/rskd_diagnostics.py --lr 0.1 --seeds 0 1 2

Runs rskd_core only (no Ray, no MLflow) with ``runtime.diagnostics_every``; prints one JSON object: per setting,
final test top-1 per seed and, averaged over the last four epochs and the seeds, ‖∂term/∂tap‖ ÷ ‖∂CE/∂tap‖ for every
residual term and tap, ‖z̃ − z‖, ‖r(h)‖ and the teacher's test top-1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rskd_core.config import RunConfig
from rskd_core.engine.trainer import Trainer

SETTINGS: dict[str, dict[str, Any]] = {
    "rskd_l/ema/old": {"teacher": {"rule": "ema", "bn_mode": "eval"}, "gap_grad": "stop"},
    "rskd_l/ema/new": {"teacher": {"rule": "ema"}, "gap_grad": "feature"},
    "rskd_l/prev_epoch/old": {"teacher": {"rule": "prev_epoch", "bn_mode": "eval"}, "gap_grad": "stop"},
    "rskd_l/prev_epoch/new": {"teacher": {"rule": "prev_epoch"}, "gap_grad": "feature"},
    "rskd_ml/ema/new": {"teacher": {"rule": "ema"}, "gap_grad": "feature", "ml": True},
    "rskd_ml/prev_epoch/new": {"teacher": {"rule": "prev_epoch"}, "gap_grad": "feature", "ml": True},
}


def config(setting: dict[str, Any], lr: float, seed: int, epochs: int) -> RunConfig:
    layers = ["last", "stage1", "stage2", "stage3"] if setting.get("ml") else ["last"]
    return RunConfig.model_validate(
        {
            "seed": seed,
            "data": {"name": "digits"},
            "model": {"name": "preact_resnet_tiny", "width": 16},
            "method": {
                "name": "rskd",
                "layers": layers,
                "temperature": 4.0,
                "warmup_epochs": 2,
                "gap_grad": setting["gap_grad"],
            },
            "teacher": {"momentum": 0.99, **setting["teacher"]},
            "optim": {
                "lr": lr,
                "batch_size": 64,
                "epochs": epochs,
                "schedule": "cosine",
                "milestones": [],
                "warmup_epochs": 1,
            },
            "runtime": {"device": "cpu", "threads": 1, "diagnostics_every": 5},
        }
    )


def shares(history: list[dict[str, Any]]) -> dict[str, float]:
    """Late-epoch mean of ‖∂term/∂tap‖ / ‖∂CE/∂tap‖ for every residual term and tap, plus the gap statistics."""
    late = history[-4:]
    out: dict[str, float] = {}
    for key in late[0]:
        if key.startswith("diag/grad/res_"):
            term_tap = key.removeprefix("diag/grad/")
            tap = term_tap.split("/")[1]
            ce = mean(r[f"diag/grad/ce/{tap}"] for r in late)
            value = mean(r[key] for r in late)
            if value > 0 and ce > 0:
                out[f"share/{term_tap}"] = value / ce
    for key in ("diag/gap_norm", "diag/residual_norm", "diag/teacher_top1", "diag/agreement"):
        if key in late[0]:
            out[key.removeprefix("diag/")] = mean(r[key] for r in late)
    return out


def run(name: str, lr: float, seeds: list[int], epochs: int) -> dict[str, Any]:
    finals, parts = [], []
    for seed in seeds:
        try:
            history = Trainer(config(SETTINGS[name], lr, seed, epochs)).fit().history
        except RuntimeError as err:  # a NaN loss: the old defaults' prev-epoch teacher
            finals.append(float("nan"))
            print(f"{name} seed {seed}: {str(err).splitlines()[0]}", file=sys.stderr)
            continue
        finals.append(history[-1]["test/top1"])
        parts.append(shares(history))
    keys = sorted({k for p in parts for k in p})
    averaged = {k: round(mean(p[k] for p in parts if k in p), 4) for k in keys}
    return {"final_top1": [round(f, 4) for f in finals], **averaged}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    args = ap.parse_args()
    result = {name: run(name, args.lr, args.seeds, args.epochs) for name in args.only}
    print(json.dumps({"lr": args.lr, "epochs": args.epochs, "seeds": args.seeds, "settings": result}, indent=1))


if __name__ == "__main__":
    main()
