"""The sweep driver: one Ray Tune experiment over a sweep's trials, tracked in MLflow.

``run_sweep`` in named steps: the spec is expanded and checked against this job's limits before anything starts; the
MLflow parent run and one child run per trial are created (or, on resume, found); the Tuner runs — a function
trainable with ``tune.with_parameters`` and ``tune.with_resources``, ``max_concurrent_trials``, an optional ASHA
scheduler on the objective and ``FailureConfig(max_failures)``; no run is left unfinished; the comparison report is
published on the parent run (``dashboards.publish``); the parent run ends with the sweep's outcome.

``DriverSettings`` is everything the job brings in its environment (the service's ``job_env`` sends it): the
tracking URI, the storage path, the data root, the limits the API enforces (``RSKD_MAX_TRIALS``, ``RSKD_MAX_EPOCHS``)
and ``RSKD_MLFLOW_PATIENCE_S``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dashboards.layout import RunState
from worker.extension import keep_pruned, reopen_problems
from worker.mlflow_extras import LiveNote
from worker.spec import (
    DEFAULT_MAX_EPOCHS,
    DEFAULT_MAX_TRIALS,
    SpecError,
    SweepSpec,
    Trial,
    epoch_limit_problems,
    expand,
)
from worker.tracking import SweepTracker
from worker.trainable import SweepContext, train_trial

log = logging.getLogger(__name__)
KEPT_BY = " [kept by "  # a reason carried into an extension: the first job's, then this
ENV_FIELDS = {  # optional environment variable → DriverSettings field
    "RSKD_MAX_TRIALS": "max_trials",
    "RSKD_MAX_EPOCHS": "max_epochs",
    "RSKD_MLFLOW_PATIENCE_S": "mlflow_patience_s",
    "RSKD_FAULT_FAIL_AT_EPOCH": "fault_fail_at_epoch",
    "RSKD_SYSTEM_METRICS": "system_metrics",
    "RSKD_DASHBOARD_URL": "dashboard_url",
}


class DriverSettings(BaseModel):
    """A sweep job's settings; ``from_env`` reads them from the job's environment variables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tracking_uri: str
    storage_path: str
    data_root: str | None = None
    code_version: str = "unknown"
    artifact_root: str | None = None  # for a tracking URI without a server (sqlite:///…): a file:// folder
    max_trials: int = Field(DEFAULT_MAX_TRIALS, ge=1, description="RSKD_MAX_TRIALS: trials per sweep")
    max_epochs: int = Field(DEFAULT_MAX_EPOCHS, ge=1, description="RSKD_MAX_EPOCHS: epochs per trial")
    mlflow_patience_s: float = Field(
        300.0, gt=0, description="RSKD_MLFLOW_PATIENCE_S: how long a trial waits for an unreachable MLflow"
    )
    fault_fail_at_epoch: int | None = Field(
        None, ge=0, description="RSKD_FAULT_FAIL_AT_EPOCH: tests only — every trial raises once after this epoch"
    )
    system_metrics: bool = Field(
        True, description="RSKD_SYSTEM_METRICS: MLflow's system-metrics monitor (CPU, memory, GPU) on trial runs"
    )
    dashboard_url: str | None = Field(
        None, description="RSKD_DASHBOARD_URL: the service as a browser reaches it (linked from the parent run)"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, code_version: str = "unknown") -> DriverSettings:
        """``MLFLOW_TRACKING_URI`` (default: SQLite under ``RSKD_HOME``), ``RSKD_STORAGE_PATH`` (default
        ``RSKD_HOME/storage``), ``RSKD_DATA_ROOT``, ``RSKD_MAX_TRIALS``, ``RSKD_MAX_EPOCHS``,
        ``RSKD_MLFLOW_PATIENCE_S``, ``RSKD_FAULT_FAIL_AT_EPOCH`` (pydantic ValidationError for a bad value)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("RSKD_HOME", ".rskd")).resolve()
        home.mkdir(parents=True, exist_ok=True)
        tracking_uri = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        home_artifacts = (home / "artifacts").as_uri()
        return cls.model_validate(
            {
                "tracking_uri": tracking_uri,
                "artifact_root": None if tracking_uri.startswith(("http://", "https://")) else home_artifacts,
                "storage_path": env.get("RSKD_STORAGE_PATH") or str(home / "storage"),
                "data_root": env.get("RSKD_DATA_ROOT"),
                "code_version": code_version,
                **{field: env[var] for var, field in ENV_FIELDS.items() if env.get(var)},
            }
        )


@dataclass
class SweepOutcome:
    status: str  # FINISHED | FAILED | KILLED (the parent run's MLflow state)
    trials: int
    finished: int
    failed: int
    killed: int
    parent_run_id: str
    experiment_id: str


def experiment_dir(settings: DriverSettings, sweep_id: str) -> Path:
    return Path(settings.storage_path) / sweep_id


def job_name(sweep_id: str, extension: int = 0) -> str:
    """The Tune experiment of a sweep's job: the sweep id, or ``{id}-x{n}`` for its n-th extension."""
    return f"{sweep_id}-x{extension}" if extension else sweep_id


def extension_trials(
    existing: set[str],
    trials: list[Trial],
    settings: DriverSettings,
    name: str,
    pruned: Mapping[str, str] | None = None,
) -> tuple[list[Trial], dict[str, str]]:
    """The trials an extension runs: those without a child run when it first started, less those of a variant in
    ``pruned`` (variant → why: pruned earlier, not reopened), and those variants. Both are kept beside its Tune state
    (``trials.json``, ``kept_pruned.json``), so a resumed extension runs the same set, never a finished trial."""
    folder = experiment_dir(settings, name)
    path, kept_path = folder / "trials.json", folder / "kept_pruned.json"
    if path.is_file():
        chosen = set(json.loads(path.read_text()))
        kept = json.loads(kept_path.read_text()) if kept_path.is_file() else {}
        return [t for t in trials if t.trial_id in chosen], kept
    pruned = pruned or {}
    new, left_out = keep_pruned([t for t in trials if t.trial_id not in existing], pruned)
    kept = {t.variant: pruned[t.variant] for t in left_out}
    path.parent.mkdir(parents=True, exist_ok=True)
    kept_path.write_text(json.dumps(kept))
    path.write_text(json.dumps([t.trial_id for t in new]))
    return new, kept


def carried_decisions(tracker: SweepTracker, name: str, reopen: Collection[str]) -> dict[str, str]:
    """The variants racing pruned in the sweep's earlier jobs (and no extension reopened since) that ``reopen`` does
    not name → why they stay pruned."""
    pruned = tracker.pruned_variants(job=name)
    for problem in reopen_problems(reopen, pruned):
        log.warning("%s: ignored", problem)
    suffix = f"{KEPT_BY}{name}; reopen it to run its new trials]"
    return {v: why.split(KEPT_BY)[0] + suffix for v, why in pruned.items() if v not in reopen}


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


def checked_trials(spec: SweepSpec, settings: DriverSettings) -> list[Trial]:
    """The sweep's trials, within this job's limits (the same the API enforced); SpecError otherwise."""
    trials = expand(spec, settings.max_trials)
    over = epoch_limit_problems(trials, settings.max_epochs)
    if over:
        raise SpecError(f"sweep {spec.name} has trials over the epoch limit", over)
    return trials


def _scheduler(spec: SweepSpec, trials: list[Trial]) -> Any:
    if spec.scheduler.type != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        metric=spec.objective.metric,
        mode=spec.objective.mode,
        max_t=max(t.config.optim.epochs for t in trials),
        grace_period=spec.scheduler.grace_period,
        reduction_factor=spec.scheduler.reduction_factor,
    )


def _concurrency(spec: SweepSpec) -> int:
    """How many trials run at once: ``max_concurrent_trials``, else as many as the cluster's CPUs (and GPUs) hold."""
    if spec.max_concurrent_trials:
        return spec.max_concurrent_trials
    import ray

    free = ray.cluster_resources()
    fits = [free.get("CPU", 1.0) / spec.resources.cpu]
    if spec.resources.gpu > 0:
        fits.append(free.get("GPU", 0.0) / spec.resources.gpu)
    return max(1, int(min(fits) + 1e-9))


def _search(spec: SweepSpec, trials: list[Trial], ctx: SweepContext, path: Path) -> dict[str, Any]:
    """The Tuner's search: a grid over the trial ids (seed-major); with ``racing:``, the racing searcher (which hands
    out the trials, at most ``_concurrency`` at a time) and the racing scheduler around the optional ASHA."""
    from ray import tune

    if spec.racing is None:
        return {
            "param_space": {"trial_id": tune.grid_search([t.trial_id for t in trials])},
            "tune_config": tune.TuneConfig(
                num_samples=1, scheduler=_scheduler(spec, trials), max_concurrent_trials=spec.max_concurrent_trials
            ),
        }
    from worker.racing import racing_algorithms

    searcher, scheduler = racing_algorithms(
        spec, trials, _concurrency(spec), _scheduler(spec, trials), str(path), ctx.tracking_uri, ctx.run_ids
    )
    return {"tune_config": tune.TuneConfig(num_samples=len(trials), search_alg=searcher, scheduler=scheduler)}


def _tuner(
    spec: SweepSpec, trials: list[Trial], ctx: SweepContext, settings: DriverSettings, name: str, restore: bool
) -> Any:
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(train_trial, ctx=ctx), {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    )
    path = experiment_dir(settings, name)
    if restore and (path / "tuner.pkl").exists():
        log.info("restoring the Tune experiment at %s", path)
        return tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True, resume_errored=True)
    return tune.Tuner(
        trainable,
        **_search(spec, trials, ctx, path),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(Path(settings.storage_path).resolve()),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=1,
        ),
    )


def connect_ray() -> None:
    import ray

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not ray.is_initialized():
        # inside a Ray Job, RAY_ADDRESS names the cluster; otherwise always a fresh local Ray ("local"), never a
        # stale cluster some earlier process left registered in /tmp/ray
        ray.init(address="auto" if os.environ.get("RAY_ADDRESS") else "local", log_to_driver=True)


def stop_on_sigterm() -> threading.Event:
    """An event set when the job is told to stop. Call after ``ray.init``, whose core installs a SIGTERM handler that
    aborts the process: ``ray job stop`` sends SIGTERM, and Tune shuts down cleanly (saving its state) on SIGINT, so
    SIGTERM is made to mean SIGINT."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            stop.set()
            os.kill(os.getpid(), signal.SIGINT)

        signal.signal(signal.SIGTERM, on_sigterm)
    return stop


def fit_trials(make_tuner: Callable[[], Any], stop: threading.Event) -> None:
    """Build (or restore) the Tuner and run it; a Ctrl-C or SIGTERM on the way sets ``stop``."""
    try:
        grid = make_tuner().fit()
        log.info("Tune returned: %d trials, %d with errors", len(grid), sum(1 for r in grid if r.error is not None))
    except KeyboardInterrupt:
        stop.set()


def close_runs(tracker: SweepTracker, spec: SweepSpec, run_ids: dict[str, str], stop: threading.Event) -> bool:
    """No run is left unfinished after Tune returns; True when the sweep was interrupted."""
    statuses = tracker.statuses(run_ids.values())
    # Tune also returns normally after Ctrl-C; trials it never started are then still SCHEDULED
    interrupted = stop.is_set() or RunState.SCHEDULED in statuses.values()
    if interrupted:
        sweep_id = tracker.sweep_id
        log.warning(
            "sweep %s was interrupted; `python -m worker.sweep resume --sweep-id %s` continues it", sweep_id, sweep_id
        )
        tracker.end_unfinished(run_ids.values(), RunState.KILLED, "the sweep was interrupted")
        return True
    if spec.scheduler.type == "asha":  # a run ASHA stopped is still RUNNING: it ended without finishing
        tracker.mark_stopped_early(rid for rid, st in statuses.items() if st == RunState.RUNNING)
    tracker.end_unfinished(run_ids.values(), RunState.FAILED, "the trial process ended without reporting its end")
    return False


def publish_report(tracker: SweepTracker, spec: SweepSpec, dashboard_url: str | None = None) -> None:
    """The comparison tables and plots on the parent run under ``report/``, the table as its description; a failure
    here is logged, never fails the sweep (``python -m dashboards publish`` regenerates them)."""
    from dashboards.publish import publish

    try:
        objective = spec.objective.model_dump()
        publish(tracker.client, tracker.sweep_id, tracker.parent_run_id, spec.name, objective, dashboard_url)
    except Exception:
        log.exception("could not publish the report of %s (python -m dashboards publish retries)", tracker.sweep_id)


def finish(tracker: SweepTracker, run_ids: dict[str, str], interrupted: bool) -> SweepOutcome:
    statuses = list(tracker.statuses(run_ids.values()).values())
    counts = {s: statuses.count(s) for s in (RunState.FINISHED, RunState.FAILED, RunState.KILLED)}
    status = RunState.KILLED if interrupted else (RunState.FAILED if counts[RunState.FAILED] else RunState.FINISHED)
    tracker.finish(status, failed_trials=counts[RunState.FAILED])
    log.info("sweep %s %s: %s", tracker.sweep_id, status, json.dumps(counts))
    return SweepOutcome(
        status=status,
        trials=len(run_ids),
        finished=counts[RunState.FINISHED],
        failed=counts[RunState.FAILED],
        killed=counts[RunState.KILLED],
        parent_run_id=tracker.parent_run_id,
        experiment_id=tracker.experiment_id,
    )


def run_sweep(
    spec: SweepSpec,
    sweep_id: str,
    settings: DriverSettings,
    *,
    resume: bool = False,
    extension: int = 0,
    reopen: Collection[str] = (),
) -> SweepOutcome:
    """Run (or continue) a whole sweep on the Ray cluster this process is connected to. ``extension`` n > 0: the
    sweep was extended to ``spec`` (the union); only its new trials run, in their own Tune experiment ``{id}-x{n}``,
    as children of the same parent run — none of a variant racing pruned before, unless ``reopen`` names it (its
    pruned runs are then tagged reopened: it counts as pruned no more, until racing prunes it again)."""
    trials = checked_trials(spec, settings)  # refuses a bad spec before anything starts
    name = job_name(sweep_id, extension)
    save_spec(settings, name, spec)
    tracker = SweepTracker(settings.tracking_uri, sweep_id, spec, settings.code_version, settings.artifact_root)
    carried = carried_decisions(tracker, name, reopen) if extension else {}
    to_run, kept = extension_trials(tracker.trial_ids(), trials, settings, name, carried) if extension else (trials, {})
    run_ids = tracker.child_runs(trials)
    tracker.keep_pruned(trials, run_ids, kept)  # their new trials never start: KILLED and pruned from the outset
    if extension:  # a reopen lasts until racing prunes the variant again (its runs pruned from now on: not reopened)
        tracker.reopen(set(reopen) - set(kept), name, own={t.trial_id for t in to_run})  # kept: as its first start
    ctx = SweepContext(
        sweep_id=sweep_id,
        tracking_uri=settings.tracking_uri,
        trials={t.trial_id: t for t in trials},
        run_ids=run_ids,
        data_root=settings.data_root,
        patience_s=settings.mlflow_patience_s,
        fail_at_epoch=settings.fault_fail_at_epoch,
        system_metrics=settings.system_metrics,
    )
    connect_ray()
    stop = stop_on_sigterm()
    live = LiveNote(
        tracker.client, sweep_id, tracker.parent_run_id, spec.name, spec.objective.model_dump(), settings.dashboard_url
    )
    if to_run:
        with live:  # the parent's description follows the comparison while the trials run
            fit_trials(lambda: _tuner(spec, to_run, ctx, settings, name, restore=resume), stop)
    if spec.racing is not None:  # before close_runs: a pruned variant's trials that never started are no interruption
        from worker.racing import mark_pruned, read_decisions

        # this job's trials only: an earlier job's pruned runs keep their own reason
        mark_pruned(tracker.client, to_run, run_ids, read_decisions(experiment_dir(settings, name)))
    interrupted = close_runs(tracker, spec, run_ids, stop)
    publish_report(tracker, spec, settings.dashboard_url)
    return finish(tracker, run_ids, interrupted)
