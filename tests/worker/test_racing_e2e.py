"""Racing end to end on digits (CPU): a collapsed variant (lr 1e-4: it stays near chance) is pruned after
``min_seeds`` paired seeds, its later trial never starts, the sweep still succeeds; the driver is stopped right after
the decision and resumed, and the decision holds. MLflow and the report show the variant pruned with the bound. An
extension by one more seed then keeps the decision: only the baseline's new trial runs. A second extension reopens the
variant for one more seed: it runs, its pruned runs are tagged reopened, and a third extension would not need to
reopen it again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from dashboards.layout import Tag, TrialRecord, pruned_variants
from dashboards.report import Report, VariantStat
from tests.worker.test_sweep_e2e import ROOT, runs_of, sweep, sweep_env
from worker.extension import ExtendBody, keep_pruned, new_trials, union_spec
from worker.spec import SweepSpec

pytestmark = pytest.mark.slow

SPEC = yaml.safe_load((ROOT / "examples" / "sweeps" / "digits_racing.yaml").read_text())


def test_a_collapsed_variant_is_pruned_and_the_decision_survives_a_resume(tmp_path: Path) -> None:
    spec = tmp_path / "race.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    env = sweep_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.sweep", "run", "--spec", str(spec), "--sweep-id", "race-1"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    decisions = tmp_path / "storage" / "race-1" / "racing.json"
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    deadline = time.monotonic() + 240
    stopped = False
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if decisions.is_file():  # pruned: stop the driver while the baseline's last seed trains (or is queued)
            proc.send_signal(signal.SIGTERM)
            stopped = True
            break
    out, _ = proc.communicate(timeout=120)
    assert stopped, "racing never pruned the broken variant:\n" + out[-4000:]
    assert "racing pruned broken" in out

    assert proc.returncode == 130, out[-4000:]  # interrupted with the baseline's last seed still to run
    proc2 = sweep("resume", "--sweep-id", "race-1", env=env)
    out2 = proc2.stdout + proc2.stderr
    assert proc2.returncode == 0, out2[-4000:]
    assert "racing pruned broken" not in out2  # the decision was restored, not made again

    children = {(c.data.tags[Tag.VARIANT], int(c.data.tags[Tag.SEED])): c for c in runs_of(client, "race-1", "trial")}
    for seed in range(4):
        assert children[("ce", seed)].info.status == "FINISHED"
    for seed in range(3):
        assert children[("broken", seed)].info.status == "FINISHED"
    never = children[("broken", 3)]
    assert never.info.status == "KILLED"
    assert never.data.tags[Tag.PRUNED] == "true" and "n=3 paired seeds" in never.data.tags[Tag.PRUNED_REASON]
    assert "epoch" not in never.data.metrics  # it never started
    (parent,) = runs_of(client, "race-1", "sweep")
    assert parent.info.status == "FINISHED"
    report = Report.model_validate_json(
        Path(client.download_artifacts(parent.info.run_id, "report/report.json", str(tmp_path))).read_text()
    )
    broken = next(v for v in report.variants if v.variant == "broken")
    assert broken.pruned and broken.n == 3 and broken.pruned_reason and "upper bound" in broken.pruned_reason
    md = Path(client.download_artifacts(parent.info.run_id, "report/report.md", str(tmp_path))).read_text()
    assert "broken§" in md and "§ pruned by racing" in md

    extend_keeps_the_decision(tmp_path, env, client)
    reopen_lasts(tmp_path, env, client)


def extend_keeps_the_decision(tmp_path: Path, env: dict[str, str], client: MlflowClient) -> None:
    """An extension by seed 4 runs the baseline's new trial only: pruned broken's gets a run KILLED and pruned."""
    union = union_spec(SweepSpec.model_validate(SPEC), ExtendBody(seeds=[4]), 500)
    union_file = tmp_path / "union.json"
    union_file.write_text(union.model_dump_json())
    proc = sweep("run", "--spec", str(union_file), "--sweep-id", "race-1", "--extension", "1", env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "FINISHED — 8 finished, 0 failed, 2 killed of 10" in proc.stdout
    children = {(c.data.tags[Tag.VARIANT], int(c.data.tags[Tag.SEED])): c for c in runs_of(client, "race-1", "trial")}
    assert len(children) == 10 and children[("ce", 4)].info.status == "FINISHED"
    kept = children[("broken", 4)]
    assert kept.info.status == "KILLED" and kept.data.tags[Tag.PRUNED] == "true" and "epoch" not in kept.data.metrics
    assert "n=3 paired seeds" in kept.data.tags[Tag.PRUNED_REASON] and "[kept by race-1-x1" in kept.data.tags[
        Tag.PRUNED_REASON]  # fmt: skip
    started = json.loads((tmp_path / "storage" / "race-1-x1" / "trials.json").read_text())
    assert started == [children[("ce", 4)].data.tags[Tag.TRIAL_ID]]
    rows = report_rows(client, tmp_path / "x1")
    assert rows["broken"].pruned and rows["broken"].n == 3 and rows["ce"].n == 5


def report_rows(client: MlflowClient, dest: Path) -> dict[str, VariantStat]:
    """The rows of the report the last job published on the sweep's parent run (downloaded into ``dest``)."""
    (parent,) = runs_of(client, "race-1", "sweep")
    dest.mkdir()
    report = Report.model_validate_json(
        Path(client.download_artifacts(parent.info.run_id, "report/report.json", str(dest))).read_text()
    )
    return {v.variant: v for v in report.variants}


def reopen_lasts(tmp_path: Path, env: dict[str, str], client: MlflowClient) -> None:
    """A second extension by seed 5 reopens broken: its seed-5 trial runs (one new pair is below racing's min_seeds:
    no new decision), its pruned runs (seed 3, stopped by racing; seed 4, kept out by the first extension) are tagged
    reopened by it, and a third extension would give broken its new trials without being asked."""
    first = union_spec(SweepSpec.model_validate(SPEC), ExtendBody(seeds=[4]), 500)
    union = union_spec(first, ExtendBody(seeds=[5], reopen=["broken"]), 500)
    union_file = tmp_path / "union2.json"
    union_file.write_text(union.model_dump_json())
    args = ("--spec", str(union_file), "--sweep-id", "race-1", "--extension", "2", "--reopen", "broken")
    proc = sweep("run", *args, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "FINISHED — 10 finished, 0 failed, 2 killed of 12" in proc.stdout
    runs = runs_of(client, "race-1", "trial")
    children = {(c.data.tags[Tag.VARIANT], int(c.data.tags[Tag.SEED])): c for c in runs}
    assert children[("broken", 5)].info.status == "FINISHED" and Tag.PRUNED not in children[("broken", 5)].data.tags
    assert {k: c.data.tags.get(Tag.REOPENED) for k, c in children.items() if k[0] == "broken"} == {
        ("broken", 0): None, ("broken", 1): None, ("broken", 2): None,
        ("broken", 3): "race-1-x2", ("broken", 4): "race-1-x2", ("broken", 5): None,
    }  # fmt: skip
    pruned = pruned_variants(TrialRecord.from_run(c) for c in runs)
    assert pruned == {}
    third = union_spec(union, ExtendBody(seeds=[6]), 500)
    run, left_out = keep_pruned(new_trials(third, {c.data.tags[Tag.TRIAL_ID] for c in runs}, 500), pruned)
    assert {(t.variant, t.seed) for t in run} == {("broken", 6), ("ce", 6)} and left_out == []
    rows = report_rows(client, tmp_path / "x2")
    assert not rows["broken"].pruned and rows["broken"].seeds == [0, 1, 2, 5] and rows["ce"].n == 6
