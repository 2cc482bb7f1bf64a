"""Dependency-injection aliases (the FastAPI template's habit): services live on ``app.state``, built by the factory."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from service.db import Database
from service.repository import SweepRepository
from service.settings import Settings
from service.submitter import Submitter
from service.trials import TrialSource


@dataclass
class Services:
    settings: Settings
    db: Database
    submitter: Submitter
    trials: TrialSource


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.db.session() as s:
        yield s


SessionDep = Annotated[Session, Depends(get_session)]


def get_repository(session: SessionDep) -> SweepRepository:
    return SweepRepository(session)


RepoDep = Annotated[SweepRepository, Depends(get_repository)]


def require_token(request: Request, services: ServicesDep) -> None:
    """With RSKD_API_TOKEN set, every /v1 route needs ``Authorization: Bearer <token>`` (constant-time compare)."""
    token = services.settings.rskd_api_token
    if token is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.encode(), token.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong token: send Authorization: Bearer <RSKD_API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
