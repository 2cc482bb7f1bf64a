"""The sweep driver: one Ray Tune experiment over a sweep's trials, tracked in MLflow.

It expands and validates the spec before anything starts, creates (or, on resume, finds) the MLflow parent run and
one child run per trial, runs the Tuner — a function trainable with ``tune.with_parameters`` and
``tune.with_resources``, ``max_concurrent_trials``, an optional ASHA scheduler on the objective and
``FailureConfig(max_failures)`` — then writes a per-variant summary to the parent run and leaves no run RUNNING.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from worker.spec import SweepSpec, Trial, expand
from worker.summary import TrialOutcome, summarize
from worker.tracking import SweepTracker
from worker.trainable import SweepContext, train_trial

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriverSettings:
    tracking_uri: str
    storage_path: str
    data_root: str | None = None
    code_version: str = "unknown"
    max_trials: int = 500
    artifact_root: str | None = None  # for a tracking URI without a server (sqlite:///…): a file:// folder


@dataclass
class SweepOutcome:
    status: str  # FINISHED | FAILED | KILLED
    trials: int
    finished: int
    failed: int
    killed: int
    summary: dict[str, Any]
    parent_run_id: str
    experiment_id: str


def experiment_dir(settings: DriverSettings, sweep_id: str) -> Path:
    return Path(settings.storage_path) / sweep_id


def save_spec(settings: DriverSettings, sweep_id: str, spec: SweepSpec) -> None:
    """The spec beside Tune's experiment state, so ``resume`` needs nothing but the sweep id."""
    path = experiment_dir(settings, sweep_id)
    path.mkdir(parents=True, exist_ok=True)
    (path / "spec.json").write_text(spec.model_dump_json(indent=2))


def load_saved_spec(settings: DriverSettings, sweep_id: str) -> SweepSpec:
    path = experiment_dir(settings, sweep_id) / "spec.json"
    if not path.is_file():
        raise FileNotFoundError(f"no saved spec for sweep {sweep_id} at {path}; pass --spec")
    return SweepSpec.model_validate_json(path.read_text())


def _tuner(
    spec: SweepSpec, trials: list[Trial], ctx: SweepContext, settings: DriverSettings, sweep_id: str, restore: bool
) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    trainable = tune.with_resources(
        tune.with_parameters(train_trial, ctx=ctx), {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    )
    path = experiment_dir(settings, sweep_id)
    if restore and (path / "tuner.pkl").exists():
        log.info("restoring the Tune experiment at %s", path)
        return tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True, resume_errored=True)
    scheduler = None
    if spec.scheduler.type == "asha":
        scheduler = ASHAScheduler(
            metric=spec.objective.metric,
            mode=spec.objective.mode,
            max_t=max(t.config.optim.epochs for t in trials),
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
        )
    return tune.Tuner(
        trainable,
        param_space={"trial_id": tune.grid_search([t.trial_id for t in trials])},
        tune_config=tune.TuneConfig(
            num_samples=1, scheduler=scheduler, max_concurrent_trials=spec.max_concurrent_trials
        ),
        run_config=tune.RunConfig(
            name=sweep_id,
            storage_path=str(Path(settings.storage_path).resolve()),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=1,
        ),
    )


def trial_outcomes(tracker: SweepTracker, trials: list[Trial], run_ids: dict[str, str]) -> list[TrialOutcome]:
    outcomes = []
    for t in trials:
        run = tracker.client.get_run(run_ids[t.trial_id])
        m = run.data.metrics
        outcomes.append(
            TrialOutcome(
                variant=t.variant,
                role=t.role,
                method=t.method,
                status=run.info.status,
                final_top1=m.get("final/test_top1"),
                best_top1=m.get("best/test_top1"),
                stopped_early=run.data.tags.get("rskd.stopped_early") == "true",
            )
        )
    return outcomes


def publish_report(tracker: SweepTracker, sweep_id: str, spec: SweepSpec) -> None:
    """The comparison tables and plots on the parent run; a failure here is logged, never fails the sweep (they can be
    regenerated with ``python -m dashboards publish``)."""
    from dashboards.publish import publish

    try:
        publish(tracker.client, sweep_id, tracker.parent_run_id, spec.name, spec.objective.model_dump())
    except Exception:
        log.exception("could not publish the report of sweep %s (python -m dashboards publish retries)", sweep_id)


def run_sweep(spec: SweepSpec, sweep_id: str, settings: DriverSettings, *, resume: bool = False) -> SweepOutcome:
    """Run (or continue) a whole sweep on the Ray cluster this process is connected to."""
    import ray

    trials = expand(spec, settings.max_trials)  # refuses a bad spec before anything starts
    save_spec(settings, sweep_id, spec)
    tracker = SweepTracker(settings.tracking_uri, sweep_id, spec, settings.code_version, settings.artifact_root)
    run_ids = tracker.child_runs(trials)
    tracker.client.set_tag(tracker.parent_run_id, "rskd.trials", str(len(trials)))
    ctx = SweepContext(
        sweep_id=sweep_id,
        tracking_uri=settings.tracking_uri,
        trials={t.trial_id: t for t in trials},
        run_ids=run_ids,
        data_root=settings.data_root,
    )
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not ray.is_initialized():
        # inside a Ray Job, RAY_ADDRESS names the cluster; otherwise always a fresh local Ray ("local"), never a
        # stale cluster some earlier process left registered in /tmp/ray
        ray.init(address="auto" if os.environ.get("RAY_ADDRESS") else "local", log_to_driver=True)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # after ray.init, whose core installs a SIGTERM handler that aborts the process: `ray job stop` sends SIGTERM,
        # and Tune shuts down cleanly (saving its state) on SIGINT, so SIGTERM is made to mean SIGINT
        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            stop.set()
            os.kill(os.getpid(), signal.SIGINT)

        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        tuner = _tuner(spec, trials, ctx, settings, sweep_id, restore=resume)
        grid = tuner.fit()
        log.info("Tune returned: %d trials, %d with errors", len(grid), sum(1 for r in grid if r.error is not None))
    except KeyboardInterrupt:
        stop.set()
    statuses = tracker.statuses(run_ids.values())
    # Tune also returns normally after Ctrl-C; trials it never started are then still SCHEDULED
    interrupted = stop.is_set() or "SCHEDULED" in statuses.values()
    if interrupted:
        log.warning(
            "sweep %s was interrupted; `python -m worker.sweep resume --sweep-id %s` continues it", sweep_id, sweep_id
        )
        tracker.end_unfinished(run_ids.values(), "KILLED", "the sweep was interrupted")
    else:
        for rid, st in statuses.items():
            if st == "RUNNING" and spec.scheduler.type == "asha":  # ASHA stopped it: it ended without finishing
                tracker.client.set_tag(rid, "rskd.stopped_early", "true")
                tracker.client.set_terminated(rid, status="FINISHED")
        tracker.end_unfinished(run_ids.values(), "FAILED", "the trial process ended without reporting its end")
    statuses = tracker.statuses(run_ids.values())
    counts = {s: sum(1 for v in statuses.values() if v == s) for s in ("FINISHED", "FAILED", "KILLED")}
    summary = summarize(trial_outcomes(tracker, trials, run_ids))
    summary.update({"sweep_id": sweep_id, "trials": len(trials), **{k.lower(): v for k, v in counts.items()}})
    tracker.log_summary(summary)
    publish_report(tracker, sweep_id, spec)
    status = "KILLED" if interrupted else ("FAILED" if counts["FAILED"] else "FINISHED")
    tracker.finish(status, failed_trials=str(counts["FAILED"]))
    log.info("sweep %s %s: %s", sweep_id, status, json.dumps(counts))
    return SweepOutcome(
        status=status,
        trials=len(trials),
        finished=counts["FINISHED"],
        failed=counts["FAILED"],
        killed=counts["KILLED"],
        summary=summary,
        parent_run_id=tracker.parent_run_id,
        experiment_id=tracker.experiment_id,
    )
