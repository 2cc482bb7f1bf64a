"""Pruned trials are counted apart: GET /v1/sweeps/{id}'s trials_by_state and the CLI's live table."""

from __future__ import annotations

import json
from types import SimpleNamespace

from rich.console import Console

from dashboards.layout import PRUNED, RunState
from service.cli import progress_table
from service.reports import progress
from service.schemas import TrialRead


def trial(status: str, pruned: bool = False, top1: float | None = None) -> TrialRead:
    return TrialRead(trial_id="t", run_id="r", variant="v", role="variant", method="ce", seed=0, status=status,
                     epochs_done=1, knobs={}, metrics={} if top1 is None else {"test/top1": top1},
                     pruned=pruned)  # fmt: skip


def test_pruned_trials_are_counted_apart() -> None:
    row = SimpleNamespace(trials=6, spec_json=json.dumps({"objective": {"metric": "test/top1", "mode": "max"}}))
    trials = [trial(RunState.FINISHED, top1=0.9), trial(RunState.KILLED, pruned=True),
              trial(RunState.KILLED, pruned=True), trial(RunState.KILLED), trial(RunState.RUNNING)]  # fmt: skip
    by_state, best = progress(trials, row)  # type: ignore[arg-type]
    assert by_state == {RunState.FINISHED: 1, PRUNED: 2, RunState.KILLED: 1, RunState.RUNNING: 1,
                        RunState.SCHEDULED: 1}  # fmt: skip
    assert best == 0.9
    detail = {"id": "s", "name": "n", "status": "RUNNING", "trials": 6, "trials_by_state": by_state,
              "best_objective": best, "objective": {"metric": "test/top1"}}  # fmt: skip
    console = Console(record=True, width=150)
    console.print(progress_table(detail, 10.0))
    text = console.export_text()
    assert "pruned" in text
    header = next(line for line in text.splitlines() if "pending" in line).split("┃")
    values = next(line for line in text.splitlines() if "│" in line).split("│")
    cells = dict(zip([c.strip() for c in header], [c.strip() for c in values], strict=True))
    assert cells["pruned"] == "2" and cells["failed"] == "1" and cells["pending"] == "1"
