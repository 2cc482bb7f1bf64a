"""The FastAPI application factory. Settings, database, submitter and trial source are built here — never at
import — and can be replaced by tests (fakes for unit tests, the real ones end to end)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from dashboards.pages import STATIC
from service.db import Database
from service.deps import Services, require_token
from service.routes import dashboards, extend_form, health, sweeps
from service.settings import Settings
from service.submitter import RayJobSubmitter, Submitter
from service.sweeps import Refused
from service.sync import sync_once
from service.trial_cache import TrialCache
from service.trials import MlflowTrials, TrialSource

log = logging.getLogger(__name__)


def job_env(settings: Settings) -> dict[str, str]:
    """What every sweep job needs to know; the API token is never among it."""
    env = {
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "RSKD_STORAGE_PATH": settings.storage_path,
        # the limits this API enforced and the patience of the trials: the driver reads them into DriverSettings
        "RSKD_MAX_TRIALS": str(settings.rskd_max_trials),
        "RSKD_MAX_EPOCHS": str(settings.rskd_max_epochs),
        "RSKD_MLFLOW_PATIENCE_S": str(settings.rskd_mlflow_patience_s),
        "RSKD_SYSTEM_METRICS": "true" if settings.rskd_system_metrics else "false",
    }
    if settings.rskd_data_root:
        env["RSKD_DATA_ROOT"] = settings.rskd_data_root
    if settings.rskd_dashboard_url:
        env["RSKD_DASHBOARD_URL"] = settings.rskd_dashboard_url
    return env


def _services(settings: Settings, db: Database, submitter: Submitter | None, trials: TrialSource | None) -> Services:
    """The real Ray Jobs submitter and MLflow trial source unless a test gives its own."""
    source = trials or MlflowTrials(settings.mlflow_tracking_uri)
    ray_token = settings.ray_auth_token.get_secret_value() if settings.ray_auth_token else None
    return Services(
        settings=settings,
        db=db,
        submitter=submitter
        or RayJobSubmitter(
            settings.ray_address, job_env(settings), settings.rskd_job_stop_timeout_s, settings.ray_auth_mode, ray_token
        ),
        trials=source,
        trial_cache=TrialCache(source, settings.rskd_trials_ttl_s),
    )


def create_app(
    settings: Settings | None = None,
    *,
    submitter: Submitter | None = None,
    trials: TrialSource | None = None,
    sync: bool = True,
) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        await asyncio.to_thread(db.migrate)
        services = _services(settings, db, submitter, trials)
        app.state.services = services
        # everything imported and built so far lives as long as the process: out of the collector's way, so that
        # full collections under load walk only request garbage (p99 of a dry-run POST: ~160 ms → see api_load)
        gc.collect()
        gc.freeze()
        task = asyncio.create_task(_sync_loop(services)) if sync else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            db.dispose()

    app = FastAPI(
        title="RSKD Sweeps",
        version="0.1.0",
        description="Submit RSKD ablation sweeps; follow their trials; read the comparison against baselines.",
        lifespan=lifespan,
    )
    _problems_everywhere(app)
    app.include_router(health.router)
    app.include_router(sweeps.router, prefix="/v1", dependencies=[Depends(require_token)])
    app.include_router(dashboards.router)
    app.include_router(extend_form.router)
    app.mount("/dashboards/static", StaticFiles(directory=STATIC), name="dashboard-static")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/dashboards")

    return app


def _problems_everywhere(app: FastAPI) -> None:
    """Every error body is a Problem (``detail`` a sentence, ``problems`` one line per bad field), the OpenAPI document
    carries the SweepSpec's definitions, and a 405 lists every method the path has."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "invalid request", "problems": problems}, status_code=422)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "problems": exc.problems}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route's methods
            methods = [
                m
                for m in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
                if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in request.app.router.routes)
            ]
            headers["Allow"] = ", ".join(methods)
        return JSONResponse({"detail": str(exc.detail), "problems": []}, status_code=exc.status_code, headers=headers)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            clash = [n for n, d in sweeps.SPEC_DEFS.items() if components.get(n, d) != d]
            if clash:  # one name, two schemas: a response would be checked against the spec's model
                raise RuntimeError(f"OpenAPI components {clash} are defined by the SweepSpec and by a response model")
            components.update(sweeps.SPEC_DEFS)
            problem = {"$ref": "#/components/schemas/Problem"}
            for operation in (op for path in schema["paths"].values() for op in path.values()):
                if "422" in operation.get("responses", {}):  # what invalid_request answers
                    operation["responses"]["422"] = {
                        "description": "invalid request: `problems` lists each bad field",
                        "content": {"application/json": {"schema": problem}},
                    }
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _sync_loop(services: Services) -> None:
    while True:
        try:
            await asyncio.to_thread(sync_once, services)
        except Exception:  # a sync failure must never take the service down
            log.exception("sync failed")
        await asyncio.sleep(services.settings.rskd_sync_interval_s)
