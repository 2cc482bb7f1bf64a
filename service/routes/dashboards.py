"""The dashboards: ``/dashboards`` (sweeps with status and progress) and ``/dashboards/sweeps/{id}`` (the comparison
table, the plots, the trials with links into MLflow). HTML from ``dashboards.pages``; every asset is served here.

With ``RSKD_API_TOKEN`` set, the pages need the token too: as a Bearer header, or as the HttpOnly cookie that
``/dashboards/login`` sets.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from dashboards.pages import index_page, login_page, sweep_page
from dashboards.plots import grid_axes
from service.deps import ServicesDep, SweepDep, bearer, in_db, token_ok
from service.models import SweepRow
from service.reports import progress, report_text, sweep_plots, sweep_report
from worker.states import ACTIVE

COOKIE = "rskd_token"
router = APIRouter(prefix="/dashboards", include_in_schema=False)


def page_auth(request: Request, services: ServicesDep) -> None:
    if not token_ok(services.settings, bearer(request) or request.cookies.get(COOKIE, "")):
        raise HTTPException(status.HTTP_303_SEE_OTHER, detail="sign in", headers={"Location": "/dashboards/login"})


Auth = Depends(page_auth)


@router.get("", response_class=HTMLResponse, dependencies=[Auth])
async def index(services: ServicesDep) -> HTMLResponse:
    rows, total = await in_db(services, lambda repo: repo.page(status=None, limit=100, offset=0))

    async def one(row: SweepRow) -> dict[str, Any]:
        item: dict[str, Any] = {"id": row.id, "name": row.name, "status": row.status, "trials": row.trials,
                                "created_at": row.created_at, "active": row.status in ACTIVE}  # fmt: skip
        try:
            states, best = progress(await services.trial_cache.trials(row), row)
        except Exception:  # MLflow down: the page still lists the sweeps
            return item
        return {**item, "states": states, "best": best}

    items = await asyncio.gather(*(one(r) for r in rows))
    return HTMLResponse(index_page(list(items), total, services.settings.ui_links()))


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse, dependencies=[Auth])
async def sweep(row: SweepDep, services: ServicesDep) -> HTMLResponse:
    info = {"id": row.id, "name": row.name, "status": row.status, "message": row.message,
            "spec": json.loads(row.spec_json), "active": row.status in ACTIVE}  # fmt: skip
    links = services.settings.ui_links()
    try:
        trials = [t.model_dump() for t in await services.trial_cache.trials(row)]
        data = await services.trial_cache.data(row)
        report = await sweep_report(services, row)
    except Exception as err:
        page = sweep_page(info, None, [], [], links, error=f"MLflow is not answering: {err}")
        return HTMLResponse(page, status_code=503)
    plots = ["curves", "deltas"] + (["heatmap"] if len(grid_axes(data)) == 2 else [])
    return HTMLResponse(sweep_page(info, report, trials, plots, links))


@router.get("/sweeps/{sweep_id}/plots/{name}.png", dependencies=[Auth])
async def plot(row: SweepDep, name: str, services: ServicesDep) -> Response:
    plots = await sweep_plots(services, row)
    if name not in plots:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no plot {name!r}; this sweep has {sorted(plots)}")
    return Response(plots[name], media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.get("/sweeps/{sweep_id}/report.{fmt}", dependencies=[Auth])
async def download(
    row: SweepDep, services: ServicesDep, fmt: Annotated[str, Path(pattern="^(md|tex|csv|json)$")]
) -> Response:
    rep = await sweep_report(services, row)
    filename = {"Content-Disposition": f'inline; filename="{row.id}.{fmt}"'}
    if fmt == "json":
        return JSONResponse(rep.model_dump(mode="json"), headers=filename)
    return report_text(rep, "latex" if fmt == "tex" else fmt, None, filename)


@router.get("/login", response_class=HTMLResponse)
def login_form(services: ServicesDep) -> HTMLResponse:
    return HTMLResponse(login_page(services.settings.ui_links()))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, services: ServicesDep) -> Response:
    body = (await request.body())[:4096].decode("utf-8", errors="replace")
    given = (parse_qs(body).get("token") or [""])[0]
    if services.settings.rskd_api_token is None or not token_ok(services.settings, given):
        return HTMLResponse(login_page(services.settings.ui_links(), "wrong token"), status_code=401)
    out = RedirectResponse("/dashboards", status_code=status.HTTP_303_SEE_OTHER)
    out.set_cookie(COOKIE, given, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return out
