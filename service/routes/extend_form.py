"""The sweep page's "Extend" form: ``POST /dashboards/sweeps/{id}/extend`` (token-protected like every page; the
token cookie is SameSite=strict, so another site cannot post it). It makes the same extension as
``POST /v1/sweeps/{id}/extend`` and returns to the sweep's page; a refusal is shown with its problems. Its ``reopen``
checkboxes (one per variant racing pruned) become the body's ``reopen``."""

from __future__ import annotations

import asyncio
import re
from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from dashboards.report import Report
from rskd_core.config_io import format_validation_error
from service.deps import ServicesDep, SweepDep
from service.extend import extend
from service.reports import sweep_report
from service.routes.dashboards import Auth
from service.sweeps import Refused
from worker.extension import ExtendBody

router = APIRouter(prefix="/dashboards", include_in_schema=False)
MAX_FORM = 16384  # bytes: seeds, a power and up to ExtendBody's 100 reopen names; more is refused, never cut


def _form(body: bytes) -> tuple[ExtendBody, float | None]:
    """Seeds (``3,4`` or ``3 4``), the ticked ``reopen`` variants and an optional power in (0, 1); ValueError names
    the bad field."""
    if len(body) > MAX_FORM:
        raise ValueError(f"the form has {len(body)} bytes, more than {MAX_FORM}: use the API or the CLI")
    form = parse_qs(body.decode("utf-8", errors="replace"))
    seeds_text, power_text = ((form.get(k) or [""])[0].strip() for k in ("seeds", "to_power"))
    try:
        seeds = [int(s) for s in re.split(r"[,\s]+", seeds_text) if s]
    except ValueError:
        raise ValueError(f"seeds {seeds_text!r}: give whole numbers separated by commas, e.g. 3,4") from None
    try:
        power = float(power_text) if power_text else None
    except ValueError:
        power = -1.0
    if power is not None and not 0 < power < 1:
        raise ValueError(f"power {power_text!r}: give a number between 0 and 1, e.g. 0.8")
    try:
        return ExtendBody(seeds=seeds, reopen=form.get("reopen", [])), power
    except ValidationError as err:
        raise ValueError(format_validation_error(err).splitlines()[0]) from None


def _refused(sweep_id: str, detail: str, problems: list[str], code: int) -> HTMLResponse:
    items = "".join(f"<li>{escape(p)}</li>" for p in problems)
    page = (f"<!doctype html><title>Not extended</title><link rel=stylesheet href=/dashboards/static/style.css>"
            f"<main><h1>Not extended</h1><p class=error>{escape(detail)}</p><ul>{items}</ul>"
            f"<p><a href=/dashboards/sweeps/{escape(sweep_id)}>back to the sweep</a></p></main>")  # fmt: skip
    return HTMLResponse(page, status_code=code)


@router.post("/sweeps/{sweep_id}/extend", dependencies=[Auth])
async def extend_form(row: SweepDep, request: Request, services: ServicesDep) -> Response:
    try:
        asked, power = _form(await request.body())
    except ValueError as err:
        return _refused(row.id, str(err), [], status.HTTP_422_UNPROCESSABLE_CONTENT)
    report: Report | None = None
    try:
        if power is not None:
            report = await sweep_report(services, row)
        body = asked.model_dump_json(exclude_defaults=True)
        await asyncio.to_thread(extend, services, row, body, "json", None, False, report, power)
    except Refused as err:
        return _refused(row.id, err.detail, err.problems, err.status)
    except Exception as err:  # MLflow away while reading the report
        return _refused(row.id, f"MLflow is not answering: {err}", [], status.HTTP_503_SERVICE_UNAVAILABLE)
    return RedirectResponse(f"/dashboards/sweeps/{row.id}", status_code=status.HTTP_303_SEE_OTHER)
