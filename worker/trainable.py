"""The Ray Tune function trainable: one trial = one ``rskd_core`` run, reported to Tune and logged to MLflow.

Per epoch, in this order: ``checkpoint.pt`` (+ ``best.pt``) reported to Tune as the trial's resume checkpoint →
metrics logged to the trial's MLflow child run (``step = epoch``). A retried trial restores from
``tune.get_checkpoint()`` and continues the same child run; epochs already in MLflow are not logged again and epochs a
crash kept from MLflow are logged from the checkpoint's history, so every epoch appears exactly once.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards.layout import trial_model_name
from rskd_core.config import RunConfig
from rskd_core.engine import Callback, FailAfterEpoch, FitResult, Trainer
from worker.mlflow_extras import DatasetRef, SystemMetricsLogger, log_final_model, log_trial_datasets
from worker.spec import Trial
from worker.tracking import MlflowEpochLogger, TrialRun, mlflow_retry

log = logging.getLogger(__name__)
# fail fast on each MLflow call (MLflow's own backoff would stall training for minutes): the epoch logger keeps what
# MLflow did not take and retries on its own schedule
MLFLOW_CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


@dataclass(frozen=True)
class SweepContext:
    """Everything a trial needs besides its config; passed with ``tune.with_parameters`` (never the search space).

    ``patience_s``: how long a trial waits for an unreachable MLflow before it fails. ``fail_at_epoch``: fault
    injection for tests (``RSKD_FAULT_FAIL_AT_EPOCH``) — every trial raises once at the end of that 0-based epoch,
    after its checkpoint; never part of a trial's config.
    """

    sweep_id: str
    tracking_uri: str
    trials: dict[str, Trial]
    run_ids: dict[str, str]
    data_root: str | None = None
    patience_s: float = 300.0
    fail_at_epoch: int | None = None
    system_metrics: bool = True  # RSKD_SYSTEM_METRICS: MLflow's system-metrics monitor on each trial's run


class TuneReporter(Callback):
    """Reports each epoch's metrics to Tune with a resume checkpoint: ``checkpoint.pt`` written straight into the
    directory Tune persists, and ``best.pt`` (kept in the work dir, rewritten when top-1 improves) linked beside it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        from ray import tune

        best = self.workdir / "best.pt"
        if trainer.best_epoch == record["epoch"]:
            trainer.save_weights(best)
        snap = Path(tempfile.mkdtemp(prefix="ckpt-", dir=self.workdir))
        trainer.save_checkpoint(snap / "checkpoint.pt")
        if best.is_file():
            os.link(best, snap / "best.pt")
        metrics = {k: v for k, v in record.items() if isinstance(v, int | float)}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(snap)))
        shutil.rmtree(snap, ignore_errors=True)  # Tune has persisted its copy


@contextmanager
def workdir_for(trial: Trial) -> Iterator[Path]:
    workdir = Path(tempfile.mkdtemp(prefix=f"rskd-trial-{trial.trial_id}-"))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def restore_checkpoint(workdir: Path) -> Path | None:
    """Tune's checkpoint of this trial (a retry after a crash) copied into ``workdir``; None on a first attempt."""
    from ray import tune

    restored = tune.get_checkpoint()
    if restored is None:
        return None
    local = Path(restored.to_directory(str(workdir / "restored")))
    for name in ("checkpoint.pt", "best.pt"):
        if (local / name).is_file():
            shutil.copy2(local / name, workdir / name)
    return workdir / "checkpoint.pt"


def callbacks_for(ctx: SweepContext, logger: MlflowEpochLogger, workdir: Path) -> list[Callback]:
    """Tune's report (with the checkpoint) first, then MLflow, then the test fault (after both, like a real crash)."""
    callbacks: list[Callback] = [TuneReporter(workdir), logger]
    if ctx.system_metrics:  # after the logger, which makes the run RUNNING (the monitor stops on any other state)
        callbacks.append(SystemMetricsLogger(logger.run_id, ctx.tracking_uri))
    if ctx.fail_at_epoch is not None:
        callbacks.append(FailAfterEpoch(ctx.fail_at_epoch))
    return callbacks


def train_trial(config: dict[str, Any], ctx: SweepContext) -> None:
    """Function trainable. ``config`` holds only the trial id; the RunConfig is re-validated here."""
    from mlflow.tracking import MlflowClient

    trial = ctx.trials[config["trial_id"]]
    cfg = RunConfig.model_validate(trial.config.model_dump(mode="json"))
    for key, value in MLFLOW_CLIENT_ENV.items():
        os.environ.setdefault(key, value)
    run = TrialRun(MlflowClient(ctx.tracking_uri), ctx.run_ids[trial.trial_id], ctx.patience_s)
    if run.finished():
        # finished before the driver died: Tune's restored state (saved every few seconds) may predate the end,
        # but MLflow has it — a finished trial is never run again, not even its last epoch's bookkeeping
        log.info("trial %s already FINISHED in run %s: nothing to do", trial.trial_id, run.run_id)
        return
    with workdir_for(trial) as workdir:
        resume_from = restore_checkpoint(workdir)
        logger = run.epoch_logger()
        trainer = Trainer(cfg, callbacks_for(ctx, logger, workdir), data_root=ctx.data_root)
        datasets = mlflow_retry(
            log_trial_datasets,
            run.client,
            run.run_id,
            trainer,
            ctx.data_root,
            patience_s=ctx.patience_s,
            what="datasets",
        )
        try:
            result = trainer.fit(resume_from=resume_from)
        except Exception as err:
            run.failed(err)
            raise
        except BaseException as err:  # stopped from outside (Tune shutting down, SystemExit): not the trial's fault
            run.stopped(err)
            raise
        logger.flush()
        finish_trial(ctx, run, trial, trainer, result, datasets, workdir)


def finish_trial(
    ctx: SweepContext,
    run: TrialRun,
    trial: Trial,
    trainer: Trainer,
    result: FitResult,
    datasets: list[DatasetRef],
    workdir: Path,
) -> None:
    """Final weights and config to the workdir, the LoggedModel linked to the test set, the run ended FINISHED."""
    trainer.save_weights(workdir / "final.pt")
    (workdir / "config.json").write_text(trainer.cfg.model_dump_json(indent=2))
    experiment_id = run.client.get_run(run.run_id).info.experiment_id
    model_id = mlflow_retry(
        log_final_model,
        run.client,
        experiment_id,
        run.run_id,
        trial_model_name(trial.variant, trial.seed),
        workdir / "final.pt",
        workdir / "config.json",
        result.epochs_done,
        patience_s=ctx.patience_s,
        what="the final model",
    )
    test_set = datasets[-1]  # the final metrics are measured on the test set
    link = {"model_id": model_id, "dataset_name": test_set.name, "dataset_digest": test_set.digest}
    run.finish(result, [workdir / "best.pt", workdir / "final.pt"], workdir / "config.json", link=link)
