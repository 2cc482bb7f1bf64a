"""Fakes for unit tests of the API (end-to-end tests use the real Ray and MLflow)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dashboards.collect import SweepData, frames
from dashboards.layout import METRICS
from service.submitter import JobState
from service.trials import TrialView


@dataclass
class FakeSubmitter:
    jobs: dict[str, JobState] = field(default_factory=dict)
    submitted: list[tuple[str, str, bool]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    specs: dict[str, tuple[str, int]] = field(default_factory=dict)  # job id → (spec JSON, extension)
    reopened: dict[str, list[str]] = field(default_factory=dict)  # job id → the pruned variants it reopens
    fail: bool = False

    def submit(
        self,
        job_id: str,
        sweep_id: str,
        spec_json: str,
        *,
        resume: bool = False,
        extension: int = 0,
        reopen: Sequence[str] = (),
    ) -> None:
        if self.fail:
            raise ConnectionError("Ray is down")
        if job_id in self.jobs:
            raise RuntimeError(f"Job with submission_id {job_id} already exists")
        self.jobs[job_id] = JobState("SUBMITTED")
        self.submitted.append((job_id, sweep_id, resume))
        self.specs[job_id] = (spec_json, extension)
        self.reopened[job_id] = list(reopen)

    def state(self, job_id: str) -> JobState | None:
        return self.jobs.get(job_id)

    def stop(self, job_id: str) -> None:
        self.stopped.append(job_id)
        self.jobs[job_id] = JobState("CANCELLED", "stopped")

    def ping(self) -> None:
        if self.fail:
            raise ConnectionError("Ray is down")


@dataclass
class FakeTrials:
    by_sweep: dict[str, list[TrialView]] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)

    def trials(self, sweep_id: str, experiment: str | None = None) -> list[TrialView]:
        return self.by_sweep.get(sweep_id, [])

    def sweep_data(self, sweep_id: str, experiment: str | None = None) -> SweepData:
        rows = []
        for t in self.trials(sweep_id):
            row = {
                **t.model_dump(exclude={"metrics", "knobs"}),
                "experiment_id": "0",
                "stopped_early": False,
                **t.knobs,
            }
            for m, info in METRICS.items():
                row[f"final_{m}"] = t.metrics.get(info.final_key)
                row[f"best_{m}"] = t.metrics.get(info.best_key)
            rows.append(row)
        return frames(sweep_id, rows, [])

    def ping(self) -> None:
        return None

    def kill_unfinished(self, sweep_id: str) -> int:
        self.killed.append(sweep_id)
        return 0
