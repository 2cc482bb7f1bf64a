"""MLflow side of a sweep, in the layout ``dashboards.layout`` spells: one experiment per sweep name, a parent run per
sweep, a child run per trial. All logging goes through an explicit ``MlflowClient`` and run ids — never the fluent
API's global active run — so a driver and many trials can log side by side, and a retried trial continues its own
child run.

``SweepTracker`` is the driver's side (experiment, parent run, child runs, ending what is left unfinished);
``TrialRun`` and ``MlflowEpochLogger`` are a trial's (its run's start and end, each epoch logged exactly once). While
MLflow does not answer, a trial keeps training and retries on its own schedule (``mlflow_retry``) for up to its
patience, then fails with a clear error.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import traceback
from collections.abc import Callable, Collection, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from dashboards.layout import (
    BEST_EPOCH,
    EPOCH,
    KIND_SWEEP,
    KIND_TRAINING_EXPERIMENT,
    KIND_TRIAL,
    METRICS,
    PER_EPOCH_PREFIXES,
    TRUE,
    RunState,
    Tag,
    TrialIdentity,
    TrialRecord,
    end_unfinished,
    mark_pruned_run,
    pruned_variants,
    sweep_filter,
    sweep_run_name,
    sweep_tags,
)
from rskd_core.engine import Callback, FitResult, Trainer
from worker.spec import SweepSpec, Trial

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_EVERY_S = 2.0


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config → {"optim.lr": "0.1", ...} (MLflow params are strings)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = json.dumps(value) if isinstance(value, list | tuple | bool) or value is None else str(value)
    return out


def trial_identity(trial: Trial) -> TrialIdentity:
    return TrialIdentity(
        trial_id=trial.trial_id,
        variant=trial.variant,
        role=trial.role,
        method=trial.method,
        seed=trial.seed,
        config_hash=trial.config.config_hash(),
        teacher=trial.config.teacher.rule,
        knobs=dict(trial.knobs),
    )


class SweepTracker:
    """Driver side: the experiment, the parent run and one child run per trial (created up front, SCHEDULED)."""

    def __init__(
        self, tracking_uri: str, sweep_id: str, spec: SweepSpec, code_version: str, artifact_root: str | None = None
    ) -> None:
        self.client = MlflowClient(tracking_uri)
        self.tracking_uri = tracking_uri
        self.sweep_id = sweep_id
        self.spec = spec
        self.code_version = code_version
        exp = self.client.get_experiment_by_name(spec.name)
        # artifact_root: where a database-backed store without a server keeps artifacts (else MLflow uses ./mlruns
        # of whatever directory the driver runs in); a tracking server decides for itself
        self.experiment_id = (
            exp.experiment_id
            if exp
            else self.client.create_experiment(
                spec.name, artifact_location=f"{artifact_root}/{spec.name}" if artifact_root else None
            )
        )
        # MLflow 3's UI opens an experiment without this tag in its GenAI mode (traces); ours are training runs
        self.client.set_experiment_tag(self.experiment_id, Tag.EXPERIMENT_KIND, KIND_TRAINING_EXPERIMENT)
        self.parent_run_id = self._parent()

    def _find(self, kind: str) -> list[Any]:
        query = sweep_filter(self.sweep_id, kind)
        return list(self.client.search_runs([self.experiment_id], filter_string=query, max_results=10_000))

    def _parent(self) -> str:
        found = self._find(KIND_SWEEP)
        if found:
            run_id: str = found[0].info.run_id
            self.client.update_run(run_id, status=RunState.RUNNING)
            return run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=sweep_run_name(self.spec.name, self.sweep_id),
            tags=sweep_tags(self.sweep_id, self.code_version),
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "spec.json"
            path.write_text(self.spec.model_dump_json(indent=2))
            self.client.log_artifact(run.info.run_id, str(path))
        return str(run.info.run_id)

    def trial_ids(self) -> set[str]:
        """The trial ids that have a child run under this sweep's parent."""
        return {r.data.tags[Tag.TRIAL_ID] for r in self._find(KIND_TRIAL)}

    def pruned_variants(self, job: str | None = None) -> dict[str, str]:
        """The variants racing has pruned in this sweep's jobs and no extension reopened since → the reason
        (``dashboards.layout.pruned_variants``). ``job``: an extension's job, whose own reopens do not count (the
        variants as it found them when it first started: what its resume must see)."""
        records = []
        for run in self._find(KIND_TRIAL):
            record = TrialRecord.from_run(run)
            if job is not None and run.data.tags.get(Tag.REOPENED) == job:
                record = replace(record, reopened=False)
            records.append(record)
        return pruned_variants(records)

    def reopen(self, variants: Collection[str], job: str, own: Collection[str] = ()) -> list[str]:
        """Tag every pruned, not yet reopened run of ``variants`` ``Tag.REOPENED`` = ``job`` (the extension reopening
        them), except the runs of the trials in ``own`` (this job's trials: racing may prune them again, and those
        stay pruned); returns the run ids tagged. Idempotent: a resume tags nothing twice."""
        tagged = []
        for run in self._find(KIND_TRIAL):
            record = TrialRecord.from_run(run)
            if record.variant in variants and record.pruned and not record.reopened and record.trial_id not in own:
                self.client.set_tag(record.run_id, Tag.REOPENED, job)
                tagged.append(record.run_id)
        return tagged

    def keep_pruned(self, trials: Iterable[Trial], run_ids: dict[str, str], kept: dict[str, str]) -> list[str]:
        """The runs of the ``kept`` variants (pruned earlier, not reopened: variant → why) that never started: KILLED
        and tagged pruned, as racing marks the trials it keeps from starting; returns their run ids."""
        marked = []
        for trial in trials:
            rid = run_ids.get(trial.trial_id)
            run = self.client.get_run(rid) if trial.variant in kept and rid is not None else None
            if run is None or run.info.status != RunState.SCHEDULED:
                continue
            mark_pruned_run(self.client, run, kept[trial.variant], "its variant was pruned before this extension")
            marked.append(run.info.run_id)
        return marked

    def child_runs(self, trials: Iterable[Trial]) -> dict[str, str]:
        """trial id → run id; existing children are reused (resume, resubmission), missing ones created."""
        existing = {r.data.tags[Tag.TRIAL_ID]: r.info.run_id for r in self._find(KIND_TRIAL)}
        runs: dict[str, str] = {}
        for trial in trials:
            if trial.trial_id in existing:
                runs[trial.trial_id] = existing[trial.trial_id]
                continue
            identity = trial_identity(trial)
            tags = identity.tags(self.sweep_id, self.parent_run_id, self.code_version)
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=identity.run_name)
            rid = run.info.run_id
            params = [Param(k, v[:6000]) for k, v in flatten(trial.config.model_dump(mode="json")).items()]
            for i in range(0, len(params), 100):
                self.client.log_batch(rid, params=params[i : i + 100])
            self.client.update_run(rid, status=RunState.SCHEDULED)
            runs[trial.trial_id] = rid
        self.client.set_tag(self.parent_run_id, Tag.TRIALS, str(len(runs)))
        self._sweep_params(len(runs))
        return runs

    def _sweep_params(self, trials: int) -> None:
        """The sweep-level facts as the parent's params (shown and compared in the UI). MLflow params never change,
        so a key the parent already has is kept (an extended sweep's current trial count is its ``Tag.TRIALS``)."""
        spec = self.spec
        facts = {
            "sweep.objective": f"{spec.objective.metric} ({spec.objective.mode})",
            "sweep.baselines": ", ".join(b.label or b.name for b in spec.baselines) or "none",
            "sweep.variants": ", ".join(spec.variants) or "none",
            "sweep.seeds": json.dumps(spec.seeds),
            "sweep.trials": str(trials),
            "sweep.scheduler": spec.scheduler.type,
        }
        have = self.client.get_run(self.parent_run_id).data.params
        new = [Param(k, v[:6000]) for k, v in facts.items() if k not in have]
        if new:
            self.client.log_batch(self.parent_run_id, params=new)

    def statuses(self, run_ids: Iterable[str]) -> dict[str, str]:
        return {rid: self.client.get_run(rid).info.status for rid in run_ids}

    def end_unfinished(self, run_ids: Iterable[str], status: str, reason: str) -> list[str]:
        """Give every run that is not terminal ``status`` (KILLED after an interruption); returns the run ids."""
        return end_unfinished(self.client, (self.client.get_run(rid) for rid in run_ids), status, reason)

    def mark_stopped_early(self, run_ids: Iterable[str]) -> None:
        """Runs a scheduler (ASHA) stopped: they ended without finishing every epoch, and are not counted."""
        for rid in run_ids:
            self.client.set_tag(rid, Tag.STOPPED_EARLY, TRUE)
            self.client.set_terminated(rid, status=RunState.FINISHED)

    def finish(self, status: str, failed_trials: int) -> None:
        self.client.set_tag(self.parent_run_id, Tag.FAILED_TRIALS, str(failed_trials))
        self.client.set_terminated(self.parent_run_id, status=status)


# ---------------------------------------------------------------- a trial's side


class MlflowUnavailable(RuntimeError):
    pass


def mlflow_retry(fn: Callable[..., T], *args: Any, patience_s: float, what: str, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried every 2 s while MLflow does not answer, for up to ``patience_s``; then a clear
    error (the trial's checkpoint keeps its epochs: resuming the sweep logs them)."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if time.monotonic() > deadline:
                raise MlflowUnavailable(
                    f"MLflow did not answer for {patience_s:.0f} s ({what}): {type(err).__name__}: {str(err)[:300]}; "
                    "the trial's checkpoints keep its epochs — resume the sweep once MLflow is back"
                ) from err
            time.sleep(RETRY_EVERY_S)


def logged_epochs(client: MlflowClient, run_id: str, key: str = METRICS["top1"].key) -> set[int]:
    return {int(m.step) for m in client.get_metric_history(run_id, key)}


def epoch_metrics(record: dict[str, Any], timestamp_ms: int) -> list[Metric]:
    step = int(record[EPOCH])
    return [
        Metric(k, float(v), timestamp_ms, step)
        for k, v in record.items()
        if k.startswith(PER_EPOCH_PREFIXES) and isinstance(v, int | float)
    ]


def summary_metrics(result: FitResult) -> dict[str, float]:
    """``best/test_top1``, ``best/epoch`` and ``final/test_<m>`` for every test metric of the last epoch."""
    summary = {METRICS["top1"].best_key: result.best_top1, BEST_EPOCH: float(result.best_epoch)}
    for key, value in result.final.items():
        if key.startswith("test/"):
            summary[f"final/test_{key.removeprefix('test/')}"] = float(value)
    return summary


class MlflowEpochLogger(Callback):
    """Logs each epoch's record to the trial's child run exactly once: epochs already in MLflow (a retried trial) are
    skipped, and epochs the checkpoint has but MLflow missed (a crash between the two) are logged at the start.

    While MLflow does not answer, training goes on: the epochs' metrics wait in memory (their timestamps are the
    times they were recorded) and are sent, in order, at the next epoch that reaches MLflow, or at the end of the
    trial, which waits up to ``patience_s`` for MLflow before it fails with a clear error.
    """

    def __init__(self, client: Any, run_id: str, patience_s: float = 300.0) -> None:
        self.client = client
        self.run_id = run_id
        self.patience_s = patience_s
        self.done: set[int] = set()
        self.pending: list[tuple[int, list[Any]]] = []

    def on_fit_start(self, trainer: Trainer) -> None:
        self.client.update_run(self.run_id, status=RunState.RUNNING)
        info = trainer.run_info()  # per-epoch peak memory and the memory share: the system/* metrics
        self.client.set_tag(self.run_id, Tag.DEVICE, info["device"])
        self.client.set_tag(self.run_id, Tag.DEVICE_NAME, info["device_name"] or "unknown")
        if trainer.epoch:
            self.client.set_tag(self.run_id, Tag.RESUMED_FROM_EPOCH, str(trainer.epoch))
        self.done = logged_epochs(self.client, self.run_id)
        for record in trainer.history:
            self._log(record)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self._log(record)

    def _log(self, record: dict[str, Any]) -> None:
        epoch = int(record[EPOCH])
        if epoch in self.done or any(e == epoch for e, _ in self.pending):
            return
        self.pending.append((epoch, epoch_metrics(record, int(time.time() * 1000))))
        try:
            self._send()
        except Exception as err:  # MLflow away: keep training, keep the metrics
            log.warning("MLflow did not take epoch %d (%s); %d epochs wait", epoch, err, len(self.pending))

    def _send(self) -> None:
        while self.pending:
            epoch, metrics = self.pending[0]
            self.client.log_batch(self.run_id, metrics=metrics)
            self.pending.pop(0)
            self.done.add(epoch)

    def flush(self) -> None:
        """Send what waits, retrying while MLflow is away (up to ``patience_s``)."""
        if self.pending:
            mlflow_retry(self._send, patience_s=self.patience_s, what=f"{len(self.pending)} epochs' metrics")


class TrialRun:
    """One trial's child run, as the trial's own process sees it: its state, its failure, its end."""

    def __init__(self, client: Any, run_id: str, patience_s: float) -> None:
        self.client = client
        self.run_id = run_id
        self.patience_s = patience_s

    def finished(self) -> bool:
        return bool(self.client.get_run(self.run_id).info.status == RunState.FINISHED)

    def epoch_logger(self) -> MlflowEpochLogger:
        return MlflowEpochLogger(self.client, self.run_id, self.patience_s)

    def failed(self, err: BaseException) -> None:
        """The trial's own error: FAILED, with the error and its traceback as tags."""
        self.client.set_tag(self.run_id, Tag.ERROR, f"{type(err).__name__}: {err}"[:5000])
        self.client.set_tag(self.run_id, Tag.TRACEBACK, traceback.format_exc()[-5000:])
        self.client.set_terminated(self.run_id, status=RunState.FAILED)

    def stopped(self, err: BaseException) -> None:
        """Stopped from outside (Tune shutting down, SystemExit): KILLED, not the trial's fault."""
        reason = f"stopped: {type(err).__name__}"  # the driver may be ending it at the same moment: one way for both
        end_unfinished(self.client, [self.client.get_run(self.run_id)], RunState.KILLED, reason)

    def _retry(self, fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> None:
        mlflow_retry(fn, *args, patience_s=self.patience_s, what=what, **kwargs)

    def finish(
        self, result: FitResult, checkpoints: Iterable[Path], config: Path, link: dict[str, str] | None = None
    ) -> None:
        """The weights, the config and the summary metrics, then FINISHED (each retried while MLflow is away).
        ``link``: ``Metric`` fields that tie the summary metrics to a LoggedModel and a dataset (``model_id``,
        ``dataset_name``, ``dataset_digest``)."""
        for path in checkpoints:
            self._retry(self.client.log_artifact, self.run_id, str(path), artifact_path="checkpoints", what=path.name)
        self._retry(self.client.log_artifact, self.run_id, str(config), what="config")
        now = int(time.time() * 1000)
        final = [Metric(k, v, now, result.epochs_done, **(link or {})) for k, v in summary_metrics(result).items()]
        self._retry(self.client.log_batch, self.run_id, metrics=final, what="summary")
        self._retry(self.client.set_terminated, self.run_id, status=RunState.FINISHED, what="end of the run")
