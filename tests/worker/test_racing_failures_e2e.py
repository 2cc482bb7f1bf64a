"""Racing counts failures end to end on digits (CPU): a variant whose loss turns non-finite (lr 10, momentum 0.99)
fails on seeds 0 and 1 and is pruned by ``racing.max_failed: 2`` before the t test could look (``min_seeds: 3``);
its seed-2 trial never starts; its failed runs stay FAILED with their error; the baseline runs every seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from dashboards.layout import Tag
from dashboards.report import Report
from tests.worker.test_racing_e2e import SPEC
from tests.worker.test_sweep_e2e import runs_of, sweep, sweep_env

pytestmark = pytest.mark.slow


def test_a_diverging_variant_is_pruned_after_max_failed_failures(tmp_path: Path) -> None:
    spec = {
        **SPEC,
        "name": "digits-racing-failures",
        "variants": {"diverges": {"optim.lr": 10.0, "optim.momentum": 0.99, "optim.schedule": "constant"}},
        "seeds": [0, 1, 2],
        "max_failures": 0,
        "max_concurrent_trials": 1,  # seed-major, one at a time: diverges/0, ce/0, diverges/1, ce/1, ce/2
        "racing": {"baseline": "ce", "min_seeds": 3, "max_failed": 2},
    }
    path = tmp_path / "race.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = sweep_env(tmp_path)
    proc = sweep("run", "--spec", str(path), "--sweep-id", "fail-1", env=env)
    out = proc.stdout + proc.stderr
    assert "racing pruned diverges: racing: 2 of its trials failed (seeds 0, 1; max_failed 2)" in out, out[-4000:]
    assert "FAILED — 3 finished, 2 failed, 1 killed of 6" in proc.stdout, out[-4000:]

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    children = {(c.data.tags[Tag.VARIANT], int(c.data.tags[Tag.SEED])): c for c in runs_of(client, "fail-1", "trial")}
    assert all(children[("ce", s)].info.status == "FINISHED" for s in range(3))
    for seed in (0, 1):
        failed = children[("diverges", seed)]
        assert failed.info.status == "FAILED" and Tag.PRUNED not in failed.data.tags
        assert failed.data.tags[Tag.ERROR].startswith("NonFiniteLossError: non-finite loss")
    never = children[("diverges", 2)]
    assert never.info.status == "KILLED" and never.data.tags[Tag.PRUNED] == "true"
    assert "NonFiniteLossError" in never.data.tags[Tag.PRUNED_REASON] and "epoch" not in never.data.metrics
    (parent,) = runs_of(client, "fail-1", "sweep")
    report = Report.model_validate_json(
        Path(client.download_artifacts(parent.info.run_id, "report/report.json", str(tmp_path))).read_text()
    )
    rows = {v.variant: v for v in report.variants}
    assert rows["ce"].n == 3
    diverges = rows["diverges"]  # kept in the report, pruned, with no seed counted and both failures excluded
    assert diverges.pruned and diverges.n == 0 and diverges.excluded == 3, diverges
    assert diverges.pruned_reason and "2 of its trials failed" in diverges.pruned_reason
