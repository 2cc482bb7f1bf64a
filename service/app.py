"""The FastAPI application factory. Settings, database, submitter and trial source are built here — never at
import — and can be replaced by tests (fakes for unit tests, the real ones end to end)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from dashboards.pages import STATIC
from service.db import Database
from service.deps import Services, require_token
from service.routes import dashboards, health, sweeps
from service.settings import Settings
from service.submitter import RayJobSubmitter, Submitter
from service.sync import sync_once
from service.trial_cache import TrialCache
from service.trials import MlflowTrials, TrialSource

log = logging.getLogger(__name__)


def job_env(settings: Settings) -> dict[str, str]:
    """What every sweep job needs to know; the API token is never among it."""
    env = {"MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri, "RSKD_STORAGE_PATH": settings.storage_path}
    if settings.rskd_data_root:
        env["RSKD_DATA_ROOT"] = settings.rskd_data_root
    return env


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
        source = trials or MlflowTrials(settings.mlflow_tracking_uri)
        services = Services(
            settings=settings,
            db=db,
            submitter=submitter
            or RayJobSubmitter(
                settings.ray_address,
                job_env(settings),
                settings.rskd_job_stop_timeout_s,
                settings.ray_auth_mode,
                settings.ray_auth_token.get_secret_value() if settings.ray_auth_token else None,
            ),
            trials=source,
            trial_cache=TrialCache(source, settings.rskd_trials_ttl_s),
        )
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
    app.include_router(health.router)
    app.include_router(sweeps.router, prefix="/v1", dependencies=[Depends(require_token)])
    app.include_router(dashboards.router)
    app.mount("/dashboards/static", StaticFiles(directory=STATIC), name="dashboard-static")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/dashboards")

    return app


async def _sync_loop(services: Services) -> None:
    while True:
        try:
            await asyncio.to_thread(sync_once, services)
        except Exception:  # a sync failure must never take the service down
            log.exception("sync failed")
        await asyncio.sleep(services.settings.rskd_sync_interval_s)
