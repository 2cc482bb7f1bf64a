"""Extending a finished sweep through the real parts (``python -m worker.sweep``, local Ray, MLflow on SQLite): only
the new trials run, under the same parent run; a driver stopped mid-extension is resumed and finishes it; the report
of the union equals the report of a fresh sweep of the same spec (deterministic CPU training)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from dashboards.layout import Tag
from dashboards.report import Report
from tests.worker.test_sweep_e2e import ROOT, SMOKE, runs_of, sweep, sweep_env
from worker.extension import ExtendBody, new_trials, union_spec
from worker.spec import SweepSpec, expand

pytestmark = pytest.mark.slow


def small_spec(seeds: list[int]) -> dict[str, Any]:
    """2 variants × 1 baseline, 1 epoch of a width-8 network on 8×8 digits, deterministic."""
    data = yaml.safe_load(SMOKE.read_text())
    data["base"]["optim"]["epochs"] = 1
    data["base"]["runtime"]["deterministic"] = True
    data.update(variants={"rskd_l": {}, "rskd_lr": {"optim.lr": 0.1}}, seeds=seeds, max_concurrent_trials=2)
    return data


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def report_of(client: MlflowClient, sweep_id: str, tmp: Path) -> Report:
    (parent,) = runs_of(client, sweep_id, "sweep")
    dest = tmp / sweep_id
    dest.mkdir()
    return Report.model_validate_json(
        Path(client.download_artifacts(parent.info.run_id, "report/report.json", str(dest))).read_text()
    )


def stop_when_a_new_trial_runs(proc: subprocess.Popen[str], client: MlflowClient, old: set[str]) -> bool:
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        running = [c for c in runs_of(client, "ext-1", "trial") if c.info.run_id not in old]
        # a trial process has started (it logs its data sets first): the driver is inside Tune, past ray.init —
        # a child run is also RUNNING for a moment while the driver creates it, before its own SIGTERM handler
        if any(c.info.status == "RUNNING" and c.inputs.dataset_inputs for c in running):
            proc.send_signal(signal.SIGTERM)
            return True
    return False


def test_an_extension_runs_only_the_new_trials_under_the_same_parent(tmp_path: Path) -> None:
    env = sweep_env(tmp_path)
    first = sweep("run", "--spec", str(write(tmp_path / "s3.yaml", small_spec([0, 1, 2]))), "--sweep-id", "ext-1",
                  env=env)  # fmt: skip
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    before = {c.info.run_id: c.info.end_time for c in runs_of(client, "ext-1", "trial")}
    assert len(before) == 9
    (parent,) = runs_of(client, "ext-1", "sweep")

    old = SweepSpec.model_validate(small_spec([0, 1, 2]))
    union = union_spec(old, ExtendBody(seeds=[3, 4]), 500)
    new = new_trials(union, {t.trial_id for t in expand(old)}, 500)
    assert len(new) == 6
    union_file = tmp_path / "union.json"
    union_file.write_text(union.model_dump_json())
    # the extension's driver is stopped (SIGTERM, what cancel sends) while a new trial runs, then resumed
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.sweep", "run", "--spec", str(union_file), "--sweep-id", "ext-1",
         "--extension", "1"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    stopped = stop_when_a_new_trial_runs(proc, client, set(before))
    out, _ = proc.communicate(timeout=200)
    assert stopped and proc.returncode == 130, out[-3000:]
    again = sweep("resume", "--sweep-id", "ext-1", "--extension", "1", env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "FINISHED — 15 finished, 0 failed, 0 killed of 15" in again.stdout

    children = runs_of(client, "ext-1", "trial")
    assert len(children) == 15 and len({c.data.tags[Tag.TRIAL_ID] for c in children}) == 15
    assert {c.data.tags[Tag.TRIAL_ID] for c in children} == {t.trial_id for t in expand(union)}
    assert all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert {c.info.run_id: c.info.end_time for c in children if c.info.run_id in before} == before  # never re-run
    assert [p.info.run_id for p in runs_of(client, "ext-1", "sweep")] == [parent.info.run_id]
    started = json.loads((tmp_path / "storage" / "ext-1-x1" / "trials.json").read_text())
    assert sorted(started) == sorted(t.trial_id for t in new)  # the extension's Tune experiment: the 6 new ones

    fresh = sweep("run", "--spec", str(write(tmp_path / "s5.yaml", small_spec([0, 1, 2, 3, 4]))), "--sweep-id",
                  "fresh-1", env=env)  # fmt: skip
    assert fresh.returncode == 0, fresh.stdout[-3000:] + fresh.stderr[-3000:]
    extended, baseline = report_of(client, "ext-1", tmp_path), report_of(client, "fresh-1", tmp_path)
    assert [v.n for v in extended.variants] == [5, 5, 5]
    assert extended.model_dump(exclude={"sweep_id"}) == baseline.model_dump(exclude={"sweep_id"})
