"""The Ray Tune function trainable: one trial = one ``rskd_core`` run, reported to Tune and logged to MLflow.

Per epoch, in this order: ``checkpoint.pt`` (+ ``best.pt``) reported to Tune as the trial's resume checkpoint →
metrics logged to the trial's MLflow child run (``step = epoch``). A retried trial restores from
``tune.get_checkpoint()`` and continues the same child run; epochs already in MLflow are not logged again and epochs a
crash kept from MLflow are logged from the checkpoint's history, so every epoch appears exactly once.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class SweepContext:
    """Everything a trial needs besides its config; passed with ``tune.with_parameters`` (never the search space)."""

    sweep_id: str
    tracking_uri: str
    trials: dict[str, Trial]
    run_ids: dict[str, str]
    data_root: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class MlflowEpochLogger(Callback):
    """Logs each epoch's record to the trial's child run exactly once (see the module docstring)."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.done: set[int] = set()

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
        if epoch in self.done:
            return
        self.client.log_batch(self.run_id, metrics=epoch_metrics(record, int(time.time() * 1000)))
        self.done.add(epoch)


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
    client = MlflowClient(ctx.tracking_uri)
    run_id = ctx.run_ids[trial.trial_id]
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
        callbacks = [TuneReporter(workdir), MlflowEpochLogger(client, run_id)]
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
        trainer.save_weights(workdir / "final.pt")
        for name in ("best.pt", "final.pt"):
            client.log_artifact(run_id, str(workdir / name), artifact_path="checkpoints")
        (workdir / "config.json").write_text(cfg.model_dump_json(indent=2))
        client.log_artifact(run_id, str(workdir / "config.json"))
        summary = {
            "best/test_top1": result.best_top1,
            "best/epoch": float(result.best_epoch),
            **{f"final/test_{k.removeprefix('test/')}": v for k, v in result.final.items() if k.startswith("test/")},
        }
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, result.epochs_done) for k, v in summary.items()])
        client.set_terminated(run_id, status="FINISHED")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
