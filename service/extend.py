"""Extending a finished sweep: the body → the union spec (``worker.extension``) → its new trials → ONE Ray Job
``{id}-x{n}`` that runs only them, as children of the same MLflow parent run.

The stored spec becomes the union and the sweep goes back to PENDING → SUBMITTED (the sync takes it from there, and
submits it itself if this process dies in between: the job id is stored with the PENDING state). Refused while the
sweep is active (409). A body with nothing new changes nothing and starts no job. An ``Idempotency-Key`` replays the
extension it first made (the same key with another body: 409).

A variant racing pruned so far (a run tagged pruned that no extension reopened since:
``dashboards.layout.pruned_variants``) gets no new trial — they are listed as ``kept_pruned`` and the job gives them
KILLED runs tagged pruned — unless the body's ``reopen`` names it (422 for a name that is not a pruned variant). The
job learns ``reopen`` from the stored extension (``--reopen`` on its command) and tags the variant's pruned runs
reopened: the reopen lasts until racing prunes the variant again.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dashboards.layout import pruned_variants
from dashboards.power import ALPHA, MAX_SEEDS, seeds_needed
from dashboards.report import Report
from rskd_core.config import config_hash
from service.deps import Services, run_in_db
from service.intake import limit_problems
from service.models import ExtensionRow, SweepRow
from service.repository import SweepRepository, now
from service.schemas import SweepRead
from service.sweeps import Refused, job_id_of, spec_hash, submit
from worker.extension import ExtendBody, keep_pruned, new_trials, parse_extension, reopen_problems, union_spec
from worker.spec import SpecError, SweepSpec, Trial, expand
from worker.states import ACTIVE, SweepStatus

UNLIMITED = 10**9  # the stored spec was within the limits when it was accepted


class NewTrial(BaseModel):
    trial_id: str
    variant: str
    role: Literal["variant", "baseline"]
    method: str
    seed: int


class ExtensionRead(BaseModel):
    """What an extension did (or, with dry_run, would do)."""

    sweep: SweepRead
    extension: int = Field(description="n: its job is {id}-x{n}; 0 when nothing was started")
    job_id: str | None = Field(None, description="the Ray Job that runs the new trials")
    new_trials: int
    trials: list[NewTrial] = Field(description="the new trials that run: the union's expansion minus the trials that "
                                   "exist, less those of a variant racing pruned before (kept_pruned)")  # fmt: skip
    kept_pruned: list[NewTrial] = Field(
        default_factory=list,
        description="new trials left out because racing pruned their variant before; name the variant in 'reopen' to "
        "run them. They get a KILLED run tagged pruned (the decision holds)",
    )
    reopened: list[str] = Field(default_factory=list, description="pruned variants this extension runs after all")
    dry_run: bool = False


def seeds_for_power(report: Report, spec: SweepSpec, power: float, max_trials: int) -> list[int]:
    """The seeds to add so that the most demanding undecided comparison (Holm p ≥ alpha, or untested) reaches
    ``power`` (``dashboards.power``: an estimate), capped so the sweep stays within ``max_trials``."""
    undecided = [c for c in report.comparisons if c.p_holm is None or c.p_holm >= ALPHA]
    needs = [n for c in undecided if (n := seeds_needed(c.delta, c.diff_sd, power=power)) is not None]
    if not needs:
        return []
    configs = len(expand(spec, UNLIMITED)) // len(spec.seeds)
    target = min(max(needs), max_trials // configs, MAX_SEEDS)
    start = max(spec.seeds) + 1
    return list(range(start, start + max(0, target - len(spec.seeds))))


def _new(
    text: str, fmt: str, row: SweepRow, services: Services, report: Report | None, power: float | None
) -> tuple[SweepSpec, list[Trial], list[str], str]:
    """The union spec (with the seeds ``power`` asks for, given the sweep's report), its new trials, the variants to
    reopen and the request's hash; 422 naming what is wrong."""
    old = SweepSpec.model_validate_json(row.spec_json)
    limit = services.settings.rskd_max_trials
    try:
        extension = parse_extension(text, fmt)
        reopen = list(dict.fromkeys(extension.reopen)) if isinstance(extension, ExtendBody) else []
        union = union_spec(old, extension, limit)
        if report is not None and power is not None:
            union = union_spec(union, ExtendBody(seeds=seeds_for_power(report, union, power, limit)), limit)
        trials = new_trials(union, {t.trial_id for t in expand(old, UNLIMITED)}, limit)
    except SpecError as err:
        raise Refused(422, str(err).splitlines()[0], err.problems) from None
    problems = limit_problems(trials, services.settings)
    if problems:
        raise Refused(422, f"sweep {union.name}: {len(problems)} new trials break this service's limits", problems)
    asked = {"sweep": row.id, "union": union.model_dump(mode="json"), **({"reopen": sorted(reopen)} if reopen else {})}
    return union, trials, reopen, config_hash(asked)


def _keep_pruned(
    services: Services, row: SweepRow, union: SweepSpec, trials: list[Trial], reopen: list[str]
) -> tuple[list[Trial], list[Trial]]:
    """The new trials that run, and those left out because racing pruned their variant (``reopen`` excepted): 422
    for a name in ``reopen`` that is not a pruned variant, 503 when MLflow does not answer. A sweep without racing
    pruned nothing: MLflow is not asked."""
    pruned: set[str] = set()
    if union.racing is not None:
        try:
            pruned = set(pruned_variants(services.trials.trials(row.id, row.name)))
        except Exception as err:
            raise Refused(503, f"MLflow is not answering: {err}") from None
    problems = reopen_problems(reopen, pruned)
    if problems:
        raise Refused(422, f"sweep {row.id}: reopen names a variant that is not pruned", problems)
    return keep_pruned(trials, pruned, reopen)


def _listing(trials: list[Trial]) -> list[NewTrial]:
    return [NewTrial(trial_id=t.trial_id, variant=t.variant, role=t.role, method=t.method, seed=t.seed) for t in trials]


def _read(row: SweepRow) -> SweepRead:
    return SweepRead.model_validate(row, from_attributes=True)


def _replay(repo: SweepRepository, key: str | None, digest: str) -> ExtensionRead | None:
    """The extension this key already made (409 when it was made with another body)."""
    if key is None:
        return None
    ext = repo.s.scalars(select(ExtensionRow).where(ExtensionRow.idempotency_key == key)).first()
    if ext is None:
        return None
    if ext.request_hash != digest:
        raise Refused(409, "this Idempotency-Key was used with another extension; use a new key")
    row = repo.get(ext.sweep_id)
    assert row is not None
    listed = [NewTrial.model_validate(t) for t in json.loads(ext.trials_json)]
    pruned = json.loads(ext.pruned_json or "{}")
    kept = [NewTrial.model_validate(t) for t in pruned.get("kept_pruned", [])]
    return ExtensionRead(sweep=_read(row), extension=ext.n, job_id=f"{row.id}-x{ext.n}", new_trials=len(listed),
                         trials=listed, kept_pruned=kept, reopened=pruned.get("reopen", []))  # fmt: skip


def _store(repo: SweepRepository, sweep_id: str, union: SweepSpec, listed: list[NewTrial], kept: list[NewTrial],
           reopen: list[str], total: int, key: str | None, digest: str) -> ExtensionRead:  # fmt: skip
    """Record the extension and make the union the sweep's spec → PENDING, with the job id it will be submitted as."""
    row = repo.get(sweep_id)
    if row is None:
        raise Refused(404, f"no sweep {sweep_id!r}")
    if row.status in ACTIVE:
        raise Refused(409, f"sweep {row.id} is {row.status}: wait or cancel it before extending it")
    n = (row.extensions or 0) + 1
    pruned = json.dumps({"reopen": reopen, "kept_pruned": [t.model_dump() for t in kept]})
    repo.s.add(ExtensionRow(sweep_id=row.id, n=n, idempotency_key=key, request_hash=digest, created_at=now(),
                            trials_json=json.dumps([t.model_dump() for t in listed]), pruned_json=pruned))  # fmt: skip
    repo.update(row, status=SweepStatus.PENDING, message=f"extended by {len(listed)} trials", extensions=n, attempts=0,
                spec_json=union.model_dump_json(), spec_hash=spec_hash(union), trials=total, runs_closed=False,
                finished_at=None)  # fmt: skip
    repo.update(row, job_id=job_id_of(row))
    return ExtensionRead(sweep=_read(row), extension=n, job_id=row.job_id, new_trials=len(listed), trials=listed,
                         kept_pruned=kept, reopened=reopen)  # fmt: skip


def extend(
    services: Services,
    row: SweepRow,
    text: str,
    fmt: str,
    key: str | None,
    dry_run: bool,
    report: Report | None = None,
    power: float | None = None,
) -> tuple[ExtensionRead, bool]:
    """Extend the sweep by the body (see the module) and, with ``power``, by the seeds its ``report`` asks for; True
    when this request started a job."""
    sweep_id = row.id
    union, trials, reopen, digest = _new(text, fmt, row, services, report, power)
    run, left_out = _keep_pruned(services, row, union, trials, reopen)
    listed, kept = _listing(run), _listing(left_out)
    if dry_run:
        return ExtensionRead(sweep=_read(row), extension=0, new_trials=len(listed), trials=listed, kept_pruned=kept,
                             reopened=reopen, dry_run=True), False  # fmt: skip
    replayed = run_in_db(services, lambda repo: _replay(repo, key, digest))
    if replayed is not None:
        return replayed, False
    if row.status in ACTIVE:
        raise Refused(409, f"sweep {row.id} is {row.status}: wait or cancel it before extending it")
    if not run:
        return ExtensionRead(sweep=_read(row), extension=0, new_trials=0, trials=[], kept_pruned=kept,
                             reopened=reopen), False  # fmt: skip
    total = len(expand(union, UNLIMITED))
    try:
        done = run_in_db(services, lambda repo: _store(repo, sweep_id, union, listed, kept, reopen, total, key, digest))
    except IntegrityError:  # a concurrent request with the same key won: replay it
        again = run_in_db(services, lambda repo: _replay(repo, key, digest))
        if again is None:
            raise
        return again, False
    try:
        submitted = run_in_db(services, lambda repo: submit(services, repo, sweep_id))
    except Exception as err:
        raise Refused(503, f"sweep {sweep_id} was extended but not submitted to Ray: {err}; resume it") from None
    return done.model_copy(update={"sweep": _read(submitted)}), True
