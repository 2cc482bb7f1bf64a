"""DLB: self-distillation from the last mini-batch (Shen et al., "Self-Distillation from the Last Mini-Batch for
Consistency Regularization", CVPR 2022; METHODS.md §7). The batch carry-over is the ``last_batch`` rule."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rskd_core.config import DLBConfig
from rskd_core.data.batch import Batch
from rskd_core.losses import kd_kl
from rskd_core.methods.base import Method, ModelOutput, Progress, TeacherRows
from rskd_core.teachers.base import TeacherSignal


class DLB(Method):
    """L = CE([z_pre; z], [y_{t−1}; y_t]) + α·τ²·KL(softmax(sg(z_{t−1})/τ) ‖ softmax(z_pre/τ)): z_pre the logits of
    the previous step's samples now, z_{t−1} what the network gave them one step ago. Step 0 is plain CE."""

    name = "dlb"

    cfg: DLBConfig

    def losses(
        self, batch: Batch, out: ModelOutput, teacher: TeacherSignal | None, progress: Progress
    ) -> dict[str, torch.Tensor]:
        z = out.logits
        terms = {"ce": F.cross_entropy(z, batch.y), "kd": z.new_zeros(())}
        rows = TeacherRows.of(teacher)
        if teacher is not None and teacher.logits is not None and not rows.empty:
            kd = kd_kl(rows.pick(z), rows.pick(teacher.logits).detach(), self.cfg.temperature, rows.mask)
            terms["kd"] = self.cfg.alpha * kd
        return terms
