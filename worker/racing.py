"""Seed-aware racing in Ray Tune (docs/racing.md): a ``Searcher`` that hands out a sweep's trials seed-major and
stops handing out a variant's trials once the sequential test (``dashboards.sequential``) finds it worse than its
baseline, and a ``TrialScheduler`` that stops that variant's running trials at the end of their current epoch.

The two share one ``RaceBook`` (they are pickled together with the Tuner, so a restored experiment shares it again).
The searcher's state (results, decisions, which trials it handed out) is saved and restored with the experiment by
Tune (``Searcher.save`` / ``restore``); the decisions are also written to ``racing.json`` beside the experiment as
soon as they are made, which the driver reads to mark pruned runs in MLflow and a resumed searcher merges (a decision
never reverts). A finished trial whose result Tune's saved state missed (the driver died between the trial's end and
the next save) is read back from MLflow on restore.

With ASHA on, the racing scheduler wraps it: a pruned variant is stopped whatever ASHA says; otherwise ASHA decides.
ASHA-stopped trials did not run every epoch and do not count in the racing test.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from dashboards.layout import RunState, Tag, mark_pruned_run, metric_info
from dashboards.sequential import RacePlan, decide, signed_differences
from worker.spec import SweepSpec, Trial

log = logging.getLogger(__name__)
STATE_FILE = "racing.json"


@dataclass(frozen=True)
class RaceTrial:
    trial_id: str
    variant: str
    role: str
    seed: int
    epochs: int


@dataclass
class RaceBook:
    """The racing state, shared by the searcher and the scheduler; mutated in place, never rebound."""

    results: dict[str, float] = field(default_factory=dict)  # trial id → final value of the racing metric
    failed: dict[str, str] = field(default_factory=dict)  # trial id → its error (failed for good, after retries)
    pruned: dict[str, str] = field(default_factory=dict)  # variant → why (the bound and n at the stop)
    handed_out: dict[str, str] = field(default_factory=dict)  # Tune's trial id → our trial id
    live: set[str] = field(default_factory=set)  # Tune's trial ids handed out and not complete

    def state(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "failed": self.failed,
            "pruned": self.pruned,
            "handed_out": self.handed_out,
            "live": sorted(self.live),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.results.clear()
        self.results.update(state.get("results", {}))
        self.failed.clear()
        self.failed.update(state.get("failed", {}))
        self.pruned.update(state.get("pruned", {}))
        self.handed_out.clear()
        self.handed_out.update(state.get("handed_out", {}))
        self.live.clear()
        self.live.update(state.get("live", []))


def read_decisions(state_dir: str | Path) -> dict[str, str]:
    """The pruned variants → reasons written beside an experiment (empty when racing never stopped one)."""
    path = Path(state_dir) / STATE_FILE
    return dict(json.loads(path.read_text()).get("pruned", {})) if path.is_file() else {}


class RacingSearcher(Searcher):
    """Hands out the sweep's trials in their (seed-major) order, at most ``max_concurrent`` at a time, skipping the
    variants the racing test pruned. ``tracking_uri`` and ``run_ids`` (optional) let a restored searcher read the
    final value of a trial that finished after Tune's last save from MLflow."""

    def __init__(
        self,
        trials: list[Trial],
        spec: SweepSpec,
        max_concurrent: int,
        book: RaceBook,
        state_dir: str | None = None,
        tracking_uri: str | None = None,
        run_ids: dict[str, str] | None = None,
    ) -> None:
        if spec.racing is None:
            raise ValueError("RacingSearcher needs a sweep with a racing: block")
        metric = spec.racing.metric or spec.objective.metric
        info = metric_info(metric)
        super().__init__(metric=metric, mode="max" if info.higher_is_better else "min")
        self.order = [RaceTrial(t.trial_id, t.variant, t.role, t.seed, t.config.optim.epochs) for t in trials]
        self.by_id = {t.trial_id: t for t in self.order}
        self.seeds = list(dict.fromkeys(t.seed for t in self.order))
        self.baselines = spec.racing_baselines()
        self.higher_is_better = info.higher_is_better
        self.final_key = info.final_key
        self.plan = RacePlan(
            alpha=spec.racing.alpha,
            margin=spec.racing.margin,
            min_seeds=spec.racing.min_seeds,
            max_seeds=max(len(self.seeds), spec.racing.min_seeds),
        )
        self.max_failed = spec.racing.max_failed
        self.max_concurrent = max(1, max_concurrent)
        self.book = book
        self.state_dir = state_dir
        self.tracking_uri = tracking_uri
        self.run_ids = dict(run_ids or {})

    # ------------------------------------------------------------------ Tune's Searcher interface
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        return True  # the search space is the sweep's own trial list

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max(1, max_concurrent)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if len(self.book.live) >= self.max_concurrent:
            return None
        handed = set(self.book.handed_out.values())
        todo = [t for t in self.order if t.trial_id not in handed and t.variant not in self.book.pruned]
        if not todo:
            return Searcher.FINISHED  # type: ignore[return-value]  # Tune's sentinel for "no more trials"
        self.book.handed_out[trial_id] = todo[0].trial_id
        self.book.live.add(trial_id)
        return {"trial_id": todo[0].trial_id}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self.book.live.discard(trial_id)
        ours = self.book.handed_out.get(trial_id)
        if ours is None:
            return
        if error:  # failed for good (Tune calls this only once its retries are spent)
            self.book.failed[ours] = self._error_from_mlflow(ours)
            self.decide()
            return
        value = self._final_value(self.by_id[ours], result or {})
        if value is None:
            value = self._from_mlflow(ours)
        if value is not None:
            self.book.results[ours] = value
            self.decide()

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps(self.book.state()))

    def restore(self, checkpoint_path: str) -> None:
        self.book.load(json.loads(Path(checkpoint_path).read_text()))
        if self.state_dir:
            self.book.pruned.update(read_decisions(self.state_dir))
        for ours in set(self.book.handed_out.values()) - set(self.book.results):
            value = self._from_mlflow(ours)
            if value is not None:
                self.book.results[ours] = value
        self.decide()

    # ------------------------------------------------------------------ the racing test
    def _final_value(self, trial: RaceTrial, result: dict[str, Any]) -> float | None:
        """The metric of a trial that ran every epoch (a stopped trial's last result does not count)."""
        value = result.get(self.metric)
        if value is None or int(result.get("epoch", -1)) != trial.epochs:
            return None
        return float(value)

    def _run(self, trial_id: str) -> Any | None:
        """The trial's MLflow run, or None (no MLflow given, or MLflow away: this trial waits for a later look)."""
        run_id = self.run_ids.get(trial_id)
        if not (self.tracking_uri and run_id):
            return None
        try:
            from mlflow.tracking import MlflowClient

            return MlflowClient(self.tracking_uri).get_run(run_id)
        except Exception:
            log.warning("racing: could not read run %s from MLflow", run_id, exc_info=True)
            return None

    def _from_mlflow(self, trial_id: str) -> float | None:
        run = self._run(trial_id)
        value = run.data.metrics.get(self.final_key) if run else None
        return float(value) if run and run.info.status == RunState.FINISHED and value is not None else None

    def _error_from_mlflow(self, trial_id: str) -> str:
        """The failed trial's error as its run's ``Tag.ERROR`` says (``"an error"`` if MLflow cannot say)."""
        run = self._run(trial_id)
        return str(run.data.tags.get(Tag.ERROR, "an error"))[:300] if run else "an error"

    def _failures(self, variant: str) -> list[RaceTrial]:
        """The variant's failed trials on seeds where no racing baseline's trial failed (a seed where both failed
        says nothing about the variant)."""
        lost = {t.seed for t in self.order if t.variant in self.baselines and t.trial_id in self.book.failed}
        return [t for t in self.order if t.variant == variant and t.trial_id in self.book.failed and t.seed not in lost]

    def _failure_reason(self, variant: str) -> str | None:
        failures = self._failures(variant)
        if len(failures) < self.max_failed:
            return None
        seeds = ", ".join(str(t.seed) for t in failures)
        first = self.book.failed[failures[0].trial_id]
        return (f"racing: {len(failures)} of its trials failed (seeds {seeds}; max_failed {self.max_failed}), "
                f"e.g. {first}")  # fmt: skip

    def _values(self, variant: str) -> dict[int, float]:
        return {t.seed: self.book.results[t.trial_id] for t in self.order
                if t.variant == variant and t.trial_id in self.book.results}  # fmt: skip

    def decide(self) -> dict[str, str]:
        """Look at every variant not yet pruned; returns (and records) the new decisions."""
        baselines = {b: self._values(b) for b in self.baselines}
        new: dict[str, str] = {}
        for variant in dict.fromkeys(t.variant for t in self.order if t.role == "variant"):
            if variant in self.book.pruned:
                continue
            failed = self._failure_reason(variant)
            if failed:
                new[variant] = failed
                log.warning("racing pruned %s: %s", variant, failed)
                continue
            mine = self._values(variant)
            diffs = {b: signed_differences(mine, v, self.seeds, self.higher_is_better) for b, v in baselines.items()}
            decision = decide(diffs, self.plan)
            if decision.stop:
                new[variant] = f"racing on {self.metric}: {decision.reason}"
                log.warning("racing pruned %s: %s", variant, new[variant])
        if new:
            self.book.pruned.update(new)
            self._write_decisions()
        return new

    def _write_decisions(self) -> None:
        if not self.state_dir:
            return
        path = Path(self.state_dir)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f".{STATE_FILE}.tmp"
        state = {"pruned": self.book.pruned, "results": self.book.results, "failed": self.book.failed}
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, path / STATE_FILE)


class RacingScheduler(FIFOScheduler):
    """Stops a running trial of a pruned variant at its next report (the end of its current epoch, after its
    checkpoint); every other decision is ``inner``'s (ASHA) or FIFO's."""

    def __init__(self, book: RaceBook, variant_of: dict[str, str], inner: TrialScheduler | None = None) -> None:
        super().__init__()
        self.book = book
        self.variant_of = variant_of
        self.inner = inner

    def _pruned(self, trial: Any) -> bool:
        return self.variant_of.get(str(trial.config.get("trial_id"))) in self.book.pruned

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec) if self.inner else True

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if self.inner:
            self.inner.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        if self.inner:
            self.inner.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if self._pruned(trial):
            return TrialScheduler.STOP
        return self.inner.on_trial_result(tune_controller, trial, result) if self.inner else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        if self.inner:
            self.inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        if self.inner:
            self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        if self.inner:
            return self.inner.choose_trial_to_run(tune_controller)
        return super().choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        pruned = f"racing: {len(self.book.pruned)} variant(s) pruned"
        return f"{pruned}; {self.inner.debug_string()}" if self.inner else pruned


def racing_algorithms(
    spec: SweepSpec,
    trials: list[Trial],
    max_concurrent: int,
    inner: TrialScheduler | None = None,
    state_dir: str | None = None,
    tracking_uri: str | None = None,
    run_ids: dict[str, str] | None = None,
) -> tuple[RacingSearcher, RacingScheduler]:
    """The searcher and the scheduler of a racing sweep, sharing one book."""
    book = RaceBook()
    searcher = RacingSearcher(trials, spec, max_concurrent, book, state_dir, tracking_uri, run_ids)
    scheduler = RacingScheduler(book, {t.trial_id: t.variant for t in trials}, inner)
    return searcher, scheduler


def mark_pruned(client: Any, trials: list[Trial], run_ids: dict[str, str], pruned: dict[str, str]) -> list[str]:
    """Every run of a pruned variant that neither finished nor failed: KILLED, tagged ``Tag.PRUNED`` and
    ``Tag.PRUNED_REASON`` (those that never started, and those stopped at an epoch's end; their checkpoints stay in
    Tune's storage). A failed run stays FAILED with its error. ``client``: an ``MlflowClient``; returns the run ids
    marked."""
    marked = []
    for t in trials:
        reason = pruned.get(t.variant)
        rid = run_ids.get(t.trial_id)
        if reason is None or rid is None:
            continue
        run = client.get_run(rid)
        if run.info.status in (RunState.FINISHED, RunState.FAILED):  # a failed run keeps its state and its error
            continue
        mark_pruned_run(client, run, reason, "pruned by racing")
        marked.append(rid)
    return marked
