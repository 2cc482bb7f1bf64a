"""What a sweep costs on top of training: the same config run directly through ``rskd_core`` and as a one-trial
sweep (Ray Tune trial + per-epoch checkpoints reported to Tune + MLflow logging + artifacts), side by side.

    python benchmarks/worker_overhead.py              # digits, ~60 s of training per run
    python benchmarks/worker_overhead.py --epochs 3   # a quick look

Ray is started once before timing, as on a cluster that is already up (a Ray Job connects to a running head);
``ray_init_s`` reports that start separately. The fixed start-up cost is the sweep's wall time minus the sum of its
epochs' own training + evaluation time. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboards.layout import KIND_TRIAL, sweep_filter
from rskd_core.config_io import validate
from rskd_core.engine import Trainer
from worker.driver import DriverSettings, run_sweep
from worker.spec import SweepSpec


def base_config(epochs: int) -> dict[str, Any]:
    return {
        "data": {"name": "digits", "image_size": 16},
        "model": {"name": "preact_resnet_tiny"},
        "method": {"name": "rskd", "layers": ["last"], "warmup_epochs": 1},
        "teacher": {"rule": "ema", "momentum": 0.99},
        "optim": {"lr": 0.05, "batch_size": 64, "epochs": epochs, "schedule": "cosine", "milestones": []},
        "runtime": {"device": "cpu", "threads": 1},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=40, help="40 digits epochs ≈ 60 s on one CPU thread")
    args = parser.parse_args()
    cfg_dict = base_config(args.epochs)

    import ray

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        # direct: the trainer alone, in this process
        t0 = time.perf_counter()
        direct = Trainer(validate(cfg_dict)).fit()
        direct_s = time.perf_counter() - t0
        direct_train_s = sum(r["time/epoch_s"] for r in direct.history)

        spec = SweepSpec.model_validate({"name": "overhead", "base": cfg_dict, "resources": {"cpu": 1}})
        settings = DriverSettings(
            tracking_uri=f"sqlite:///{tmp}/mlflow.db", storage_path=f"{tmp}/storage", artifact_root=f"file://{tmp}/art"
        )
        t0 = time.perf_counter()
        outcome = run_sweep(spec, "overhead-1", settings)
        sweep_s = time.perf_counter() - t0
        assert outcome.status == "FINISHED", outcome
        from mlflow.tracking import MlflowClient

        client = MlflowClient(settings.tracking_uri)
        run = client.search_runs([outcome.experiment_id], sweep_filter("overhead-1", KIND_TRIAL))[0]
        sweep_epochs_s = sum(m.value for m in client.get_metric_history(run.info.run_id, "time/epoch_s"))
    ray.shutdown()
    print(
        json.dumps(
            {
                "epochs": args.epochs,
                "direct_s": direct_s,
                "sweep_s": sweep_s,
                "ratio": sweep_s / direct_s,
                "fixed_startup_s": sweep_s - direct_s,
                "direct_epoch_time_s": direct_train_s,
                "sweep_epoch_time_s": sweep_epochs_s,
                "ray_init_s": ray_init_s,
                "final_top1_direct": direct.final["test/top1"],
                "final_top1_sweep": run.data.metrics["final/test_top1"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
