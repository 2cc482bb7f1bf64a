"""What MLflow 3's extra records cost a trial: dataset inputs with digests, the final weights as a LoggedModel (with
its linked metrics) and the system-metrics monitor (``worker/mlflow_extras.py``), measured side by side with them off.

    python benchmarks/mlflow_extras_cost.py --tracking-uri http://127.0.0.1:5000   # a real server, as in production
    python benchmarks/mlflow_extras_cost.py --pairs 1 --epochs 3                    # a quick look (temporary SQLite)

Each pair runs the same digits trial twice, extras off then on (alternating which goes first), the trial's own
MLflow side exactly as ``worker.trainable.train_trial`` does it (epoch logger, checkpoints and config as artifacts,
summary metrics, FINISHED) but without Ray. Prints one JSON object: mean trial seconds off and on (wall and the
process's CPU time), the relative cost, and the extras' own parts (datasets, model, the fit with the monitor on).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlflow.tracking import MlflowClient

from rskd_core.config import RunConfig
from rskd_core.engine import Callback, Trainer
from worker.mlflow_extras import SystemMetricsLogger, log_final_model, log_trial_datasets
from worker.tracking import TrialRun


def digits_config(epochs: int) -> RunConfig:
    """The base recipe of ``examples/sweeps/digits_ablation.yaml``."""
    return RunConfig.model_validate(
        {
            "data": {"name": "digits"},
            "model": {"name": "preact_resnet_tiny", "width": 16},
            "method": {"name": "rskd", "layers": ["last"], "temperature": 4.0, "warmup_epochs": 2},
            "teacher": {"rule": "ema", "momentum": 0.99},
            "optim": {"lr": 0.05, "batch_size": 64, "epochs": epochs, "schedule": "cosine", "milestones": []},
            "runtime": {"device": "cpu", "threads": 1},
        }
    )


def one_trial(client: MlflowClient, uri: str, experiment_id: str, cfg: RunConfig, extras: bool) -> dict[str, float]:
    start, cpu_start = time.perf_counter(), time.process_time()
    rid = client.create_run(experiment_id, run_name=f"extras-{'on' if extras else 'off'}").info.run_id
    client.update_run(rid, status="SCHEDULED")
    run = TrialRun(client, rid, patience_s=60)
    logger = run.epoch_logger()
    callbacks: list[Callback] = [logger] + ([SystemMetricsLogger(rid, uri)] if extras else [])
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trainer = Trainer(cfg, callbacks)
        t = time.perf_counter()
        datasets = log_trial_datasets(client, rid, trainer, None) if extras else []
        out["datasets_s"] = time.perf_counter() - t
        t = time.perf_counter()
        result = trainer.fit()
        out["fit_s"] = time.perf_counter() - t
        logger.flush()
        trainer.save_weights(work / "best.pt")
        trainer.save_weights(work / "final.pt")
        (work / "config.json").write_text(cfg.model_dump_json(indent=2))
        t = time.perf_counter()
        link = None
        if extras:
            model_id = log_final_model(
                client, experiment_id, rid, "bench", work / "final.pt", work / "config.json", result.epochs_done
            )
            link = {"model_id": model_id, "dataset_name": datasets[-1].name, "dataset_digest": datasets[-1].digest}
        out["model_s"] = time.perf_counter() - t
        run.finish(result, [work / "best.pt", work / "final.pt"], work / "config.json", link=link)
    out["trial_s"] = time.perf_counter() - start
    out["trial_cpu_s"] = time.process_time() - cpu_start  # every thread of the process, the monitor's included
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", help="default: a temporary SQLite store")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="extras-cost-")
    uri = args.tracking_uri or f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(uri)
    name = f"extras-cost-{int(time.time())}"
    experiment_id = client.create_experiment(name, artifact_location=None if args.tracking_uri else f"file://{tmp}/a")
    cfg = digits_config(args.epochs)
    one_trial(client, uri, experiment_id, digits_config(1), extras=True)  # warm-up: imports, first connections
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for i in range(args.pairs):
        for extras in (False, True) if i % 2 == 0 else (True, False):
            runs[extras].append(one_trial(client, uri, experiment_id, cfg, extras))

    def mean(extras: bool, key: str) -> float:
        return round(statistics.fmean(r[key] for r in runs[extras]), 3)

    off, on = mean(False, "trial_s"), mean(True, "trial_s")
    cpu_off, cpu_on = mean(False, "trial_cpu_s"), mean(True, "trial_cpu_s")
    report: dict[str, Any] = {
        "tracking_uri": uri,
        "epochs": args.epochs,
        "pairs": args.pairs,
        "trial_s": {"off": off, "on": on},
        "extra_s": round(on - off, 3),
        "extra_pct": round(100 * (on - off) / off, 2),
        # CPU seconds of the trial's process: less at the mercy of other work on the machine than wall time
        "trial_cpu_s": {"off": cpu_off, "on": cpu_on},
        "extra_cpu_pct": round(100 * (cpu_on - cpu_off) / cpu_off, 2),
        "parts_s": {
            "datasets": mean(True, "datasets_s"),
            "model": mean(True, "model_s"),
            "fit_with_monitor": mean(True, "fit_s"),
            "fit_without": mean(False, "fit_s"),
        },
        "each_trial_s": {
            "off": [round(r["trial_s"], 2) for r in runs[False]],
            "on": [round(r["trial_s"], 2) for r in runs[True]],
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
