"""The racing Searcher and Scheduler driven by hand as Tune drives them (no Ray cluster): seed-major hand-out, a
clearly worse variant pruned after min_seeds, its later trials never handed out, its running trial stopped, the
state saved and restored (a decision never reverts), the decisions written beside the experiment."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from worker.racing import RaceBook, RacingScheduler, RacingSearcher, racing_algorithms, read_decisions
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
