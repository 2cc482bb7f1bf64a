"""Dependency-injection aliases (the FastAPI template's habit): services live on ``app.state``, built by the factory."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request, status

from service.db import Database
from service.models import SweepRow
from service.repository import SweepRepository
from service.settings import Settings
from service.submitter import Submitter
from service.trial_cache import TrialCache
from service.trials import TrialSource


@dataclass
class Services:
    settings: Settings
    db: Database
    submitter: Submitter
    trials: TrialSource
    trial_cache: TrialCache


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


T = TypeVar("T")


def run_in_db(services: Services, fn: Callable[[SweepRepository], T]) -> T:
    """One short unit of work on its own session, closed before returning."""
    with services.db.session() as s:
        return fn(SweepRepository(s))


async def in_db(services: Services, fn: Callable[[SweepRepository], T]) -> T:
    """``run_in_db`` in a worker thread. Routes never hold a connection across an ``await``: a session dependency
    held while waiting for MLflow let 50 concurrent requests exhaust the connection pool, and the threads waiting for
    a connection starved the teardowns that would have returned one (a deadlock until the pool timed out)."""
    return await asyncio.to_thread(run_in_db, services, fn)


async def get_sweep_row(sweep_id: str, services: ServicesDep) -> SweepRow:
    """The sweep the path names (404 when there is none), read on its own short session."""
    row = await in_db(services, lambda repo: repo.get(sweep_id))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no sweep {sweep_id!r}")
    return row


SweepDep = Annotated[SweepRow, Depends(get_sweep_row)]


def token_ok(settings: Settings, given: str) -> bool:
    """True when no token is configured, or ``given`` is it (constant-time compare)."""
    token = settings.rskd_api_token
    return token is None or hmac.compare_digest(given.encode(), token.get_secret_value().encode())


def bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value if scheme.lower() == "bearer" else ""


def require_token(request: Request, services: ServicesDep) -> None:
    """With RSKD_API_TOKEN set, every /v1 route needs ``Authorization: Bearer <token>`` (constant-time compare)."""
    if not token_ok(services.settings, bearer(request)):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong token: send Authorization: Bearer <RSKD_API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
