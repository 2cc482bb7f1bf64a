"""The parent run's MLflow description: the comparison table, objective, baseline and links, escaped, within MLflow's
tag-size limit."""

from __future__ import annotations

from dashboards.layout import NOTE_MAX_CHARS
from dashboards.note import md_escape, parent_note
from dashboards.report import build_report
from tests.dashboards.fixtures import TOP1, sweep


def test_the_note_holds_the_table_objective_baseline_and_links() -> None:
    rep = build_report(sweep(), {"metric": "test/top1", "mode": "max"})
    text = parent_note(rep, name="demo_<x>", experiment_id="7", run_id="abc", dashboard_url="http://api:8000/")
    assert len(text) <= NOTE_MAX_CHARS
    for variant, _ in TOP1:
        assert md_escape(variant) in text
    assert "Δ Top-1 vs ce" in text and "**baseline:** ce" in text and "test/top1 (max)" in text
    assert "demo\\_\\<x\\>" in text and "<x>" not in text  # escaped: no HTML gets through
    assert "[Dashboard](http://api:8000/dashboards/sweeps/sw-test)" in text
    assert "(#/experiments/7/runs/abc/artifactPath/report/plots?workflowType=machine_learning)" in text


def test_a_long_table_is_cut_with_a_link_to_the_full_one() -> None:
    rep = build_report(sweep(), {"metric": "test/top1", "mode": "max"})
    full = parent_note(rep, name="demo", experiment_id="7", run_id="abc")
    short = parent_note(rep, name="demo", experiment_id="7", run_id="abc", limit=1200)
    assert len(short) <= 1200 < len(full)
    assert "table truncated" in short and "(#/experiments/7/runs/abc/artifactPath/report/report.md?" in short
    assert short.count("\n| ") < full.count("\n| ")
