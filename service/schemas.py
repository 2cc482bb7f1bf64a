"""Request and response bodies of the REST API (separate read models; the spec is worker.spec.SweepSpec)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class SweepRead(BaseModel):
    id: str
    name: str
    status: str
    trials: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    message: str | None = None
    job_id: str | None = None


class SweepList(BaseModel):
    items: list[SweepRead]
    total: int
    limit: int
    offset: int


class SweepDetail(SweepRead):
    trials_by_state: dict[str, int] = Field(default_factory=dict)
    best_objective: float | None = None
    objective: dict[str, str]
    spec: dict[str, Any]


class TrialRead(BaseModel):
    trial_id: str
    run_id: str
    variant: str
    role: str
    method: str
    seed: int
    status: str
    epochs_done: int
    knobs: dict[str, Any]
    metrics: dict[str, float]


class ValidationReport(BaseModel):
    valid: bool
    name: str
    trials: int


class Problem(BaseModel):
    detail: str
    problems: list[str] = Field(default_factory=list)
