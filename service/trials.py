"""Reading a sweep's trials from MLflow (the source of truth for trial states and metrics)."""

from __future__ import annotations

import json
from typing import Any, Protocol

from dashboards.collect import SweepData, collect, sweep_runs, trial_runs
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
        out = []
        for r in runs:
            tags = r.data.tags
            out.append(
                TrialView(
                    trial_id=tags["rskd.trial_id"],
                    run_id=r.info.run_id,
                    experiment_id=r.info.experiment_id,
                    variant=tags.get("rskd.variant", ""),
                    role=tags.get("rskd.role", ""),
                    method=tags.get("rskd.method", ""),
                    seed=int(tags.get("rskd.seed", "0")),
                    status=r.info.status,
                    knobs=json.loads(tags.get("rskd.knobs", "{}")),
                    metrics=dict(r.data.metrics),
                    epochs_done=int(r.data.metrics.get("epoch", 0)),
                )
            )
        return sorted(out, key=lambda t: (t.role != "variant", t.variant, t.seed))

    def sweep_data(self, sweep_id: str, experiment: str | None = None) -> SweepData:
        return collect(self.client, sweep_id, experiment)

    def ping(self) -> None:
        self.client.search_experiments(max_results=1)

    def kill_unfinished(self, sweep_id: str) -> int:
        """Mark every SCHEDULED or RUNNING trial run (and the parent run) of a sweep whose job has ended KILLED."""
        runs = sweep_runs(self.client, sweep_id)
        n = 0
        for r in runs:
            if r.info.status in ("SCHEDULED", "RUNNING"):
                self.client.set_tag(r.info.run_id, "rskd.end_reason", "the sweep's Ray job ended")
                self.client.set_terminated(r.info.run_id, status="KILLED")
                n += 1
        return n
