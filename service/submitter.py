"""Submission of a sweep as ONE Ray Job, the same path for the embedded stack and a remote cluster.

The entrypoint is ``python -m worker.sweep run --sweep-id ID --spec-b64 …``: the spec travels with the job (no shared
filesystem between the API and Ray is assumed). A resume is a new job (submission ids cannot be reused).
"""

from __future__ import annotations

import base64
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from worker.states import SweepStatus

# Ray job states → sweep states
JOB_TO_SWEEP = {
    "PENDING": SweepStatus.SUBMITTED,
    "RUNNING": SweepStatus.RUNNING,
    "SUCCEEDED": SweepStatus.SUCCEEDED,
    "FAILED": SweepStatus.FAILED,
    "STOPPED": SweepStatus.CANCELLED,
}


@dataclass(frozen=True)
class JobState:
    status: SweepStatus
    message: str | None = None


class Submitter(Protocol):
    def submit(
        self,
        job_id: str,
        sweep_id: str,
        spec_json: str,
        *,
        resume: bool = False,
        extension: int = 0,
        reopen: Sequence[str] = (),
    ) -> None: ...

    def state(self, job_id: str) -> JobState | None: ...

    def stop(self, job_id: str) -> None: ...

    def ping(self) -> None: ...


def entrypoint(sweep_id: str, spec_json: str, resume: bool, extension: int = 0, reopen: Sequence[str] = ()) -> str:
    """``extension`` n > 0: the job of the sweep's n-th extension (only its new trials run; ``reopen``: the variants
    pruned before that get theirs)."""
    b64 = base64.b64encode(spec_json.encode()).decode()
    more = f" --extension {extension}" if extension else ""
    more += "".join(f" --reopen {shlex.quote(v)}" for v in reopen) if extension else ""
    return f"python -m worker.sweep {'resume' if resume else 'run'} --sweep-id {sweep_id} --spec-b64 {b64}{more}"


class RayJobSubmitter:
    """Ray's Jobs API (``JobSubmissionClient``); the client is created lazily and kept."""

    def __init__(
        self,
        address: str,
        env: dict[str, str],
        stop_timeout_s: int = 60,
        auth_mode: str | None = None,
        auth_token: str | None = None,
    ) -> None:
        self.address = address
        self.auth_mode = auth_mode
        self.auth_token = auth_token
        self.agent_wait_s = 60.0
        self.env = env
        self.stop_timeout_s = stop_timeout_s
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import os

            from ray.job_submission import JobSubmissionClient

            if self.auth_mode:  # Ray's client reads the mode and the token from the environment
                os.environ["RAY_AUTH_MODE"] = self.auth_mode
            if self.auth_token:
                os.environ["RAY_AUTH_TOKEN"] = self.auth_token

            self._client = JobSubmissionClient(self.address)
        return self._client

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
        # read by the job supervisor: SIGINT is Tune's clean stop, and the driver gets time to mark runs KILLED
        env = {**self.env, "RAY_JOB_STOP_SIGNAL": "SIGINT", "RAY_JOB_STOP_WAIT_TIME_S": str(self.stop_timeout_s)}
        deadline = time.monotonic() + self.agent_wait_s
        while True:
            try:
                self.client.submit_job(
                    entrypoint=entrypoint(sweep_id, spec_json, resume, extension, reopen),
                    submission_id=job_id,
                    runtime_env={"env_vars": env},
                    metadata={"rskd_sweep_id": sweep_id},
                )
                return
            except RuntimeError as err:
                # a head that has just started answers before its job agent is up
                if "No available agent" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def state(self, job_id: str) -> JobState | None:
        try:
            info = self.client.get_job_info(job_id)
        except RuntimeError:  # unknown job (e.g. the cluster was restarted)
            return None
        return JobState(JOB_TO_SWEEP.get(str(info.status), SweepStatus.RUNNING), info.message)

    def stop(self, job_id: str) -> None:
        self.client.stop_job(job_id)

    def ping(self) -> None:
        self.client.list_jobs()
