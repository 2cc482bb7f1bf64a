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
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rskd_core.config import RunConfig
from rskd_core.engine import Callback, Trainer
from worker.spec import Trial
from worker.tracking import epoch_metrics, logged_epochs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepContext:
    """Everything a trial needs besides its config; passed with ``tune.with_parameters`` (never the search space)."""

    sweep_id: str
    tracking_uri: str
    trials: dict[str, Trial]
    run_ids: dict[str, str]
    data_root: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def mlflow_retry(fn: Any, *args: Any, patience_s: float, what: str, **kwargs: Any) -> Any:
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
            time.sleep(2.0)


class MlflowUnavailable(RuntimeError):
    pass


class MlflowEpochLogger(Callback):
    """Logs each epoch's record to the trial's child run exactly once (see the module docstring).

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
        self.client.update_run(self.run_id, status="RUNNING")
        if trainer.epoch:
            self.client.set_tag(self.run_id, "rskd.resumed_from_epoch", str(trainer.epoch))
        self.done = logged_epochs(self.client, self.run_id)
        for record in trainer.history:  # epochs the checkpoint has but MLflow missed (a crash between the two)
            self._log(record)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self._log(record)

    def _log(self, record: dict[str, Any]) -> None:
        epoch = int(record["epoch"])
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


def train_trial(config: dict[str, Any], ctx: SweepContext) -> None:
    """Function trainable. ``config`` holds only the trial id; the RunConfig is re-validated here."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    from ray import tune

    trial = ctx.trials[config["trial_id"]]
    cfg = RunConfig.model_validate(trial.config.model_dump(mode="json"))
    # fail fast on each MLflow call (MLflow's own backoff would stall training for minutes): the epoch logger keeps
    # what MLflow did not take and retries on its own schedule
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    client = MlflowClient(ctx.tracking_uri)
    run_id = ctx.run_ids[trial.trial_id]
    if client.get_run(run_id).info.status == "FINISHED":
        # finished before the driver died: Tune's restored state (saved every few seconds) may predate the end,
        # but MLflow has it — a finished trial is never run again, not even its last epoch's bookkeeping
        log.info("trial %s already FINISHED in run %s: nothing to do", trial.trial_id, run_id)
        return
    workdir = Path(tempfile.mkdtemp(prefix=f"rskd-trial-{trial.trial_id}-"))
    try:
        resume_from = None
        restored = tune.get_checkpoint()
        if restored is not None:
            local = Path(restored.to_directory(str(workdir / "restored")))
            for name in ("checkpoint.pt", "best.pt"):
                if (local / name).is_file():
                    shutil.copy2(local / name, workdir / name)
            resume_from = workdir / "checkpoint.pt"
        patience = float(os.environ.get("RSKD_MLFLOW_PATIENCE_S", "300"))
        logger = MlflowEpochLogger(client, run_id, patience)
        callbacks = [TuneReporter(workdir), logger]
        trainer = Trainer(cfg, callbacks, data_root=ctx.data_root)
        try:
            result = trainer.fit(resume_from=resume_from)
        except Exception as err:
            client.set_tag(run_id, "rskd.error", f"{type(err).__name__}: {err}"[:5000])
            client.set_tag(run_id, "rskd.traceback", traceback.format_exc()[-5000:])
            client.set_terminated(run_id, status="FAILED")
            raise
        except BaseException as err:  # stopped from outside (Tune shutting down, SystemExit): not the trial's fault
            client.set_tag(run_id, "rskd.end_reason", f"stopped: {type(err).__name__}")
            client.set_terminated(run_id, status="KILLED")
            raise
        logger.flush()
        trainer.save_weights(workdir / "final.pt")
        for name in ("best.pt", "final.pt"):
            mlflow_retry(client.log_artifact, run_id, str(workdir / name), artifact_path="checkpoints",
                         patience_s=patience, what="checkpoints")  # fmt: skip
        (workdir / "config.json").write_text(cfg.model_dump_json(indent=2))
        mlflow_retry(client.log_artifact, run_id, str(workdir / "config.json"), patience_s=patience, what="config")
        summary = {
            "best/test_top1": result.best_top1,
            "best/epoch": float(result.best_epoch),
            **{f"final/test_{k.removeprefix('test/')}": v for k, v in result.final.items() if k.startswith("test/")},
        }
        now = int(time.time() * 1000)
        final = [Metric(k, float(v), now, result.epochs_done) for k, v in summary.items()]
        mlflow_retry(client.log_batch, run_id, metrics=final, patience_s=patience, what="summary")
        mlflow_retry(client.set_terminated, run_id, status="FINISHED", patience_s=patience, what="end of the run")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
