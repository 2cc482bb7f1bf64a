"""No host sync in the training step: on a GPU each one stalls the queue of kernels (issue 13).

On CPU there is no queue to stall, so the syncs are counted where they would happen: every operation that reads a
tensor's value on the host (``.item()``, ``bool()``, ``float()``, ``int()`` — ATen's ``_local_scalar_dense``),
boolean-mask indexing and ``nonzero`` (the host must learn the row count), ``.tolist()`` and ``.numpy()``. The
step must do none of them; an epoch may do a fixed number at its end (the NaN check, the means, the evaluation).
The same check on a GPU, with ``torch.cuda.set_sync_debug_mode``, is in ``tests/gpu``.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from rskd_core.config import RunConfig
from rskd_core.engine import NonFiniteLossError, Trainer
from rskd_core.methods import Progress

aten = torch.ops.aten
SCALAR_READS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default}
BOOL_INDEXED = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}


def _bool_index(args: tuple[Any, ...]) -> bool:
    return len(args) > 1 and any(
        isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if isinstance(args[1], list) else [])
    )


class HostSyncCounter(TorchDispatchMode):
    """Records where each host read of a tensor value happens (the last frames of the Python stack)."""

    def __init__(self) -> None:
        super().__init__()
        self.where: list[str] = []

    def record(self, what: str) -> None:
        frames = [f for f in traceback.extract_stack()[:-2] if "rskd_core" in f.filename]
        self.where.append(f"{what} at " + (" < ".join(f"{f.name}:{f.lineno}" for f in frames[::-1][:3]) or "?"))

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        if func in SCALAR_READS or (func in BOOL_INDEXED and _bool_index(args)):
            self.record(str(func))
        return func(*args, **(kwargs or {}))


@contextmanager
def count_host_syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostSyncCounter]:
    counter = HostSyncCounter()
    for name in ("tolist", "numpy"):
        original = getattr(torch.Tensor, name)

        def wrapped(self: torch.Tensor, *a: Any, _orig: Any = original, _name: str = name, **k: Any) -> Any:
            counter.record(f"Tensor.{_name}")
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    with counter:
        yield counter
    monkeypatch.undo()


METHODS = {
    "ce": [],
    "rskd_ml/ema": ["method.name=rskd", "teacher.rule=ema", "method.layers=[last, stage1, stage2]"],
    "rskd_l/pred_bank": ["method.name=rskd", "teacher.rule=pred_bank"],
    "rskd_ml/last_batch": ["method.name=rskd", "teacher.rule=last_batch", "method.layers=[last, stage2]"],
    "rskd_l/prev_epoch": ["method.name=rskd", "teacher.rule=prev_epoch"],
    "ps_kd": ["method.name=ps_kd", "teacher.rule=pred_bank"],
    "cs_kd": ["method.name=cs_kd", "teacher.rule=class_pair"],
    "dlb": ["method.name=dlb", "teacher.rule=last_batch", "teacher.repeat_split=full", "teacher.repeat_view=second"],
    "label_smoothing": ["method.name=label_smoothing"],
    "tf_kd_reg": ["method.name=tf_kd_reg"],
    "byot": ["method.name=byot"],
}


def _epoch_syncs(trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """Host reads inside the training steps (the loader's batches included) and in the whole epoch."""
    in_steps: list[str] = []
    step = trainer.train_step

    def counted_step(batch: Any, progress: Progress) -> Any:
        before = len(counter.where)
        out = step(batch, progress)
        in_steps.extend(counter.where[before:])
        return out

    monkeypatch.setattr(trainer, "train_step", counted_step)
    with count_host_syncs(monkeypatch) as counter:
        trainer._run_epoch()
    return in_steps, counter.where


@pytest.mark.parametrize("overrides", list(METHODS.values()), ids=list(METHODS))
def test_the_training_step_reads_nothing_back_from_the_device(
    overrides: list[str], make_config: Callable[..., RunConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    def trainer(train_size: int) -> Trainer:
        cfg = make_config(
            *overrides,
            f"data.train_size={train_size}",
            "runtime.nan_check_every=1000",
            "method.warmup_epochs=0" if "method.name=rskd" in overrides else "optim.warmup_epochs=0",
        )
        t = Trainer(cfg)
        t._run_epoch()  # epoch 1: pred_bank fills, last_batch caches; the counted epoch is a steady one
        return t

    short, long = trainer(48), trainer(96)
    in_steps, per_epoch = _epoch_syncs(long, monkeypatch)
    assert in_steps == [], f"host syncs inside the training step: {in_steps}"
    _, per_short_epoch = _epoch_syncs(short, monkeypatch)
    # the epoch's end reads a fixed number of values; a per-step read would grow with the number of steps
    assert len(per_epoch) == len(per_short_epoch), (per_short_epoch, per_epoch)


def test_the_counter_sees_a_per_step_item(
    make_config: Callable[..., RunConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard above is live: a ``.item()``, a ``bool()`` or a boolean-mask selection in the step is caught."""
    t = Trainer(make_config("runtime.nan_check_every=1000"))
    losses = t.method.losses

    def leaky(*args: Any) -> dict[str, torch.Tensor]:
        terms = losses(*args)
        _ = terms["ce"].item(), bool(terms["ce"] > 0), terms["ce"].view(1)[torch.tensor([True])]
        return terms

    monkeypatch.setattr(t.method, "losses", leaky)
    in_steps, _ = _epoch_syncs(t, monkeypatch)
    assert len(in_steps) == 3 * t.steps_per_epoch, in_steps
    assert any("local_scalar_dense" in w for w in in_steps) and any("index" in w for w in in_steps)


def _inf_if(bad: bool, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**terms, "ce": terms["ce"] * float("inf")} if bad else terms


def test_nan_found_later_still_names_its_step(
    make_config: Callable[..., RunConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a check every N steps, the first bad step is found from the kept terms, and the epoch is not recorded."""
    trainer = Trainer(make_config("optim.epochs=2", "runtime.nan_check_every=1000"))
    calls = iter(range(1000))
    losses = trainer.method.losses
    # call 3 = epoch 2 (3 steps an epoch), step 1; the check at the epoch's end comes 2 steps later
    monkeypatch.setattr(trainer.method, "losses", lambda *a: _inf_if(next(calls) == 3, losses(*a)))
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 1: ce=inf \(seen 2 steps later"):
        trainer.fit()
    assert trainer.epoch == 1 and len(trainer.history) == 1
