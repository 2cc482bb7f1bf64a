"""How a sweep lies in MLflow: the one place its tag keys, run names, filter strings, run states and metric facts are
spelled (pure: no MLflow or Ray import; a run is read through its ``info`` and ``data`` attributes).

One experiment per sweep name; a parent run per sweep (``rskd.kind = sweep``) and a child run per trial
(``rskd.kind = trial``, ``mlflow.parentRunId``). The worker writes this layout (``worker/tracking.py``); the
dashboards and the service read it (``TrialRecord.from_run``). It lives in ``dashboards`` because that is the lowest
of the packages that need it: the worker imports the dashboards (it publishes the report), never the reverse.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol


class Tag:
    """MLflow tag keys of the sweep's runs."""

    PARENT_RUN: Final = "mlflow.parentRunId"
    RUN_NAME: Final = "mlflow.runName"
    KIND: Final = "rskd.kind"  # KIND_SWEEP or KIND_TRIAL
    SWEEP_ID: Final = "rskd.sweep_id"
    CODE_VERSION: Final = "rskd.code_version"
    # a trial's identity (child runs)
    TRIAL_ID: Final = "rskd.trial_id"
    VARIANT: Final = "rskd.variant"
    ROLE: Final = "rskd.role"  # variant | baseline
    METHOD: Final = "rskd.method"
    SEED: Final = "rskd.seed"
    CONFIG_HASH: Final = "rskd.config_hash"
    TEACHER: Final = "rskd.teacher"
    KNOBS: Final = "rskd.knobs"  # JSON: the trial's swept dotted paths → values
    # how a trial went
    RESUMED_FROM_EPOCH: Final = "rskd.resumed_from_epoch"
    DEVICE: Final = "rskd.device"  # cpu, cuda:0, …
    DEVICE_NAME: Final = "rskd.device_name"  # the GPU's name (torch.cuda.get_device_name), or the CPU's
    STOPPED_EARLY: Final = "rskd.stopped_early"  # "true" when ASHA stopped it
    PRUNED: Final = "rskd.pruned"  # "true" when racing stopped its variant before this run finished (KILLED)
    PRUNED_REASON: Final = "rskd.pruned_reason"  # the racing test's bound and n at the stop
    REOPENED: Final = "rskd.reopened"  # on a pruned run: the extension's job ({id}-x{n}) that reopened its variant
    END_REASON: Final = "rskd.end_reason"  # why a run was ended by someone else than its own process
    ERROR: Final = "rskd.error"
    TRACEBACK: Final = "rskd.traceback"
    # the parent run's
    TRIALS: Final = "rskd.trials"
    FAILED_TRIALS: Final = "rskd.failed_trials"
    NOTE: Final = "mlflow.note.content"  # the run's description in the MLflow UI (the parent's: the comparison)
    # the experiment's
    EXPERIMENT_KIND: Final = "mlflow.experimentKind"  # which mode the MLflow 3 UI opens the experiment in


KIND_TRAINING_EXPERIMENT: Final = "custom_model_development"  # the UI's "Model training" mode (not GenAI)
UI_TRAINING_MODE: Final = "?workflowType=machine_learning"  # the MLflow UI's query for its "Model training" mode
NOTE_MAX_CHARS: Final = 5000  # MLflow's tag-value limit (MAX_TAG_VAL_LENGTH) is 8000; the note stays well under it


KIND_SWEEP: Final = "sweep"
KIND_TRIAL: Final = "trial"
TRUE: Final = "true"


class RunState:
    """MLflow's run states (``RunStatus`` names) — not the sweep's states (``worker.states.SweepStatus``)."""

    SCHEDULED: Final = "SCHEDULED"
    RUNNING: Final = "RUNNING"
    FINISHED: Final = "FINISHED"
    FAILED: Final = "FAILED"
    KILLED: Final = "KILLED"


RUN_TERMINAL: frozenset[str] = frozenset({RunState.FINISHED, RunState.FAILED, RunState.KILLED})
PRUNED: Final = "PRUNED"  # trials racing stopped or kept from starting, counted apart from KILLED (not an MLflow state)


def end_unfinished(client: Any, runs: Iterable[Any], status: str, reason: str) -> list[str]:
    """End every run (an MLflow ``Run``) not in a terminal state with ``status``, the reason in ``rskd.end_reason``;
    returns the run ids ended. The one way runs are closed on behalf of a process that is gone: the driver after an
    interruption (KILLED) or a trial that never reported its end (FAILED), the service after a job ended (KILLED).
    ``client``: an ``MlflowClient``."""
    return [run.info.run_id for run in runs
            if run.info.status not in RUN_TERMINAL and _end_run(client, run.info.run_id, status, reason)]  # fmt: skip


def _end_run(client: Any, run_id: str, status: str, reason: str, attempts: int = 3) -> bool:
    """End one run; False when its own process ended it meanwhile. That process writes ``Tag.END_REASON`` too, and
    two first writes of one tag race in MLflow's SQL store (a UNIQUE violation for the loser): the loser re-reads the
    run, and tries again only while it is still not ended."""
    for attempt in range(attempts):
        try:
            client.set_tag(run_id, Tag.END_REASON, reason)
            client.set_terminated(run_id, status=status)
            return True
        except Exception:
            if client.get_run(run_id).info.status in RUN_TERMINAL:
                return False
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return False


def mark_pruned_run(client: Any, run: Any, reason: str, end_reason: str) -> None:
    """Tag a run (an MLflow ``Run``, not FINISHED or FAILED) pruned with ``reason`` and end it KILLED with
    ``end_reason``: racing's trials it stopped or kept from starting, an extension's trials of a variant pruned before.
    One still open may be ending itself at this moment: it is ended through ``end_unfinished``."""
    rid = run.info.run_id
    client.set_tag(rid, Tag.PRUNED, TRUE)
    client.set_tag(rid, Tag.PRUNED_REASON, reason[:5000])
    if run.info.status == RunState.KILLED:  # stopped at an epoch's end: its process is gone
        client.set_tag(rid, Tag.END_REASON, end_reason)
    else:
        end_unfinished(client, [run], RunState.KILLED, end_reason)


def sweep_filter(sweep_id: str, kind: str | None = None) -> str:
    """MLflow search filter for a sweep's runs (``kind``: KIND_TRIAL, KIND_SWEEP, or None for both)."""
    query = f"tags.`{Tag.SWEEP_ID}` = '{sweep_id}'"
    return query + (f" and tags.`{Tag.KIND}` = '{kind}'" if kind else "")


def sweep_run_name(name: str, sweep_id: str) -> str:
    return f"{name} {sweep_id}"


def sweep_tags(sweep_id: str, code_version: str) -> dict[str, str]:
    return {Tag.KIND: KIND_SWEEP, Tag.SWEEP_ID: sweep_id, Tag.CODE_VERSION: code_version}


def trial_run_name(variant: str, seed: int) -> str:
    """A child run's name as the MLflow UI lists it, e.g. ``rskd_l · seed 1``."""
    return f"{variant} · seed {seed}"


def trial_model_name(variant: str, seed: int) -> str:
    """A trial's LoggedModel name (MLflow refuses ``/ : . % " '`` in it), e.g. ``rskd_l-seed1``."""
    return "".join("_" if ch in "/:.%\"'" else ch for ch in f"{variant}-seed{seed}")


def _ui_root(ui: str) -> str:
    return f"{ui.rstrip('/')}/" if ui else ""


def experiment_url(ui: str, experiment_id: str) -> str:
    """The runs view ("Training runs") of a sweep's experiment in the MLflow UI at ``ui`` (``""``: a link relative to
    a page of that UI), in the UI's model-training mode (without ``UI_TRAINING_MODE`` it keeps the mode last chosen in
    that browser, GenAI by default)."""
    return f"{_ui_root(ui)}#/experiments/{experiment_id}/runs{UI_TRAINING_MODE}"


def run_url(ui: str, experiment_id: str, run_id: str, artifact: str | None = None) -> str:
    """A run's page (the parent run's shows the comparison in its description), or one of its artifact folders."""
    page = f"/artifactPath/{artifact}" if artifact else ""
    return f"{_ui_root(ui)}#/experiments/{experiment_id}/runs/{run_id}{page}{UI_TRAINING_MODE}"


@dataclass(frozen=True)
class TrialIdentity:
    """What names a trial in MLflow (written as tags of its child run)."""

    trial_id: str
    variant: str
    role: str
    method: str
    seed: int
    config_hash: str
    teacher: str
    knobs: dict[str, Any] = field(default_factory=dict)

    @property
    def run_name(self) -> str:
        return trial_run_name(self.variant, self.seed)

    def tags(self, sweep_id: str, parent_run_id: str, code_version: str) -> dict[str, str]:
        return {
            Tag.PARENT_RUN: parent_run_id,
            Tag.RUN_NAME: self.run_name,
            Tag.KIND: KIND_TRIAL,
            Tag.SWEEP_ID: sweep_id,
            Tag.TRIAL_ID: self.trial_id,
            Tag.VARIANT: self.variant,
            Tag.ROLE: self.role,
            Tag.METHOD: self.method,
            Tag.SEED: str(self.seed),
            Tag.CONFIG_HASH: self.config_hash,
            Tag.TEACHER: self.teacher,
            Tag.KNOBS: json.dumps(self.knobs, sort_keys=True),
            Tag.CODE_VERSION: code_version,
        }


@dataclass(frozen=True)
class TrialRecord:
    """A trial as MLflow holds it: its child run's identity tags, state and latest metrics."""

    trial_id: str
    run_id: str
    experiment_id: str | None
    variant: str
    role: str
    method: str
    seed: int
    status: str  # a RunState
    stopped_early: bool
    epochs_done: int
    knobs: dict[str, Any]
    metrics: dict[str, float]
    pruned: bool = False  # racing stopped its variant before this run finished
    pruned_reason: str | None = None
    reopened: bool = False  # pruned, and an extension reopened its variant since (``Tag.REOPENED``)

    @classmethod
    def from_run(cls, run: Any) -> TrialRecord:
        tags, metrics = run.data.tags, dict(run.data.metrics)
        return cls(
            trial_id=tags[Tag.TRIAL_ID],
            run_id=run.info.run_id,
            experiment_id=run.info.experiment_id,
            variant=tags.get(Tag.VARIANT, ""),
            role=tags.get(Tag.ROLE, ""),
            method=tags.get(Tag.METHOD, ""),
            seed=int(tags.get(Tag.SEED, "0")),
            status=run.info.status,
            stopped_early=tags.get(Tag.STOPPED_EARLY) == TRUE,
            epochs_done=int(metrics.get(EPOCH, 0)),
            knobs=json.loads(tags.get(Tag.KNOBS, "{}")),
            metrics=metrics,
            pruned=tags.get(Tag.PRUNED) == TRUE,
            pruned_reason=tags.get(Tag.PRUNED_REASON),
            reopened=bool(tags.get(Tag.REOPENED)),
        )


class RacingMarks(Protocol):
    """What racing and extensions left on a trial's run: ``TrialRecord``, the service's trial view, ``Marks``."""

    @property
    def variant(self) -> str: ...

    @property
    def pruned(self) -> bool: ...

    @property
    def reopened(self) -> bool: ...

    @property
    def pruned_reason(self) -> str | None: ...


@dataclass(frozen=True)
class Marks:
    """``RacingMarks`` of a row that is a mapping (a report's table row, a page's trial dict): a missing or empty
    value (None, NaN) reads as not pruned, not reopened, no reason."""

    variant: str
    pruned: bool
    reopened: bool
    pruned_reason: str | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Marks:
        def flag(key: str) -> bool:
            return str(row.get(key)) == "True"  # True or numpy's; None and NaN are no flag

        reason = row.get("pruned_reason")
        return cls(str(row["variant"]), flag("pruned"), flag("reopened"), reason if isinstance(reason, str) else None)


def pruned_variants(runs: Iterable[RacingMarks]) -> dict[str, str]:
    """The variants racing has pruned **now** → why (the first reason found): those with a run tagged pruned that no
    extension reopened since. A reopen (``Tag.REOPENED`` on every pruned run of the variant) lasts until racing prunes
    the variant again: the runs racing then stops or keeps from starting carry the pruned tag alone. The one rule the
    worker (which new trials an extension runs), the service (``reopen``'s names) and the report (``§``) share."""
    pruned: dict[str, str] = {}
    for run in runs:
        if run.pruned and not run.reopened:
            pruned.setdefault(run.variant, run.pruned_reason or "pruned by racing")
    return pruned


# ---------------------------------------------------------------- metrics

EPOCH: Final = "epoch"  # the metric holding the last epoch done (every per-epoch metric is logged with step=epoch)
PER_EPOCH_PREFIXES: Final = (EPOCH, "train/", "test/", "lr", "throughput/", "time/", "diag/", "system/")
BEST_EPOCH: Final = "best/epoch"


@dataclass(frozen=True)
class MetricInfo:
    """A test metric: its per-epoch key ``test/<name>``, summary keys ``final/test_<name>`` and ``best/test_<name>``,
    and how it reads: which way is better, and whether it is a fraction shown in % (accuracies) or is shown as logged
    (ECE, logged in % already — METHODS.md; NLL in nats)."""

    name: str
    label: str
    higher_is_better: bool
    fraction: bool
    decimals: int = 2

    @property
    def key(self) -> str:
        return f"test/{self.name}"

    @property
    def final_key(self) -> str:
        return f"final/test_{self.name}"

    @property
    def best_key(self) -> str:
        return f"best/test_{self.name}"

    @property
    def scale(self) -> float:
        """Multiplier from the logged value to the shown one."""
        return 100.0 if self.fraction else 1.0

    def best_of(self, values: list[float]) -> float:
        return max(values) if self.higher_is_better else min(values)


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("top1", "Top-1", higher_is_better=True, fraction=True),
        MetricInfo("top5", "Top-5", higher_is_better=True, fraction=True),
        MetricInfo("nll", "NLL", higher_is_better=False, fraction=False, decimals=3),
        MetricInfo("ece", "ECE", higher_is_better=False, fraction=False),
    )
}


def metric_info(name: str) -> MetricInfo:
    """The facts of a metric named by its key (``test/top1``), summary key (``final/test_top1``) or table column
    (``final_top1``, ``best_top1``); KeyError for anything else."""
    for prefix in ("final/", "best/", "test/", "test_", "final_", "best_"):
        name = name.removeprefix(prefix)
    return METRICS[name]
