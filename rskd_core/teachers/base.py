"""The pseudo-teacher contract (METHODS.md §11.2 item 4).

A :class:`TeacherRule` hands the method a teacher signal for the current batch — logits and, where it can, stage
features — and updates itself after each optimizer step and at each epoch start. Its ``state_dict`` holds everything
it needs to continue exactly after a resume.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from rskd_core.data import LoaderNeeds
from rskd_core.data.batch import Batch
from rskd_core.models.base import TapModel


@dataclass
class TeacherSignal:
    """Teacher outputs aligned row by row with the batch. ``mask`` marks the rows that have a teacher (None = all);
    ``rows``, when set, says the same as a slice the host knows without reading the device (last_batch's prefix,
    pred_bank's empty first epoch), so methods can select those rows without a host sync."""

    logits: torch.Tensor | None = None
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    mask: torch.Tensor | None = None
    probs: torch.Tensor | None = None
    rows: slice | None = None


@dataclass(frozen=True)
class TeacherContext:
    num_train: int
    num_classes: int
    device: torch.device
    train_labels: torch.Tensor  # (num_train,) on device, for banks that start from the labels
    taps: tuple[str, ...] = ()  # teacher features the method wants


class TeacherRule(ABC):
    """Base class. Subclasses set ``provides_features`` and override the hooks they need."""

    name: ClassVar[str]
    provides_features: ClassVar[bool] = False

    @abstractmethod
    def setup(self, student: TapModel, ctx: TeacherContext) -> None: ...

    def loader_needs(self, batch_size: int) -> LoaderNeeds:
        """What the training loader must deliver: new samples per step, CS-KD pairs, DLB's second view."""
        return LoaderNeeds(batch_size)

    @property
    def needs_pretraining(self) -> bool:
        """True when the teacher's weights must first be trained (a frozen teacher without a checkpoint)."""
        return False

    def set_pretrained(self, weights: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError(f"teacher rule {self.name} is not pre-trained")

    def student_taps(self) -> tuple[str, ...]:
        """Taps the student forward must also return so that the rule can cache them."""
        return ()

    def prepare(self, batch: Batch) -> Batch:
        """Turn the loader's batch into the batch the step trains on."""
        return batch

    def signal(self, batch: Batch) -> TeacherSignal | None:
        """Teacher outputs for ``batch`` (called under ``no_grad``, before the student forward)."""
        return None

    def after_step(self, batch: Batch, logits: torch.Tensor, taps: dict[str, torch.Tensor]) -> None:  # noqa: B027
        """Called after the optimizer step with the student's (detached) outputs on ``batch``."""

    def on_epoch_start(self, epoch: int) -> None:  # noqa: B027
        """Called before the first step of each epoch."""

    def compile(self) -> None:  # noqa: B027
        """``torch.compile`` the forward the rule runs each step (``runtime.compile``); rules without one ignore it."""

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor | None:
        """The teacher's logits on unseen images (diagnostics); None for rules that are not a network."""
        del x
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state
