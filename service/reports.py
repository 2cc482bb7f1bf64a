"""A sweep's comparison report and plots, computed on request from MLflow (through the per-sweep cache)."""

from __future__ import annotations

import asyncio
import json

from fastapi.responses import PlainTextResponse, Response

from dashboards.layout import METRICS, PRUNED, RunState
from dashboards.plots import render_plots
from dashboards.render import FORMATS
from dashboards.report import Report, build_report
from service.deps import Services
from service.models import SweepRow
from service.trials import TrialView

TEXT_MEDIA = {"md": "text/markdown; charset=utf-8", "latex": "application/x-latex; charset=utf-8",
              "csv": "text/csv; charset=utf-8"}  # fmt: skip


def _objective(row: SweepRow) -> dict[str, str] | None:
    objective: dict[str, str] | None = json.loads(row.spec_json).get("objective")
    return objective


async def sweep_report(services: Services, row: SweepRow) -> Report:
    data = await services.trial_cache.data(row)
    return await asyncio.to_thread(build_report, data, _objective(row))


def report_text(report: Report, fmt: str, baseline: str | None, headers: dict[str, str] | None = None) -> Response:
    """The report as a Markdown, LaTeX or CSV table (ValueError for a baseline the sweep does not have)."""
    return PlainTextResponse(FORMATS[fmt](report, baseline), media_type=TEXT_MEDIA[fmt], headers=headers)


def progress(trials: list[TrialView], row: SweepRow) -> tuple[dict[str, int], float | None]:
    """Trials by state (those not started yet count as SCHEDULED, those racing pruned as PRUNED) and the best
    objective value so far."""
    by_state: dict[str, int] = {}
    for t in trials:
        state = PRUNED if t.pruned else t.status
        by_state[state] = by_state.get(state, 0) + 1
    if len(trials) < row.trials:
        by_state[RunState.SCHEDULED] = by_state.get(RunState.SCHEDULED, 0) + row.trials - len(trials)
    objective = _objective(row) or {}
    metric = objective.get("metric", "test/top1")
    top1 = METRICS["top1"]
    best_key = top1.best_key if metric == top1.key else metric
    values = [t.metrics.get(best_key, t.metrics.get(metric)) for t in trials]
    present = [v for v in values if v is not None]
    best = (max(present) if objective.get("mode", "max") == "max" else min(present)) if present else None
    return by_state, best


async def sweep_plots(services: Services, row: SweepRow) -> dict[str, bytes]:
    """Every plot of the sweep (rendered once per cached data: closed sweeps never again)."""
    data = await services.trial_cache.data(row)
    objective = _objective(row)
    return await services.trial_cache.get(row, "plots", lambda: render_plots(data, build_report(data, objective)))
