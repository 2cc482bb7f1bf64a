"""The service as uvicorn serves it (``uvicorn tests.reliability.fuzz_app:app --factory``), with the real database
(RSKD_DATABASE_URL) and fakes for Ray and MLflow: the fuzzer explores the API, not the cluster."""

from __future__ import annotations

from fastapi import FastAPI

from service.app import create_app
from tests.service.fakes import FakeSubmitter, FakeTrials


def app() -> FastAPI:
    return create_app(submitter=FakeSubmitter(), trials=FakeTrials(), sync=False)
