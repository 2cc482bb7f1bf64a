"""The training loop: exact resume, NaN handling, fault injection, schedules, metrics, callbacks."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from rskd_core.config import OptimConfig, RunConfig
from rskd_core.engine import (
    Callback,
    Checkpointer,
    FailAfterEpoch,
    InjectedFault,
    JsonlWriter,
    NonFiniteLossError,
    ResumeError,
    Trainer,
)
from rskd_core.engine.metrics import classification_metrics
from rskd_core.engine.schedule import LRSchedule

TIMING = {"throughput/samples_per_s", "time/epoch_s"}


class StopAfter(Callback):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if record["epoch"] >= self.epochs:
            trainer.request_stop()


def _strip(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


@pytest.mark.parametrize(
    "overrides",
    [
        ["method.name=rskd", "teacher.rule=ema", "method.layers=[last, stage1, stage2]"],
        ["method.name=rskd", "teacher.rule=last_batch", "method.layers=[last, stage2]"],
        ["method.name=rskd", "teacher.rule=pred_bank"],
        ["method.name=rskd", "teacher.rule=prev_epoch", "method.layers=[stage3]", "method.target=last"],
    ],
    ids=["ema-ml", "last_batch", "pred_bank", "prev_epoch"],
)
def test_resume_is_bit_identical_on_cpu(
    overrides: list[str], tmp_path: Path, make_config: Callable[..., RunConfig]
) -> None:
    cfg = make_config(*overrides, "optim.epochs=4", "runtime.deterministic=true", "method.warmup_epochs=1")
    straight = Trainer(cfg)
    straight.fit()

    first = Trainer(cfg, [Checkpointer(tmp_path), StopAfter(2)])
    assert first.fit().epochs_done == 2  # stopped before its 4 epochs
    resumed = Trainer(cfg)
    result = resumed.fit(resume_from=tmp_path / "checkpoint.pt")
    assert result.epochs_done == 4
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"model.{name} differs after resume"
    for (name, a), b in zip(straight.method.state_dict().items(), resumed.method.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"method.{name} differs after resume"
    assert _strip(straight.history) == _strip(resumed.history)


def test_resume_refuses_another_config(tmp_path: Path, make_config: Callable[..., RunConfig]) -> None:
    cfg = make_config("optim.epochs=1")
    Trainer(cfg, [Checkpointer(tmp_path)]).fit()
    with pytest.raises(ResumeError, match="another config"):
        Trainer(make_config("optim.epochs=1", "optim.lr=0.2")).fit(resume_from=tmp_path / "checkpoint.pt")
    # runtime settings may change on resume
    done = Trainer(make_config("optim.epochs=1", "runtime.threads=2")).fit(resume_from=tmp_path / "checkpoint.pt")
    assert done.epochs_done == 1 and len(done.history) == 1


def test_nan_loss_names_epoch_step_and_term(make_config: Callable[..., RunConfig]) -> None:
    trainer = Trainer(make_config("optim.epochs=2", "method.name=label_smoothing"))
    original = trainer.method.losses
    calls = {"n": 0}

    def poisoned(*args: Any) -> dict[str, torch.Tensor]:
        terms = original(*args)
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 2 (3 steps an epoch), step 2
            terms["ce"] = terms["ce"] * float("nan")
        return terms

    trainer.method.losses = poisoned  # type: ignore[method-assign]
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 2: ce=nan"):
        trainer.fit()
    assert trainer.epoch == 1 and len(trainer.history) == 1  # epoch 1 kept
    assert all(torch.isfinite(v.float()).all() for v in trainer.model.state_dict().values())
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_injected_fault_fires_after_the_checkpoint_and_not_after_resume(
    tmp_path: Path, make_config: Callable[..., RunConfig]
) -> None:
    cfg = make_config("optim.epochs=3")
    with pytest.raises(InjectedFault, match="after epoch 2"):
        Trainer(cfg, [Checkpointer(tmp_path), JsonlWriter(tmp_path / "metrics.jsonl"), FailAfterEpoch(1)]).fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2
    resumed = Trainer(cfg, [JsonlWriter(tmp_path / "metrics.jsonl"), FailAfterEpoch(1)])
    result = resumed.fit(resume_from=tmp_path / "checkpoint.pt")
    assert result.epochs_done == 3
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]  # no epoch lost or written twice


def test_history_records_have_the_documented_keys(make_config: Callable[..., RunConfig]) -> None:
    result = Trainer(make_config("optim.epochs=1")).fit()
    rec = result.history[0]
    for key in ["epoch", "train/loss", "train/ce", "test/top1", "test/top5", "test/nll", "test/ece", "lr", *TIMING]:
        assert key in rec
    assert 0.0 <= rec["test/top1"] <= rec["test/top5"] <= 1.0


def test_schedules() -> None:
    ms = LRSchedule(OptimConfig(lr=0.1, epochs=10, milestones=(5, 8), gamma=0.1, warmup_epochs=1), steps_per_epoch=4)
    assert ms.lr_at(0) == pytest.approx(0.025)  # warm-up per step: (step+1)/warmup_steps
    assert ms.lr_at(3) == pytest.approx(0.1)
    assert ms.lr_at(19) == pytest.approx(0.1)
    assert ms.lr_at(20) == pytest.approx(0.01)  # epoch 5
    assert ms.lr_at(32) == pytest.approx(0.001)  # epoch 8
    cos = LRSchedule(OptimConfig(lr=0.2, epochs=4, schedule="cosine", milestones=()), steps_per_epoch=5)
    assert cos.lr_at(0) == pytest.approx(0.2)
    assert cos.lr_at(10) == pytest.approx(0.1)
    assert cos.lr_at(15) == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.75)))


def test_classification_metrics_definitions() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    labels = torch.tensor([0, 0])
    m = classification_metrics(logits, labels, ece_bins=15)
    assert m["top1"] == 0.5
    assert m["top5"] == 0.5  # label 0 is the smallest logit of row 2
    expected_nll = -(torch.log_softmax(logits, 1)[[0, 1], [0, 0]]).mean().item()
    assert m["nll"] == pytest.approx(expected_nll)
