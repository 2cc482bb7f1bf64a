"""Cross-entropy and label smoothing (METHODS.md §1, §2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rskd_core.config import CEConfig, LabelSmoothingConfig
from rskd_core.data.batch import Batch
from rskd_core.losses import label_smoothing_targets, soft_target_ce
from rskd_core.methods.base import Method, ModelOutput, Progress
from rskd_core.teachers.base import TeacherSignal


class CrossEntropy(Method):
    """L = CE(z, y)."""

    name = "ce"
    cfg: CEConfig

    def losses(
        self, batch: Batch, out: ModelOutput, teacher: TeacherSignal | None, progress: Progress
    ) -> dict[str, torch.Tensor]:
        return {"ce": F.cross_entropy(out.logits, batch.y)}


class LabelSmoothing(Method):
    """L = −Σ_k q_k log p_k with q = (1−ε)·onehot(y) + ε/(K−1) elsewhere (Szegedy et al., 2016; TF-KD's form)."""

    name = "label_smoothing"
    cfg: LabelSmoothingConfig

    def losses(
        self, batch: Batch, out: ModelOutput, teacher: TeacherSignal | None, progress: Progress
    ) -> dict[str, torch.Tensor]:
        q = label_smoothing_targets(batch.y, self.num_classes, self.cfg.eps)
        return {"ce": soft_target_ce(out.logits, q)}
