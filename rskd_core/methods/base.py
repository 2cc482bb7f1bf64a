"""The Method contract (mdistiller's habit): a method turns a batch, the student's outputs and the teacher's signal
into a dict of named, already weighted loss terms whose sum is the training loss. It never calls backward and never
logs. Extra trainable modules (residual heads, adapters, auxiliary heads) are submodules of the method; the trainer
adds them to the optimizer and the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from rskd_core.data.batch import Batch
from rskd_core.models.base import TapModel
from rskd_core.teachers.base import TeacherSignal


@dataclass(frozen=True)
class Progress:
    """Where training stands: 0-based epoch and step within it."""

    epoch: int
    step: int
    steps_per_epoch: int
    epochs: int

    @property
    def epoch_float(self) -> float:
        """Epochs done so far, fractional (0.5 = half-way through the first epoch)."""
        return self.epoch + self.step / max(self.steps_per_epoch, 1)


@dataclass
class ModelOutput:
    logits: torch.Tensor
    taps: dict[str, torch.Tensor]


@dataclass(frozen=True)
class TeacherRows:
    """The rows of a batch that have a teacher, selected without a host sync: a slice the host knows, else a
    boolean mask on the device that the losses average over (``losses.batch_mean``), else every row."""

    sel: slice | None = None
    mask: torch.Tensor | None = None

    @classmethod
    def of(cls, teacher: TeacherSignal | None) -> TeacherRows:
        if teacher is None:
            return cls()
        return cls(teacher.rows) if teacher.rows is not None else cls(mask=teacher.mask)

    @property
    def empty(self) -> bool:
        """No row has a teacher (known on the host; a device mask is never called empty)."""
        return self.sel is not None and self.sel.start == self.sel.stop

    def pick(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.sel is None else t[self.sel]


def linear_ramp(progress: Progress, warmup_epochs: float) -> float:
    """0 → 1 linearly over the first ``warmup_epochs`` epochs (per step), then 1."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, progress.epoch_float / warmup_epochs)


class Method(nn.Module):
    """Base class of every Self-KD method: built from its own config and the model it trains."""

    name: ClassVar[str]
    student_taps: tuple[str, ...] = ()
    teacher_taps: tuple[str, ...] = ()
    eval_taps: tuple[str, ...] = ()

    def __init__(self, cfg: Any, model: TapModel) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_classes = model.num_classes

    def losses(
        self, batch: Batch, out: ModelOutput, teacher: TeacherSignal | None, progress: Progress
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def predict(self, out: ModelOutput) -> torch.Tensor:
        """The logits used for evaluation."""
        return out.logits

    def step_stats(self, out: ModelOutput, teacher: TeacherSignal | None) -> dict[str, float]:
        """Method-specific per-step statistics for the optional diagnostics (none by default)."""
        return {}
