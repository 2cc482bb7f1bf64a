"""The MLflow UI as a view of a finished digits sweep, through the real parts: ``python -m worker.sweep`` on a local
Ray, a real ``mlflow server``, and headless Chromium at the links we print (``dashboards.layout``): the experiment
opens on its training runs (not the GenAI overview), the children sit under the parent run, the parent run's page
shows the comparison. Then the same facts read with ``MlflowClient`` alone. Screenshots in ``.test-artifacts/``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dashboards.layout import (
    KIND_TRAINING_EXPERIMENT,
    Tag,
    experiment_url,
    run_url,
    trial_run_name,
)
from dashboards.note import md_escape
from tests.browser import artifacts
from tests.cdp import Browser
from tests.worker.test_sweep_e2e import SMOKE, mlflow_server, runs_of, sweep, sweep_env  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow
EXPANDER = 'button[data-component-id*="runnamecellrenderer"]'  # the "+" before a parent run's name
SHOW_MORE = "[...document.querySelectorAll('button, a, span')].find(e => e.innerText === 'Show more')?.click()"
RUN_LINKS = "[...document.querySelectorAll('[role=row] a[href*=\"/runs/\"]')].map(a => a.innerText)"  # in order


def test_a_finished_sweep_reads_well_in_the_mlflow_ui(tmp_path: Path, mlflow_server: str) -> None:  # noqa: F811
    env = {**sweep_env(tmp_path, tracking_uri=mlflow_server), "RSKD_DASHBOARD_URL": "http://rskd.example:8000"}
    proc = sweep("run", "--spec", str(SMOKE), "--sweep-id", "ui-1", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "WARNING mlflow.system_metrics" not in proc.stdout + proc.stderr  # no GPU here: CPU and memory, quietly

    client = MlflowClient(mlflow_server)
    (parent,) = runs_of(client, "ui-1", "sweep")
    children = runs_of(client, "ui-1", "trial")
    exp = client.get_experiment(parent.info.experiment_id)
    assert exp.tags[Tag.EXPERIMENT_KIND] == KIND_TRAINING_EXPERIMENT

    # the comparison as the parent run's description, the sweep's facts as its params
    note = parent.data.tags[Tag.NOTE]
    for variant in ("rskd_l", "ce"):
        assert f"| {md_escape(variant)} |" in note
    assert "Δ Top-1 vs ce" in note and "**baseline:** ce" in note
    assert "[Dashboard](http://rskd.example:8000/dashboards/sweeps/ui-1)" in note and "report/plots" in note
    assert parent.data.params["sweep.objective"] == "test/top1 (max)" and parent.data.params["sweep.trials"] == "4"
    assert json.loads(parent.data.params["sweep.seeds"]) == [0, 1]

    # every finished trial: datasets with digests (the same data for all), one linked model, system metrics
    digests: set[tuple[str, str]] = set()
    for child in children:
        tags = child.data.tags
        assert child.info.status == "FINISHED"
        assert child.info.run_name == trial_run_name(tags[Tag.VARIANT], int(tags[Tag.SEED]))
        inputs = child.inputs.dataset_inputs
        assert len(inputs) >= 2 and all(d.dataset.digest for d in inputs)
        digests |= {(d.dataset.name, d.dataset.digest) for d in inputs}
        (output,) = child.outputs.model_outputs
        model = client.get_logged_model(output.model_id)
        assert model.source_run_id == child.info.run_id
        linked = {m.key: m for m in model.metrics or []}["final/test_top1"]
        assert linked.value == pytest.approx(child.data.metrics["final/test_top1"]) and linked.dataset_digest
        system = [k for k in child.data.metrics if k.startswith("system/")]
        assert "system/cpu_utilization_percentage" in system and "system/system_memory_usage_megabytes" in system
    assert len(digests) == 2, digests  # one training set and one test set across the whole sweep

    # the UI at the links we print, in a real browser
    shots = artifacts()
    with Browser(tmp_path / "chromium") as browser:
        browser.open(experiment_url(mlflow_server, exp.experiment_id))
        browser.wait_for(f"document.body.innerText.includes({json.dumps(parent.info.run_name)})")
        text = browser.text()
        assert "Model training" in text and "Run Name" in text  # the runs table, not the GenAI overview of traces
        assert "/runs" in browser.evaluate("location.hash") and "Traces (0)" not in text
        browser.evaluate(f"document.querySelector({json.dumps(EXPANDER)}).click()")
        names = [c.info.run_name for c in children]
        browser.wait_for(" && ".join(f"document.body.innerText.includes({json.dumps(n)})" for n in names), 30)
        rows = browser.evaluate(
            "[...document.querySelectorAll('[role=row] a[href*=\"/runs/\"]')].map(a => a.innerText)"
        )
        assert rows.index(parent.info.run_name) < min(rows.index(n) for n in names)  # children under the parent
        browser.wait_for("document.body.innerText.includes('digits-train (')", 30)  # the Dataset column
        browser.screenshot(shots / "mlflow_sweep_runs.png")

        browser.open(run_url(mlflow_server, exp.experiment_id, parent.info.run_id))
        browser.wait_for("document.body.innerText.includes('Δ Top-1 vs ce')", 60)
        text = browser.text()
        assert "rskd_l" in text and "Objective:" in text and "Description" in text
        browser.evaluate(SHOW_MORE)  # the description opens folded: unfold it for the screenshot
        browser.wait_for("document.body.innerText.includes('Mean ± std over seeds')", 10)
        browser.screenshot(shots / "mlflow_parent_run.png")
