"""MLflow layout of a sweep (ARCHITECTURE.md): one experiment per sweep name, a parent run per sweep, a child run per
trial. All logging goes through an explicit ``MlflowClient`` and run ids — never the fluent API's global active run —
so a driver and many trials can log side by side, and a retried trial continues its own child run.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from worker.spec import SweepSpec, Trial

TERMINAL = {"FINISHED", "FAILED", "KILLED"}
PER_EPOCH_PREFIXES = ("epoch", "train/", "test/", "lr", "throughput/", "time/")


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


def trial_tags(sweep_id: str, trial: Trial, parent_run_id: str, code_version: str) -> dict[str, str]:
    return {
        "mlflow.parentRunId": parent_run_id,
        "mlflow.runName": f"{trial.variant} s{trial.seed}",
        "rskd.kind": "trial",
        "rskd.sweep_id": sweep_id,
        "rskd.trial_id": trial.trial_id,
        "rskd.variant": trial.variant,
        "rskd.role": trial.role,
        "rskd.method": trial.method,
        "rskd.seed": str(trial.seed),
        "rskd.config_hash": trial.config.config_hash(),
        "rskd.teacher": trial.config.teacher.rule,
        "rskd.knobs": json.dumps(trial.knobs, sort_keys=True),
        "rskd.code_version": code_version,
    }


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
        self.parent_run_id = self._parent()

    def _find(self, filter_string: str) -> list[Any]:
        return list(self.client.search_runs([self.experiment_id], filter_string=filter_string, max_results=10_000))

    def _parent(self) -> str:
        found = self._find(f"tags.`rskd.sweep_id` = '{self.sweep_id}' and tags.`rskd.kind` = 'sweep'")
        if found:
            run_id: str = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{self.spec.name} {self.sweep_id}",
            tags={"rskd.kind": "sweep", "rskd.sweep_id": self.sweep_id, "rskd.code_version": self.code_version},
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "spec.json"
            path.write_text(self.spec.model_dump_json(indent=2))
            self.client.log_artifact(run.info.run_id, str(path))
        return str(run.info.run_id)

    def child_runs(self, trials: Iterable[Trial]) -> dict[str, str]:
        """trial id → run id; existing children are reused (resume, resubmission), missing ones created."""
        existing = {
            r.data.tags["rskd.trial_id"]: r.info.run_id
            for r in self._find(f"tags.`rskd.sweep_id` = '{self.sweep_id}' and tags.`rskd.kind` = 'trial'")
        }
        runs: dict[str, str] = {}
        for trial in trials:
            if trial.trial_id in existing:
                runs[trial.trial_id] = existing[trial.trial_id]
                continue
            tags = trial_tags(self.sweep_id, trial, self.parent_run_id, self.code_version)
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=tags["mlflow.runName"])
            rid = run.info.run_id
            params = [Param(k, v[:6000]) for k, v in flatten(trial.config.model_dump(mode="json")).items()]
            for i in range(0, len(params), 100):
                self.client.log_batch(rid, params=params[i : i + 100])
            self.client.update_run(rid, status="SCHEDULED")
            runs[trial.trial_id] = rid
        return runs

    def statuses(self, run_ids: Iterable[str]) -> dict[str, str]:
        return {rid: self.client.get_run(rid).info.status for rid in run_ids}

    def end_unfinished(self, run_ids: Iterable[str], status: str, reason: str) -> list[str]:
        """Give every run that is not terminal ``status`` (KILLED after an interruption); returns the run ids."""
        ended = []
        for rid, st in self.statuses(run_ids).items():
            if st not in TERMINAL:
                self.client.set_tag(rid, "rskd.end_reason", reason)
                self.client.set_terminated(rid, status=status)
                ended.append(rid)
        return ended

    def log_summary(self, summary: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "summary.json"
            path.write_text(json.dumps(summary, indent=2))
            self.client.log_artifact(self.parent_run_id, str(path))

    def finish(self, status: str, **tags: str) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.parent_run_id, f"rskd.{k}", v)
        self.client.set_terminated(self.parent_run_id, status=status)


def logged_epochs(client: MlflowClient, run_id: str, key: str = "test/top1") -> set[int]:
    return {int(m.step) for m in client.get_metric_history(run_id, key)}


def epoch_metrics(record: dict[str, Any], timestamp_ms: int) -> list[Metric]:
    step = int(record["epoch"])
    return [
        Metric(k, float(v), timestamp_ms, step)
        for k, v in record.items()
        if k.startswith(PER_EPOCH_PREFIXES) and isinstance(v, int | float)
    ]
