"""The racing Searcher and Scheduler driven by hand as Tune drives them (no Ray cluster): seed-major hand-out, a
clearly worse variant pruned after min_seeds, its later trials never handed out, its running trial stopped, the
state saved and restored (a decision never reverts), the decisions written beside the experiment."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from dashboards.layout import Tag
from worker.racing import RaceBook, RacingScheduler, RacingSearcher, mark_pruned, racing_algorithms, read_decisions
from worker.spec import SweepSpec, Trial, expand


def sweep(**racing: Any) -> SweepSpec:
    return SweepSpec.model_validate(
        {
            "name": "race",
            "base": {"method": {"name": "ce"}, "optim": {"epochs": 2, "milestones": []}},
            "variants": {"good": {"optim.lr": 0.2}, "broken": {"optim.lr": 3.0}},
            "baselines": ["ce"],
            "seeds": [0, 1, 2, 3, 4],
            "racing": {"baseline": "ce", "min_seeds": 2, **racing},
        }
    )


def value(t: Trial) -> float:
    noise = [0.004, -0.003, 0.002, -0.001, 0.003][t.seed]
    return {"good": 0.95 + noise, "ce": 0.95 - noise / 2, "broken": 0.10 + 2 * noise}[t.variant]


def run_all(searcher: RacingSearcher, trials: list[Trial], prefix: str = "tune", max_steps: int = 100) -> list[str]:
    """Hand out and complete trials one at a time; returns the variant of each trial handed out."""
    by_id = {t.trial_id: t for t in trials}
    out = []
    for i in range(max_steps):
        cfg = searcher.suggest(f"{prefix}{i}")
        if cfg == Searcher.FINISHED:
            break
        assert cfg is not None
        t = by_id[cfg["trial_id"]]
        out.append(t.variant)
        searcher.on_trial_complete(f"{prefix}{i}", {"epoch": 2, "test/top1": value(t)})
    return out


def test_worse_variant_pruned_after_min_seeds_and_never_handed_out_again(tmp_path: Path) -> None:
    spec = sweep()
    trials = expand(spec)
    searcher, scheduler = racing_algorithms(spec, trials, 1, state_dir=str(tmp_path))
    handed = run_all(searcher, trials)
    assert handed[:3] == ["good", "broken", "ce"]  # seed-major
    assert handed.count("broken") == 2 and handed.count("good") == 5 and handed.count("ce") == 5
    decisions = read_decisions(tmp_path)
    assert list(decisions) == ["broken"] and "n=2 paired seeds" in decisions["broken"]
    running = SimpleNamespace(config={"trial_id": next(t.trial_id for t in trials if t.variant == "broken")})
    assert scheduler.on_trial_result(None, running, {"epoch": 1}) == TrialScheduler.STOP
    other = SimpleNamespace(config={"trial_id": next(t.trial_id for t in trials if t.variant == "good")})
    assert scheduler.on_trial_result(None, other, {"epoch": 1}) == TrialScheduler.CONTINUE


def test_concurrency_and_stopped_trials_do_not_count() -> None:
    spec = sweep()
    trials = expand(spec)
    searcher, _ = racing_algorithms(spec, trials, 2)
    a, b = searcher.suggest("t0"), searcher.suggest("t1")
    assert a and b and searcher.suggest("t2") is None  # two at a time
    searcher.on_trial_complete("t0", {"epoch": 1, "test/top1": 0.1})  # stopped after epoch 1: not a final value
    assert searcher.book.results == {}
    searcher.on_trial_complete("t1", None, error=True)
    assert searcher.book.results == {} and searcher.suggest("t2") is not None


def test_state_saved_and_restored_keeps_decisions(tmp_path: Path) -> None:
    spec = sweep()
    trials = expand(spec)
    searcher, _ = racing_algorithms(spec, trials, 1, state_dir=str(tmp_path))
    for i in range(6):  # seeds 0 and 1 of all three: broken is pruned at the second pair
        cfg = searcher.suggest(f"tune{i}")
        assert isinstance(cfg, dict)
        t = next(x for x in trials if x.trial_id == cfg["trial_id"])
        searcher.on_trial_complete(f"tune{i}", {"epoch": 2, "test/top1": value(t)})
    assert "broken" in searcher.book.pruned
    searcher.save(str(tmp_path / "searcher.json"))
    fresh_book = RaceBook()
    restored = RacingSearcher(trials, spec, 1, fresh_book, str(tmp_path))
    scheduler = RacingScheduler(fresh_book, {t.trial_id: t.variant for t in trials})
    restored.restore(str(tmp_path / "searcher.json"))
    assert "broken" in fresh_book.pruned and len(fresh_book.results) == 6
    handed = run_all(restored, trials, prefix="resumed")
    assert "broken" not in handed and len(handed) == 6  # good and ce on seeds 2..4 only: nothing re-run
    running = SimpleNamespace(config={"trial_id": next(t.trial_id for t in trials if t.variant == "broken")})
    assert scheduler.on_trial_result(None, running, {}) == TrialScheduler.STOP


def test_an_equal_variant_is_never_pruned() -> None:
    spec = sweep(alpha=0.05)
    trials = expand(spec)
    searcher, _ = racing_algorithms(spec, trials, 1)
    handed = run_all(searcher, trials)
    assert handed.count("good") == 5 and "good" not in searcher.book.pruned


def drive(searcher: RacingSearcher, trials: list[Trial], fails: set[tuple[str, int]], prefix: str = "t") -> list[str]:
    """As ``run_all``, but the (variant, seed) trials in ``fails`` fail for good (Tune's ``error=True``)."""
    by_id = {t.trial_id: t for t in trials}
    out = []
    for i in range(100):
        cfg = searcher.suggest(f"{prefix}{i}")
        if cfg == Searcher.FINISHED:
            break
        assert isinstance(cfg, dict)
        t = by_id[cfg["trial_id"]]
        out.append(f"{t.variant}/{t.seed}")
        if (t.variant, t.seed) in fails:
            searcher.on_trial_complete(f"{prefix}{i}", None, error=True)
        else:
            searcher.on_trial_complete(f"{prefix}{i}", {"epoch": 2, "test/top1": value(t)})
    return out


def test_a_variant_whose_trials_fail_is_pruned_after_max_failed(tmp_path: Path) -> None:
    spec = sweep(min_seeds=5)  # the t test cannot stop anything before seed 5: only the failures can
    trials = expand(spec)
    searcher, scheduler = racing_algorithms(spec, trials, 1, state_dir=str(tmp_path))
    handed = drive(searcher, trials, {("good", s) for s in range(5)})
    assert [h for h in handed if h.startswith("good")] == ["good/0", "good/1"]  # pruned at its second failure
    reason = read_decisions(tmp_path)["good"]
    assert "2 of its trials failed (seeds 0, 1; max_failed 2)" in reason and "an error" in reason
    assert "broken" not in searcher.book.pruned or "failed" not in searcher.book.pruned["broken"]
    running = SimpleNamespace(config={"trial_id": next(t.trial_id for t in trials if t.variant == "good")})
    assert scheduler.on_trial_result(None, running, {"epoch": 1}) == TrialScheduler.STOP
    searcher.save(str(tmp_path / "searcher.json"))  # the failures are part of the saved state
    restored = RacingSearcher(trials, spec, 1, RaceBook(), str(tmp_path))
    restored.restore(str(tmp_path / "searcher.json"))
    assert len(restored.book.failed) == 2 and "good" in restored.book.pruned


def test_one_failure_or_failures_shared_with_the_baseline_do_not_prune() -> None:
    spec = sweep(min_seeds=5, max_failed=2)
    trials = expand(spec)
    searcher, _ = racing_algorithms(spec, trials, 1)
    drive(searcher, trials, {("good", 0)})  # one failure: below max_failed
    assert "good" not in searcher.book.pruned
    searcher, _ = racing_algorithms(spec, trials, 1)
    handed = drive(searcher, trials, {("good", 0), ("ce", 0), ("good", 1), ("ce", 1)})  # the seeds failed for all
    assert "good" not in searcher.book.pruned and handed.count("good/4") == 1
    strict = sweep(min_seeds=5, max_failed=1)
    searcher, _ = racing_algorithms(strict, expand(strict), 1)
    drive(searcher, expand(strict), {("good", 2)})
    assert "seeds 2; max_failed 1" in searcher.book.pruned["good"]


def test_mark_pruned_leaves_a_failed_run_failed() -> None:
    spec = sweep()
    trials = [t for t in expand(spec) if t.variant == "good"][:3]
    status = {"r0": "FAILED", "r1": "RUNNING", "r2": "FINISHED"}
    tags: dict[str, dict[str, str]] = {rid: {} for rid in status}
    ended: dict[str, str] = {}
    client = SimpleNamespace(
        get_run=lambda rid: SimpleNamespace(info=SimpleNamespace(run_id=rid, status=status[rid])),
        set_tag=lambda rid, k, v: tags[rid].__setitem__(k, v),
        set_terminated=lambda rid, status: ended.__setitem__(rid, status),
    )
    run_ids = {t.trial_id: f"r{i}" for i, t in enumerate(trials)}
    assert mark_pruned(client, trials, run_ids, {"good": "racing: 2 of its trials failed"}) == ["r1"]
    assert ended == {"r1": "KILLED"} and tags["r0"] == {} and tags["r2"] == {}
    assert tags["r1"][Tag.PRUNED] == "true"
