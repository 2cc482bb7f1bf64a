"""Reading a sweep's trials from MLflow (the source of truth for trial states and metrics)."""

from __future__ import annotations

from typing import Any, Protocol

from dashboards.collect import SweepData, collect, sweep_runs, trial_runs
from dashboards.layout import RunState, TrialRecord, end_unfinished
from service.schemas import TrialRead as TrialView


class TrialSource(Protocol):
    def trials(self, sweep_id: str, experiment: str | None = None) -> list[TrialView]: ...

    def sweep_data(self, sweep_id: str, experiment: str | None = None) -> SweepData: ...

    def ping(self) -> None: ...

    def kill_unfinished(self, sweep_id: str) -> int: ...


class MlflowTrials:
    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def trials(self, sweep_id: str, experiment: str | None = None) -> list[TrialView]:
        runs = trial_runs(self.client, sweep_id, experiment)
        out = [TrialView.model_validate(TrialRecord.from_run(r), from_attributes=True) for r in runs]
        return sorted(out, key=lambda t: (t.role != "variant", t.variant, t.seed))

    def sweep_data(self, sweep_id: str, experiment: str | None = None) -> SweepData:
        return collect(self.client, sweep_id, experiment)

    def ping(self) -> None:
        self.client.search_experiments(max_results=1)

    def kill_unfinished(self, sweep_id: str) -> int:
        """Mark every SCHEDULED or RUNNING trial run (and the parent run) of a sweep whose job has ended KILLED."""
        runs = sweep_runs(self.client, sweep_id)
        return len(end_unfinished(self.client, runs, RunState.KILLED, "the sweep's Ray job ended"))
