"""Racing replayed on simulated ablations: a fake trainable (curves shaped like real ones, no training) through the
real racing Searcher and Scheduler of ``worker/racing.py`` on a local Ray; prints one JSON object.

Each replay: ``--variants`` variants × ``--seeds`` seeds against one baseline; half the variants equal the baseline,
half are worse by 1–3 points (seed std 0.3–1 point, shared by the pair through the seed: a seed's data order and
initialisation move variant and baseline together). Figures: trial-epochs run vs the full grid, the share of the
worse variants' budget saved (goal ≥ 40 %), and wrongful stops (a variant equal to the baseline pruned; goal ≤ alpha
over many replays).

    python benchmarks/racing_replay.py                       # 8 variants × 10 seeds, 3 replays
    python benchmarks/racing_replay.py --replays 1 --variants 4 --seeds 5 --epochs 4   # the smoke mode (tests)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.spec import SweepSpec, Trial, expand


def ablation(n_variants: int, seeds: int, epochs: int, alpha: float) -> SweepSpec:
    return SweepSpec.model_validate(
        {
            "name": "replay",
            "base": {
                "method": {"name": "ce"},
                "data": {"name": "digits"},
                "optim": {"epochs": epochs, "milestones": []},
            },
            "variants": {f"v{i}": {"optim.lr": round(0.01 * (i + 1), 4)} for i in range(n_variants)},
            "baselines": [{"name": "ce", "label": "base", "overrides": {"optim.lr": 0.5}}],
            "seeds": list(range(seeds)),
            "racing": {"baseline": "base", "alpha": alpha, "min_seeds": 2},
        }
    )


def truth(spec: SweepSpec, rng: random.Random) -> tuple[dict[str, float], dict[tuple[str, int], float]]:
    """Each variant's true gap to the baseline (points of top-1; 0 for the first half) and each trial's final
    top-1: baseline 90 % + a seed effect shared by the pair + the trial's own noise."""
    names = list(spec.variants)
    gaps = {v: 0.0 if i < len(names) // 2 else -rng.uniform(1.0, 3.0) for i, v in enumerate(names)}
    gaps["base"] = 0.0
    sd = {v: rng.uniform(0.3, 1.0) for v in gaps}
    final = {}
    for s in spec.seeds:
        shared = rng.gauss(0.0, 0.5)
        for v in gaps:
            final[(v, s)] = (90.0 + gaps[v] + shared + rng.gauss(0.0, sd[v])) / 100.0
    return gaps, final


def fake_trainable(config: dict[str, Any], table: dict[str, list[float]]) -> None:
    """Reports a saturating curve ending at the trial's final value, one report per epoch."""
    from ray import tune

    for epoch, value in enumerate(table[config["trial_id"]], start=1):
        time.sleep(0.02)
        tune.report({"epoch": epoch, "test/top1": value})


def curve(final: float, epochs: int) -> list[float]:
    return [final * (1.0 - 0.9 * math.exp(-3.0 * e / epochs)) for e in range(1, epochs + 1)]


def replay(spec: SweepSpec, trials: list[Trial], table: dict[str, list[float]], storage: Path) -> dict[str, Any]:
    from ray import tune

    from worker.racing import racing_algorithms, read_decisions

    state_dir = storage / "replay"
    searcher, scheduler = racing_algorithms(spec, trials, max_concurrent=8, state_dir=str(state_dir))
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(fake_trainable, table=table), {"cpu": 0.25}),
        tune_config=tune.TuneConfig(num_samples=len(trials), search_alg=searcher, scheduler=scheduler),
        run_config=tune.RunConfig(name="replay", storage_path=str(storage), verbose=0),
    )
    grid = tuner.fit()
    epochs_run = sum(int(r.metrics.get("epoch", 0)) for r in grid if r.metrics)
    return {"epochs_run": epochs_run, "started": len(grid), "pruned": read_decisions(state_dir)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replays", type=int, default=3)
    ap.add_argument("--variants", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    spec = ablation(args.variants, args.seeds, args.epochs, args.alpha)
    trials = expand(spec)
    import ray

    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    rng = random.Random(args.seed)
    runs = []
    start = time.perf_counter()
    for _ in range(args.replays):
        gaps, final = truth(spec, rng)
        table = {t.trial_id: curve(final[(t.variant, t.seed)], args.epochs) for t in trials}
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):  # Tune's tables
            out = replay(spec, trials, table, Path(tmp))
        worse = [v for v, g in gaps.items() if g < 0]
        same = [v for v in spec.variants if gaps[v] == 0.0]
        runs.append(
            {
                "epochs_run": out["epochs_run"],
                "trials_started": out["started"],
                "pruned": sorted(out["pruned"]),
                "wrongful_stops": sorted(set(out["pruned"]) & set(same)),
                "worse_pruned": len(set(out["pruned"]) & set(worse)),
                "worse": len(worse),
            }
        )
    ray.shutdown()
    full = len(trials) * args.epochs
    worse_budget = sum(r["worse"] for r in runs) * args.seeds * args.epochs
    saved = sum(full - r["epochs_run"] for r in runs)
    same_total = sum(len(spec.variants) - r["worse"] for r in runs)
    result = {
        "benchmark": "racing_replay",
        "replays": args.replays,
        "variants": args.variants,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "alpha": args.alpha,
        "trial_epochs_full_grid": full * args.replays,
        "trial_epochs_run": sum(r["epochs_run"] for r in runs),
        "trial_epochs_saved": saved,
        "saved_share_of_worse_budget": round(saved / worse_budget, 3) if worse_budget else None,
        "worse_variants_pruned": f"{sum(r['worse_pruned'] for r in runs)}/{sum(r['worse'] for r in runs)}",
        "wrongful_stops": f"{sum(len(r['wrongful_stops']) for r in runs)}/{same_total}",
        "wall_s": round(time.perf_counter() - start, 1),
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
