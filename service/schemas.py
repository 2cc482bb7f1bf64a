"""Request and response bodies of the REST API (separate read models; the spec is worker.spec.SweepSpec)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from worker.states import SweepStatus


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


class ValidationReport(BaseModel):
    valid: bool
    name: str
    trials: int


class Problem(BaseModel):
    detail: str
    problems: list[str] = Field(default_factory=list)


class MetricStat(BaseModel):
    n: int
    mean: float | None
    std: float | None


class VariantStat(BaseModel):
    variant: str
    role: str
    method: str
    n: int
    mean: float | None = Field(description="mean of the objective's final value over the counted seeds")
    std: float | None
    ci95: list[float] | None
    excluded: int = Field(description="trials not counted: failed, killed, unfinished or stopped early")
    low_n: bool = Field(description="fewer than 3 counted seeds")
    seeds: list[int]
    knobs: dict[str, Any]
    metrics: dict[str, MetricStat]


class ComparisonStat(BaseModel):
    variant: str
    baseline: str
    delta: float | None = Field(description="mean(variant) − mean(baseline) of the objective")
    ci95: list[float] | None
    p: float | None
    p_holm: float | None
    test: str = Field(description="paired_t (same seeds), welch_t, or none (too few values)")
    n_variant: int
    n_baseline: int
    no_spread: bool = Field(False, description="every seed gave the same difference: the t test is degenerate")


class Report(BaseModel):
    sweep_id: str
    objective: dict[str, str]
    trials: int
    excluded: int
    baselines: list[str]
    variants: list[VariantStat]
    comparisons: list[ComparisonStat]
