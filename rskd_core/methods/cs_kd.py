"""CS-KD: class-wise self-knowledge distillation (Yun, Park, Lee, Shin, "Regularizing Class-wise Predictions via
Self-knowledge Distillation", CVPR 2020; METHODS.md §4). The partner logits come from the ``class_pair`` rule."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rskd_core.config import CSKDConfig
from rskd_core.data.batch import Batch
from rskd_core.losses import kd_kl
from rskd_core.methods.base import Method, ModelOutput, Progress
from rskd_core.teachers.base import TeacherSignal


class CSKD(Method):
    """L = CE(f(x), y) + λ·τ²·KL(p^τ(x′) ‖ p^τ(x)): x the anchors, x′ same-class partners under no_grad; CE on the
    anchors only; τ=4, λ=1."""

    name = "cs_kd"

    cfg: CSKDConfig

    def losses(
        self, batch: Batch, out: ModelOutput, teacher: TeacherSignal | None, progress: Progress
    ) -> dict[str, torch.Tensor]:
        assert teacher is not None and teacher.logits is not None, "cs_kd needs the partners' logits (class_pair)"
        return {
            "ce": F.cross_entropy(out.logits, batch.y),
            "cls": self.cfg.lam * kd_kl(out.logits, teacher.logits.detach(), self.cfg.temperature),
        }
