"""Per-variant summary of a sweep's trials (pure: no MLflow, no Ray), shared by the driver and the service.

Only trials that finished every epoch count; the others are reported as ``excluded``. ``std`` is the sample
standard deviation (n−1) and is None below two values; report n beside every mean.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrialOutcome:
    variant: str
    role: str
    method: str
    status: str
    final_top1: float | None
    best_top1: float | None
    stopped_early: bool = False


def summarize(outcomes: Iterable[TrialOutcome]) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    finals: dict[str, list[float]] = {}
    bests: dict[str, list[float]] = {}
    for o in outcomes:
        g = groups.setdefault(o.variant, {"variant": o.variant, "role": o.role, "method": o.method, "excluded": 0})
        if o.status == "FINISHED" and not o.stopped_early and o.final_top1 is not None:
            finals.setdefault(o.variant, []).append(o.final_top1)
            if o.best_top1 is not None:
                bests.setdefault(o.variant, []).append(o.best_top1)
        else:
            g["excluded"] += 1
    rows = []
    for name, g in groups.items():
        v, b = finals.get(name, []), bests.get(name, [])
        rows.append(
            {
                **g,
                "n": len(v),
                "final_top1_mean": statistics.fmean(v) if v else None,
                "final_top1_std": statistics.stdev(v) if len(v) > 1 else None,
                "best_top1_mean": statistics.fmean(b) if b else None,
            }
        )
    return {"metric": "final/test_top1", "variants": rows}
