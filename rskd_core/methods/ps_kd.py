"""PS-KD: progressive self-knowledge distillation (Kim, Ji, Yoon, Hwang, "Self-Knowledge Distillation with
Progressive Refinement of Targets", ICCV 2021; METHODS.md §5). The bank of last-epoch predictions is the
``pred_bank`` rule."""

from __future__ import annotations

import torch

from rskd_core.config import PSKDConfig
from rskd_core.data.batch import Batch
from rskd_core.losses import soft_target_ce
from rskd_core.methods.base import Method, ModelOutput, Progress
from rskd_core.teachers.base import TeacherSignal


def ps_kd_alpha(alpha_T: float, epoch: int, epochs: int) -> float:
    """α_t = α_T·(t+1)/E for the 0-based epoch t."""
    return alpha_T * (epoch + 1) / epochs


def ps_kd_targets(labels: torch.Tensor, bank_probs: torch.Tensor, alpha: float) -> torch.Tensor:
    """ỹ = (1−α_t)·onehot(y) + α_t·P[idx]."""
    onehot = torch.zeros_like(bank_probs).scatter_(1, labels.view(-1, 1), 1.0)  # F.one_hot reads max(y) on CPU
    return (1 - alpha) * onehot + alpha * bank_probs


class PSKD(Method):
    """L = −Σ_k ỹ_k log p_k with ỹ = (1−α_t)·onehot(y) + α_t·P[idx], α_T = 0.8; P starts as the one-hot labels."""

    name = "ps_kd"

    cfg: PSKDConfig

    def losses(
        self, batch: Batch, out: ModelOutput, teacher: TeacherSignal | None, progress: Progress
    ) -> dict[str, torch.Tensor]:
        assert teacher is not None and teacher.probs is not None, "ps_kd needs the prediction bank (pred_bank)"
        alpha = ps_kd_alpha(self.cfg.alpha_T, progress.epoch, progress.epochs)
        return {"ce": soft_target_ce(out.logits, ps_kd_targets(batch.y, teacher.probs.detach(), alpha))}
