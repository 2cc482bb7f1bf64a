"""A sweep's comparison report and plots, computed on request from MLflow (through the per-sweep cache)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from dashboards.plots import render_plots
from dashboards.report import build_report
from service.deps import Services
from service.models import SweepRow


async def sweep_report(services: Services, row: SweepRow) -> dict[str, Any]:
    data = await services.trial_cache.data(row)
    objective = json.loads(row.spec_json).get("objective")
    return await asyncio.to_thread(build_report, data, objective)


async def sweep_plots(services: Services, row: SweepRow) -> dict[str, bytes]:
    """Every plot of the sweep (rendered once per cached data: closed sweeps never again)."""
    data = await services.trial_cache.data(row)
    report = await sweep_report(services, row)
    return await services.trial_cache.get(row, "plots", lambda: render_plots(data, report))
