"""Keeping sweep states true: Ray job states → the database, and no MLflow run left RUNNING after its job ended.

Runs in the background every ``RSKD_SYNC_INTERVAL_S`` and once at start-up, so a restarted service rebuilds every
active sweep's state from the database, Ray and MLflow.
"""

from __future__ import annotations

import logging

from service.deps import Services
from service.repository import SweepRepository
from service.sweeps import submit
from worker.states import TERMINAL, SweepStatus

log = logging.getLogger(__name__)


def sync_once(services: Services) -> None:
    with services.db.session() as session:
        repo = SweepRepository(session)
        for row in repo.active():
            job_id = row.job_id or row.id
            try:
                state = services.submitter.state(job_id)
            except Exception as err:  # Ray unreachable: keep the last known state
                log.warning("cannot read job %s: %s", job_id, err)
                continue
            if state is None:
                # stored, never submitted (the service died in between): submit now
                if row.status == SweepStatus.PENDING:
                    submit(services, repo, row.id)
                else:
                    repo.update(
                        row, status=SweepStatus.FAILED, message=f"Ray has no job {job_id} (was the cluster restarted?)"
                    )
                continue
            if state.status != row.status:
                repo.update(row, status=state.status, message=state.message if state.status in TERMINAL else None)
        for row in repo.unclosed():  # cancelled by request, or ended above
            job_id = row.job_id or row.id
            try:
                state = services.submitter.state(job_id)
            except Exception as err:
                log.warning("cannot read job %s: %s", job_id, err)
                continue
            if state is not None and state.status not in TERMINAL:
                continue  # the driver is still stopping: it closes its own runs first
            if close_runs(services, row.id):
                repo.update(row, runs_closed=True)


def close_runs(services: Services, sweep_id: str) -> bool:
    """After a job ended: any run still SCHEDULED or RUNNING is KILLED (its process is gone). True when done."""
    try:
        services.trials.kill_unfinished(sweep_id)
    except Exception as err:
        log.warning("cannot close the runs of %s: %s", sweep_id, err)
        return False
    return True
