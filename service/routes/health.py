"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check(fn: Callable[[], None], timeout: float = 5.0) -> str:
    try:
        await asyncio.wait_for(asyncio.to_thread(fn), timeout)
    except TimeoutError:
        return f"down: no answer in {timeout:.0f} s"
    except Exception as err:
        return f"down: {type(err).__name__}: {str(err)[:200]}"
    return "ok"


@router.get("/readyz", responses={503: {"description": "a dependency is down"}})
async def readyz(services: ServicesDep) -> JSONResponse:
    checks = {
        "database": await _check(services.db.ping),
        "ray": await _check(services.submitter.ping),
        "mlflow": await _check(services.trials.ping),
    }
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)
