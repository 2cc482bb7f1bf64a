"""The /v1/sweeps routes: thin — parsing and validation live in worker.spec, persistence in the repository,
submission in the submitter, trial states in MLflow."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from service.deps import Services, ServicesDep, in_db, run_in_db
from service.models import SweepRow
from service.reports import TEXT_MEDIA, progress, report_text, sweep_report
from service.repository import SweepRepository
from service.schemas import Problem, Report, SweepDetail, SweepList, SweepRead, TrialRead, ValidationReport
from service.settings import Settings
from service.sync import submit
from service.trials import TrialView
from worker.spec import SpecError, SweepSpec, Trial, data_path_problems, expand, parse_spec
from worker.states import RESUMABLE, TERMINAL, SweepStatus

router = APIRouter(prefix="/sweeps", tags=["sweeps"])
SPEC_SCHEMA = SweepSpec.model_json_schema(ref_template="#/components/schemas/{model}")
SPEC_DEFS = {"SweepSpec": {k: v for k, v in SPEC_SCHEMA.items() if k != "$defs"}, **SPEC_SCHEMA.get("$defs", {})}
SPEC_BODY = {
    "requestBody": {
        "required": True,
        "description": "a SweepSpec as JSON, or the same document as YAML with content-type application/yaml",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SweepSpec"}}},
    }
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries: these status codes answer a Problem body."""
    return {code: {"model": Problem} for code in codes}


def limit_problems(trials: list[Trial], settings: Settings) -> list[str]:
    """What this service refuses beyond the spec's own rules: too many epochs, data paths outside RSKD_DATA_ROOT."""
    cap = settings.rskd_max_epochs
    over = [f"{t.variant} (seed {t.seed}): optim.epochs={t.config.optim.epochs} is over this service's limit "
            f"RSKD_MAX_EPOCHS={cap}" for t in trials if t.config.optim.epochs > cap]  # fmt: skip
    return over + data_path_problems(trials, settings.rskd_data_root)


def _read(row: SweepRow) -> SweepRead:
    return SweepRead.model_validate(row, from_attributes=True)


def _problem(code: int, detail: str, problems: list[str] | None = None) -> JSONResponse:
    return JSONResponse(Problem(detail=detail, problems=problems or []).model_dump(), status_code=code)


def _get(repo: SweepRepository, sweep_id: str) -> SweepRow:
    row = repo.get(sweep_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no sweep {sweep_id!r}")
    return row


async def _row(services: ServicesDep, sweep_id: str) -> SweepRow:
    return await in_db(services, lambda repo: _get(repo, sweep_id))


async def _trials(services: ServicesDep, row: SweepRow) -> list[TrialView]:
    try:
        return await services.trial_cache.trials(row)
    except Exception as err:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"MLflow is not answering: {err}") from None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepRead,
    openapi_extra=SPEC_BODY,
    responses={
        200: {
            "model": SweepRead | ValidationReport,
            "description": "the same Idempotency-Key and spec: the existing sweep; with dry_run: the validation",
        },
        **problem_responses(409, 413, 422, 503),
    },
)
async def create_sweep(
    request: Request,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    dry_run: Annotated[bool, Query(description="validate and count trials; store and run nothing")] = False,
) -> Any:
    idempotency_key = (idempotency_key or "").strip() or None  # an empty header is no key
    limit = services.settings.rskd_max_body_bytes
    body = await request.body()
    if len(body) > limit:
        return _problem(413, f"request body is {len(body)} bytes, over the limit of {limit} bytes")
    ctype = request.headers.get("content-type", "application/json")
    fmt = "yaml" if "yaml" in ctype else "json"
    try:
        spec = parse_spec(body.decode("utf-8", errors="replace"), fmt=fmt)
        trials = expand(spec, services.settings.rskd_max_trials)
    except SpecError as err:
        return _problem(422, str(err).splitlines()[0], err.problems)
    problems = limit_problems(trials, services.settings)
    if problems:
        return _problem(422, f"sweep {spec.name}: {len(problems)} trials break this service's limits", problems)
    if dry_run:
        return JSONResponse(ValidationReport(valid=True, name=spec.name, trials=len(trials)).model_dump())
    spec_json = spec.model_dump_json()
    spec_hash = hashlib.sha256(json.dumps(json.loads(spec_json), sort_keys=True).encode()).hexdigest()

    def store(repo: SweepRepository) -> tuple[SweepRow, bool]:
        existing = repo.by_idempotency_key(idempotency_key) if idempotency_key else None
        if existing is not None:
            return existing, False
        try:
            row = repo.create(name=spec.name, spec_json=spec_json, spec_hash=spec_hash, trials=len(trials),
                              idempotency_key=idempotency_key)  # fmt: skip
        except IntegrityError:  # the same key, stored by a concurrent request a moment ago
            repo.s.rollback()
            again = repo.by_idempotency_key(idempotency_key) if idempotency_key else None
            if again is None:
                raise
            return again, False
        return row, True

    row, created = await in_db(services, store)
    if not created:
        if row.spec_hash != spec_hash:
            return _problem(409, "this Idempotency-Key was used with another spec; use a new key")
        return JSONResponse(_read(row).model_dump(mode="json"), status_code=200)
    try:
        row = await in_db(services, lambda repo: _submit(services, repo, row.id))
    except Exception as err:
        return _problem(503, f"sweep {row.id} is stored but could not be submitted to Ray: {err}; retry with resume")
    return _read(row)


def _submit(services: Services, repo: SweepRepository, sweep_id: str, *, resume: bool = False) -> SweepRow:
    submit(services, repo, sweep_id, resume=resume)
    return _get(repo, sweep_id)


@router.get("", response_model=SweepList)
def list_sweeps(
    services: ServicesDep,
    status_filter: Annotated[SweepStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> SweepList:
    rows, total = run_in_db(services, lambda repo: repo.page(status=status_filter, limit=limit, offset=offset))
    return SweepList(items=[_read(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{sweep_id}", response_model=SweepDetail, responses={404: {"model": Problem}, 503: {"model": Problem}})
async def get_sweep(sweep_id: str, services: ServicesDep) -> SweepDetail:
    row = await _row(services, sweep_id)
    spec = json.loads(row.spec_json)
    objective = spec.get("objective") or {"metric": "test/top1", "mode": "max"}
    trials = await _trials(services, row)
    by_state, best = progress(trials, row)
    return SweepDetail(
        **_read(row).model_dump(), trials_by_state=by_state, best_objective=best, objective=objective, spec=spec
    )


@router.get("/{sweep_id}/trials", response_model=list[TrialRead], responses={404: {"model": Problem}})
async def get_trials(sweep_id: str, services: ServicesDep) -> list[TrialRead]:
    return await _trials(services, await _row(services, sweep_id))


@router.post(
    "/{sweep_id}/cancel", response_model=SweepRead, responses={404: {"model": Problem}, 409: {"model": Problem}}
)
async def cancel_sweep(sweep_id: str, services: ServicesDep) -> Any:
    row = await _row(services, sweep_id)
    if row.status in TERMINAL:
        return _problem(409, f"sweep {sweep_id} is already {row.status}")
    if row.job_id:
        try:
            await asyncio.to_thread(services.submitter.stop, row.job_id)
        except Exception as err:
            return _problem(503, f"could not stop Ray job {row.job_id}: {err}")

    def mark(repo: SweepRepository) -> SweepRow:
        current = _get(repo, sweep_id)
        repo.update(current, status=SweepStatus.CANCELLED, message="cancelled by request")
        return current

    return _read(await in_db(services, mark))


@router.post(
    "/{sweep_id}/resume", response_model=SweepRead, responses={404: {"model": Problem}, 409: {"model": Problem}}
)
async def resume_sweep(sweep_id: str, services: ServicesDep) -> Any:
    row = await _row(services, sweep_id)
    if row.status not in RESUMABLE:
        return _problem(409, f"sweep {sweep_id} is {row.status}; only FAILED or CANCELLED sweeps can be resumed")
    try:
        row = await in_db(services, lambda repo: _submit(services, repo, sweep_id, resume=row.attempts > 0))
    except Exception as err:
        return _problem(503, f"could not submit the resume of {sweep_id} to Ray: {err}")
    return _read(row)


@router.get(
    "/{sweep_id}/report",
    response_model=Report,
    responses={
        200: {"content": {m.split(";")[0]: {"schema": {"type": "string"}} for m in TEXT_MEDIA.values()}},
        **problem_responses(404, 422, 503),
    },
)
async def get_report(
    sweep_id: str,
    services: ServicesDep,
    format: Annotated[Literal["json", "md", "latex", "csv"], Query(description="json, or a rendered table")] = "json",
    baseline: Annotated[
        str | None, Query(max_length=200, description="the tables' Δ column (default: the first)")
    ] = None,
) -> Any:
    """The comparison against the baselines on the objective: per variant n, mean, std and 95% CI; per variant and
    baseline the difference with its 95% CI, p and Holm-corrected p. Accuracies are fractions in JSON."""
    row = await _row(services, sweep_id)
    try:
        rep = await sweep_report(services, row)
    except Exception as err:
        return _problem(503, f"MLflow is not answering: {err}")
    if format == "json":
        return rep
    try:
        return report_text(rep, format, baseline)
    except ValueError as err:
        return _problem(422, str(err))
