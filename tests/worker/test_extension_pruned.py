"""An extension's driver keeps a pruned variant's decision (MLflow on SQLite, no Ray): the variant's new trials get
no Tune trial but a run KILLED and tagged pruned, unless reopened; a resumed extension keeps the same split. A reopen
tags the variant's pruned runs and lasts until racing prunes it again."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dashboards.layout import TRUE, RunState, Tag
from worker.driver import DriverSettings, carried_decisions, extension_trials
from worker.extension import ExtendBody, union_spec
from worker.spec import SweepSpec, expand
from worker.tracking import SweepTracker

SPEC = SweepSpec.model_validate({
    "name": "keep-pruned",
    "base": {"method": {"name": "ce"}, "optim": {"epochs": 1, "milestones": []}},
    "variants": {"broken": {"optim.lr": 1e-4}, "fine": {"optim.lr": 0.2}},
    "baselines": ["ce"],
    "seeds": [0, 1, 2],
})  # fmt: skip


def tracker_after_racing(tmp_path: Path) -> tuple[SweepTracker, DriverSettings]:
    """The sweep's first job as racing left it: every run FINISHED but broken's seed-2 run, KILLED and pruned."""
    settings = DriverSettings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", storage_path=str(tmp_path / "st"),
                              artifact_root=(tmp_path / "artifacts").as_uri())  # fmt: skip
    tracker = SweepTracker(settings.tracking_uri, "kp-1", SPEC, "test", settings.artifact_root)
    trials = expand(SPEC)
    run_ids = tracker.child_runs(trials)
    for t in trials:
        rid = run_ids[t.trial_id]
        if t.variant == "broken" and t.seed == 2:
            tracker.client.set_tag(rid, Tag.PRUNED, TRUE)
            tracker.client.set_tag(rid, Tag.PRUNED_REASON, "racing on test/top1: vs ce: upper bound -0.4 < +0")
            tracker.client.set_terminated(rid, status=RunState.KILLED)
        else:
            tracker.client.set_terminated(rid, status=RunState.FINISHED)
    return tracker, settings


def test_the_extension_keeps_a_pruned_variant_out_unless_reopened(tmp_path: Path) -> None:
    tracker, settings = tracker_after_racing(tmp_path)
    assert tracker.pruned_variants() == {"broken": "racing on test/top1: vs ce: upper bound -0.4 < +0"}
    union = union_spec(SPEC, ExtendBody(seeds=[3, 4]), 500)
    trials = expand(union)
    kept_reasons = carried_decisions(tracker, "kp-1-x1", [])
    to_run, kept = extension_trials(tracker.trial_ids(), trials, settings, "kp-1-x1", kept_reasons)
    assert {(t.variant, t.seed) for t in to_run} == {(v, s) for v in ("fine", "ce") for s in (3, 4)}
    assert list(kept) == ["broken"] and kept["broken"].startswith("racing on test/top1: vs ce: upper bound -0.4")
    assert "[kept by kp-1-x1; reopen it to run its new trials]" in kept["broken"]
    run_ids = tracker.child_runs(trials)
    marked = tracker.keep_pruned(trials, run_ids, kept)
    broken_new = {run_ids[t.trial_id] for t in trials if t.variant == "broken" and t.seed >= 3}
    assert set(marked) == broken_new
    for rid in broken_new:
        run = tracker.client.get_run(rid)
        assert run.info.status == RunState.KILLED and run.data.tags[Tag.PRUNED] == TRUE
    old = tracker.client.get_run(run_ids[next(t.trial_id for t in trials if t.variant == "broken" and t.seed == 2)])
    assert old.data.tags[Tag.PRUNED_REASON] == "racing on test/top1: vs ce: upper bound -0.4 < +0"  # untouched
    assert tracker.keep_pruned(trials, run_ids, kept) == []  # nothing left to mark
    # a resume reads the split back, whatever it is told to reopen
    again = extension_trials(tracker.trial_ids(), trials, settings, "kp-1-x1", {})
    assert again == (to_run, kept)
    # a second extension carries the first reason, not the first extension's note
    assert carried_decisions(tracker, "kp-1-x2", [])["broken"].count("[kept by") == 1


def test_a_reopened_variant_runs_its_new_trials(tmp_path: Path) -> None:
    tracker, settings = tracker_after_racing(tmp_path)
    trials = expand(union_spec(SPEC, ExtendBody(seeds=[3]), 500))
    assert carried_decisions(tracker, "kp-1-x1", ["broken", "nope"]) == {}  # an unknown name is only logged
    to_run, kept = extension_trials(tracker.trial_ids(), trials, settings, "kp-1-x1", {})
    assert {t.variant for t in to_run} == {"broken", "fine", "ce"} and kept == {}
    assert tracker.keep_pruned(trials, tracker.child_runs(trials), kept) == []


def test_a_reopen_lasts_until_racing_prunes_the_variant_again(tmp_path: Path, caplog: Any) -> None:
    tracker, settings = tracker_after_racing(tmp_path)
    trials = expand(union_spec(SPEC, ExtendBody(seeds=[3]), 500))
    carried_decisions(tracker, "kp-1-x1", ["broken"])
    to_run, _ = extension_trials(tracker.trial_ids(), trials, settings, "kp-1-x1", {})
    run_ids = tracker.child_runs(trials)
    own = {t.trial_id for t in to_run}
    (old,) = tracker.reopen(["broken"], "kp-1-x1", own)  # what run_sweep does as the extension starts
    assert tracker.client.get_run(old).data.tags[Tag.REOPENED] == "kp-1-x1"
    assert tracker.pruned_variants() == {}  # the next extension gives broken its new trials unasked
    # a resume of that extension: nothing tagged twice, and its reopen is still a pruned variant to it (no warning)
    assert tracker.reopen(["broken"], "kp-1-x1", own) == []
    with caplog.at_level(logging.WARNING, logger="worker.driver"):
        assert carried_decisions(tracker, "kp-1-x1", ["broken"]) == {}
    assert "not a pruned variant" not in caplog.text
    assert carried_decisions(tracker, "kp-1-x2", ["broken"]) == {} and "reopen.broken: not a pruned" in caplog.text
    # racing in that extension prunes broken again: its new run carries the pruned tag alone, even after a resume
    new = run_ids[next(t.trial_id for t in to_run if t.variant == "broken")]
    tracker.client.set_tag(new, Tag.PRUNED, TRUE)
    tracker.client.set_tag(new, Tag.PRUNED_REASON, "racing again")
    assert tracker.reopen(["broken"], "kp-1-x1", own) == []
    assert tracker.pruned_variants() == {"broken": "racing again"}
    assert "[kept by kp-1-x2" in carried_decisions(tracker, "kp-1-x2", [])["broken"]
    # a second reopen tags the runs pruned since, not those reopened before
    assert tracker.reopen(["broken"], "kp-1-x2") == [new] and tracker.pruned_variants() == {}
    assert tracker.client.get_run(old).data.tags[Tag.REOPENED] == "kp-1-x1"
