"""The /v1/sweeps routes: thin — the body becomes a spec in service.intake, what happens to a sweep lives in
service.sweeps, persistence in the repository, trial states in MLflow."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse

from dashboards.layout import experiment_url
from service import sweeps
from service.deps import ServicesDep, SweepDep, run_in_db
from service.extend import ExtensionRead, extend
from service.intake import body_format, read_body, read_spec
from service.models import SweepRow
from service.reports import TEXT_MEDIA, progress, report_text, sweep_report
from service.schemas import Problem, Report, SweepDetail, SweepList, SweepRead, TrialRead, ValidationReport
from service.trials import TrialView
from worker.extension import ExtendBody
from worker.spec import SweepSpec
from worker.states import SweepStatus

router = APIRouter(prefix="/sweeps", tags=["sweeps"])
SPEC_SCHEMA = SweepSpec.model_json_schema(ref_template="#/components/schemas/{model}")
EXTEND_SCHEMA = ExtendBody.model_json_schema(ref_template="#/components/schemas/{model}")
SPEC_DEFS = {"SweepSpec": {k: v for k, v in SPEC_SCHEMA.items() if k != "$defs"}, **SPEC_SCHEMA.get("$defs", {}),
             "ExtendBody": {k: v for k, v in EXTEND_SCHEMA.items() if k != "$defs"}}  # fmt: skip
EXTEND_BODY = {
    "requestBody": {
        "required": True,
        "description": "what to add (ExtendBody), or a whole SweepSpec that contains the sweep's; JSON, or YAML with "
        "content-type application/yaml",
        "content": {"application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/ExtendBody"},
                                                              {"$ref": "#/components/schemas/SweepSpec"}]}}},
    }
}  # fmt: skip
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


def _read(row: SweepRow) -> SweepRead:
    return SweepRead.model_validate(row, from_attributes=True)


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
    spec, trials = await read_spec(request, services.settings)
    if dry_run:
        return JSONResponse(ValidationReport(valid=True, name=spec.name, trials=len(trials)).model_dump())
    row, created = await asyncio.to_thread(sweeps.create, services, spec, len(trials), idempotency_key)
    return JSONResponse(_read(row).model_dump(mode="json"), status_code=201 if created else 200)


@router.get("", response_model=SweepList)
def list_sweeps(
    services: ServicesDep,
    status_filter: Annotated[SweepStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> SweepList:
    rows, total = run_in_db(services, lambda repo: repo.page(status=status_filter, limit=limit, offset=offset))
    return SweepList(items=[_read(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{sweep_id}", response_model=SweepDetail, responses=problem_responses(404, 503))
async def get_sweep(row: SweepDep, services: ServicesDep) -> SweepDetail:
    spec = json.loads(row.spec_json)
    objective = spec.get("objective") or {"metric": "test/top1", "mode": "max"}
    trials = await _trials(services, row)
    by_state, best = progress(trials, row)
    ui, experiment = services.settings.ui_links()["mlflow"], next((t.experiment_id for t in trials), None)
    return SweepDetail(
        **_read(row).model_dump(),
        trials_by_state=by_state,
        best_objective=best,
        objective=objective,
        spec=spec,
        mlflow_url=experiment_url(ui, experiment) if ui and experiment else None,
    )


@router.get("/{sweep_id}/trials", response_model=list[TrialRead], responses=problem_responses(404, 503))
async def get_trials(row: SweepDep, services: ServicesDep) -> list[TrialRead]:
    return await _trials(services, row)


@router.post("/{sweep_id}/cancel", response_model=SweepRead, responses=problem_responses(404, 409, 503))
async def cancel_sweep(row: SweepDep, services: ServicesDep) -> SweepRead:
    return _read(await asyncio.to_thread(sweeps.cancel, services, row))


@router.post("/{sweep_id}/resume", response_model=SweepRead, responses=problem_responses(404, 409, 503))
async def resume_sweep(row: SweepDep, services: ServicesDep) -> SweepRead:
    return _read(await asyncio.to_thread(sweeps.resume, services, row))


@router.post(
    "/{sweep_id}/extend",
    status_code=status.HTTP_201_CREATED,
    response_model=ExtensionRead,
    openapi_extra=EXTEND_BODY,
    responses={
        200: {"model": ExtensionRead, "description": "nothing new (no job), a dry run, or the same Idempotency-Key"},
        **problem_responses(404, 409, 413, 422, 503),
    },
)
async def extend_sweep(
    row: SweepDep,
    request: Request,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    dry_run: Annotated[bool, Query(description="list the new trials; change and run nothing")] = False,
    to_power: Annotated[
        float | None,
        Query(
            gt=0,
            lt=1,
            description="also add the seeds the most demanding undecided comparison needs for this "
            "power (the report's seeds_needed estimate), within RSKD_MAX_TRIALS",
        ),
    ] = None,
) -> Any:
    """Grow a finished sweep: more seeds, variants, grid values or baselines (or a whole spec that contains the old
    one). Only the new trials run, in one Ray Job ``{id}-x{n}``, under the same MLflow parent run; the stored spec
    becomes the union. 409 while the sweep is active (wait or cancel)."""
    text = await read_body(request, services.settings.rskd_max_body_bytes)
    fmt = body_format(request.headers.get("content-type"))
    key = (idempotency_key or "").strip() or None
    report = None
    if to_power is not None:
        try:
            report = await sweep_report(services, row)
        except Exception as err:
            raise sweeps.Refused(503, f"MLflow is not answering: {err}") from None
    result, created = await asyncio.to_thread(extend, services, row, text, fmt, key, dry_run, report, to_power)
    return JSONResponse(result.model_dump(mode="json"), status_code=201 if created else 200)


@router.get(
    "/{sweep_id}/report",
    response_model=Report,
    responses={
        200: {"content": {m.split(";")[0]: {"schema": {"type": "string"}} for m in TEXT_MEDIA.values()}},
        **problem_responses(404, 503),
    },
)
async def get_report(
    row: SweepDep,
    services: ServicesDep,
    format: Annotated[Literal["json", "md", "latex", "csv"], Query(description="json, or a rendered table")] = "json",
    baseline: Annotated[
        str | None, Query(max_length=200, description="the tables' Δ column (default: the first)")
    ] = None,
) -> Any:
    """The comparison against the baselines on the objective: per variant n, mean, std and 95% CI; per variant and
    baseline the difference with its 95% CI, p and Holm-corrected p. Accuracies are fractions in JSON."""
    try:
        rep = await sweep_report(services, row)
    except Exception as err:
        raise sweeps.Refused(503, f"MLflow is not answering: {err}") from None
    if format == "json":
        return rep
    try:
        return report_text(rep, format, baseline)
    except ValueError as err:  # a baseline the sweep does not have: a missing sub-resource
        raise sweeps.Refused(404, str(err)) from None
