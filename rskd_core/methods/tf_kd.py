"""Teacher-free KD (Yuan, Tay, Li, Wang, Feng, "Revisiting Knowledge Distillation via Label Smoothing
Regularization", CVPR 2020; METHODS.md §3). Both forms follow the released code, including its KL reduction:
``nn.KLDivLoss()`` averaged over B·K elements (``kl_reduction=mean``), i.e. 1/K of the batchmean KL.

That reduction makes the released multipliers (m = 100 for reg, 50 for self, tuned on CIFAR-100) K-dependent: on a
10-class set the same m weighs the term 10× more (Tf-KD_self then diverges on digits). Unless ``multiplier`` is given,
m = m_published·K/100, which keeps the published effective weight at any number of classes and equals the released
value on CIFAR-100.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rskd_core.config import TFKDRegConfig, TFKDSelfConfig
from rskd_core.data.batch import Batch
from rskd_core.losses import kl_to_target
from rskd_core.methods.base import Method, ModelOutput, Progress
from rskd_core.models.base import TapModel
from rskd_core.teachers.base import TeacherSignal


def manual_teacher_probs(
    labels: torch.Tensor, num_classes: int, correct_prob: float, temperature: float
) -> torch.Tensor:
    """softmax(u/τ) of Tf-KD_reg's hand-made teacher u: correct_prob on the label, (1−correct_prob)/(K−1) elsewhere.

    Note the released code feeds these probabilities through a softmax at τ (20 by default), which makes the target
    nearly uniform: the term acts as a uniform-target penalty (METHODS.md §3).
    """
    u = torch.full((labels.shape[0], num_classes), (1 - correct_prob) / (num_classes - 1), device=labels.device)
    u.scatter_(1, labels.view(-1, 1), correct_prob)
    return F.softmax(u / temperature, dim=1)


def resolve_multiplier(given: float | None, published: float, num_classes: int) -> float:
    return given if given is not None else published * num_classes / 100


class TFKDReg(Method):
    """Tf-KD_reg: L = (1−α)·CE(z, y) + α·m·KL(softmax(u/τ) ‖ softmax(z)), α=0.1, τ=20, m=100 on CIFAR-100."""

    name = "tf_kd_reg"

    def __init__(self, cfg: TFKDRegConfig, model: TapModel) -> None:
        super().__init__(cfg, model)
        self.multiplier = resolve_multiplier(cfg.multiplier, 100.0, model.num_classes)

    def losses(
        self, batch: Batch, out: ModelOutput, teacher: TeacherSignal | None, progress: Progress
    ) -> dict[str, torch.Tensor]:
        c = self.cfg
        q = manual_teacher_probs(batch.y, self.num_classes, c.correct_prob, c.temperature)
        return {
            "ce": (1 - c.alpha) * F.cross_entropy(out.logits, batch.y),
            "reg": c.alpha * self.multiplier * kl_to_target(out.logits, q, c.kl_reduction),
        }


class TFKDSelf(Method):
    """Tf-KD_self: L = (1−α)·CE(z, y) + α·τ²·m·KL(softmax(z̃/τ) ‖ softmax(z/τ)), z̃ from a frozen same-architecture
    teacher trained with CE; α=0.95, τ=6, m=50 on CIFAR-100 (the ResNet-18 values of the released configs)."""

    name = "tf_kd_self"

    def __init__(self, cfg: TFKDSelfConfig, model: TapModel) -> None:
        super().__init__(cfg, model)
        self.multiplier = resolve_multiplier(cfg.multiplier, 50.0, model.num_classes)

    def losses(
        self, batch: Batch, out: ModelOutput, teacher: TeacherSignal | None, progress: Progress
    ) -> dict[str, torch.Tensor]:
        c = self.cfg
        assert teacher is not None and teacher.logits is not None, "tf_kd_self needs the frozen teacher's logits"
        t = c.temperature
        q = F.softmax(teacher.logits.detach().float() / t, dim=1)
        return {
            "ce": (1 - c.alpha) * F.cross_entropy(out.logits, batch.y),
            "kd": c.alpha * t * t * self.multiplier * kl_to_target(out.logits / t, q, c.kl_reduction),
        }
