"""What can happen to a stored sweep: create it (or find the one its Idempotency-Key names), submit it to Ray, cancel
it, resume it. The routes call these; so does the background sync (a sweep stored but never submitted).

Each step opens its own short database session (``run_in_db``) and none is held while Ray answers. A request this
service refuses raises :class:`Refused`, which the app answers as a Problem with its status code.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from rskd_core.config import config_hash
from service.deps import Services, run_in_db
from service.models import ExtensionRow, SweepRow
from service.repository import SweepRepository
from worker.spec import SweepSpec
from worker.states import RESUMABLE, TERMINAL, SweepStatus


class Refused(Exception):
    """A request about a sweep this service refuses: the HTTP status, a sentence, and one line per problem."""

    def __init__(self, status: int, detail: str, problems: list[str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problems = problems or []


def spec_hash(spec: SweepSpec) -> str:
    """The spec's identity for the idempotency rule: the same canonical-JSON hash as ``RunConfig.config_hash``."""
    return config_hash(spec.model_dump(mode="json"))


def _get(repo: SweepRepository, sweep_id: str) -> SweepRow:
    row = repo.get(sweep_id)
    if row is None:
        raise Refused(404, f"no sweep {sweep_id!r}")
    return row


def _store(repo: SweepRepository, spec: SweepSpec, digest: str, trials: int, key: str | None) -> tuple[SweepRow, bool]:
    """A new PENDING sweep, or (created False) the one already stored under this Idempotency-Key. Two concurrent
    requests with one key race on the key's unique index: the loser rolls back and returns the winner's sweep."""
    existing = repo.by_idempotency_key(key) if key else None
    if existing is not None:
        return existing, False
    try:
        row = repo.create(name=spec.name, spec_json=spec.model_dump_json(), spec_hash=digest, trials=trials,
                          idempotency_key=key)  # fmt: skip
    except IntegrityError:
        repo.s.rollback()
        again = repo.by_idempotency_key(key) if key else None
        if again is None:
            raise
        return again, False
    return row, True


def create(services: Services, spec: SweepSpec, trials: int, key: str | None) -> tuple[SweepRow, bool]:
    """Store and submit a validated sweep; ``created`` is False when ``key`` already names a sweep of the same spec
    (that sweep is returned as it is). The key used with another spec is a 409; Ray refusing the job a 503 (the sweep
    stays stored, FAILED, and can be resumed)."""
    digest = spec_hash(spec)
    row, created = run_in_db(services, lambda repo: _store(repo, spec, digest, trials, key))
    if not created:
        if row.spec_hash != digest:
            raise Refused(409, "this Idempotency-Key was used with another spec; use a new key")
        return row, False
    try:
        return run_in_db(services, lambda repo: submit(services, repo, row.id)), True
    except Exception as err:
        raise Refused(
            503, f"sweep {row.id} is stored but could not be submitted to Ray: {err}; retry with resume"
        ) from None


def job_id_of(row: SweepRow) -> str:
    """The submission id of the sweep's next job: the sweep id (its n-th extension: ``{id}-x{n}``), then ``-r1``,
    ``-r2`` … for its resumes."""
    base = f"{row.id}-x{row.extensions}" if row.extensions else row.id
    return base if row.attempts == 0 else f"{base}-r{row.attempts}"


def _reopen(repo: SweepRepository, row: SweepRow) -> list[str]:
    """The pruned variants the sweep's latest extension reopens (service/extend.py stored them with it)."""
    if not row.extensions:
        return []
    query = select(ExtensionRow.pruned_json).where(ExtensionRow.sweep_id == row.id, ExtensionRow.n == row.extensions)
    stored = repo.s.scalars(query).first()
    return list(json.loads(stored).get("reopen", [])) if stored else []


def submit(services: Services, repo: SweepRepository, sweep_id: str, *, resume: bool = False) -> SweepRow:
    """Submit the sweep's next Ray Job (``job_id_of``: the sweep id, then ``-r1``, ``-r2`` … for resumes) → SUBMITTED.
    A job that already exists was submitted before a crash: it is adopted. Ray refusing marks the sweep FAILED and
    re-raises."""
    row = _get(repo, sweep_id)
    job_id = job_id_of(row)
    n = row.extensions or 0
    try:
        services.submitter.submit(job_id, row.id, row.spec_json, resume=resume, extension=n, reopen=_reopen(repo, row))
    except Exception as err:
        if "already exists" not in str(err):
            repo.update(row, status=SweepStatus.FAILED, message=f"could not submit to Ray: {err}")
            raise
    repo.update(row, status=SweepStatus.SUBMITTED, job_id=job_id, attempts=row.attempts + 1, message="",
                runs_closed=False)  # fmt: skip
    return row


def cancel(services: Services, row: SweepRow) -> SweepRow:
    """Stop the sweep's Ray Job (its driver marks the unfinished runs KILLED; the sync checks) → CANCELLED."""
    if row.status in TERMINAL:
        raise Refused(409, f"sweep {row.id} is already {row.status}")
    if row.job_id:
        try:
            services.submitter.stop(row.job_id)
        except Exception as err:
            raise Refused(503, f"could not stop Ray job {row.job_id}: {err}") from None

    def mark(repo: SweepRepository) -> SweepRow:
        current = _get(repo, row.id)
        repo.update(current, status=SweepStatus.CANCELLED, message="cancelled by request")
        return current

    return run_in_db(services, mark)


def resume(services: Services, row: SweepRow) -> SweepRow:
    """Submit a FAILED or CANCELLED sweep again; its finished trials are not re-run."""
    if row.status not in RESUMABLE:
        raise Refused(409, f"sweep {row.id} is {row.status}; only FAILED or CANCELLED sweeps can be resumed")
    try:
        return run_in_db(services, lambda repo: submit(services, repo, row.id, resume=row.attempts > 0))
    except Exception as err:
        raise Refused(503, f"could not submit the resume of {row.id} to Ray: {err}") from None
