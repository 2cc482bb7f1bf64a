"""Request and response bodies of the REST API (separate read models; the spec is worker.spec.SweepSpec)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from dashboards.report import ComparisonStat, MetricStat, Objective, Report, VariantStat
from worker.states import SweepStatus

# the report's models are the dashboards' own (one schema): re-exported for the routes and the OpenAPI document
__all__ = [
    "ComparisonStat",
    "MetricStat",
    "Objective",
    "Problem",
    "Report",
    "SweepDetail",
    "SweepList",
    "SweepRead",
    "TrialRead",
    "ValidationReport",
    "VariantStat",
]


class SweepRead(BaseModel):
    id: str
    name: str
    status: SweepStatus
    trials: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    message: str | None = None
    job_id: str | None = None

    @field_validator("created_at", "updated_at", "finished_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        """Stored in UTC; SQLite hands them back without the zone, which RFC 3339 (OpenAPI date-time) requires."""
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v


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
    mlflow_url: str | None = Field(
        None, description="the sweep's runs in the MLflow UI (model-training mode); null before a trial exists"
    )


class TrialRead(BaseModel):
    trial_id: str
    run_id: str
    experiment_id: str | None = None
    variant: str
    role: str
    method: str
    seed: int
    status: str
    epochs_done: int
    knobs: dict[str, Any]
    metrics: dict[str, float]
    pruned: bool = Field(False, description="racing stopped its variant before this trial finished (status KILLED)")
    pruned_reason: str | None = Field(None, description="why racing stopped its variant: the test's bound and n "
                                      "at the stop, or its failed trials (racing.max_failed)")  # fmt: skip
    reopened: bool = Field(False, description="pruned, and an extension has reopened its variant since (it runs new "
                           "trials until racing prunes it again)")  # fmt: skip


class ValidationReport(BaseModel):
    valid: bool
    name: str
    trials: int


class Problem(BaseModel):
    detail: str
    problems: list[str] = Field(default_factory=list)
