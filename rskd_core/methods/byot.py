"""BYOT: "Be Your Own Teacher" (Zhang, Song, Gao, Chen, Bao, Ma, ICCV 2019; METHODS.md §6).

Each shallow stage i gets an auxiliary branch φ_i — stride-2 conv3×3 + BN + ReLU blocks, doubling the width, until it
reaches the deepest stage's width and stride (the papers use bottleneck blocks; this is the plain-conv version) —
then global pooling and its own classifier z_i. The deepest classifier z_D teaches every shallow one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rskd_core.config import BYOTConfig
from rskd_core.data.batch import Batch
from rskd_core.losses import kd_kl
from rskd_core.methods.base import Method, ModelOutput, Progress
from rskd_core.models.base import TapModel
from rskd_core.teachers.base import TeacherSignal


class AuxBranch(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, ratio: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        steps = int(math.log2(ratio))
        for j in range(steps):
            nxt = out_channels if j == steps - 1 else min(c * 2, out_channels)
            layers += [nn.Conv2d(c, nxt, 3, 2, 1, bias=False), nn.BatchNorm2d(nxt), nn.ReLU(inplace=True)]
            c = nxt
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(f, 1), 1)), f


class BYOT(Method):
    """L = CE(z_D, y) + Σ_i [(1−α)·CE(z_i, y) + α·τ²·KL(p_D^τ ‖ p_i^τ) + λ·mean((φ_i(F_i) − sg(F_D))²)],
    p_D detached; α=0.3, τ=3, λ=0 (the journal code's values). Evaluation uses the deepest head."""

    name = "byot"

    def __init__(self, cfg: BYOTConfig, model: TapModel) -> None:
        super().__init__(cfg, model)
        deepest = model.feature(model.deepest_stage())
        heads = list(cfg.heads) if cfg.heads is not None else model.stage_names()[:-1]
        unknown = [h for h in heads if h not in model.stage_names()[:-1]]
        if unknown:
            raise ValueError(f"method.heads {unknown}: this model's shallow stages are {model.stage_names()[:-1]}")
        self.branches = nn.ModuleDict()
        for h in heads:
            spec = model.feature(h)
            self.branches[h] = AuxBranch(
                spec.channels, deepest.channels, deepest.reduction // spec.reduction, model.num_classes
            )
        self.deepest = deepest.name
        self.student_taps = tuple(sorted({*heads, self.deepest}))

    def losses(
        self, batch: Batch, out: ModelOutput, teacher: TeacherSignal | None, progress: Progress
    ) -> dict[str, torch.Tensor]:
        c = self.cfg
        z_deep = out.logits
        terms = {"ce": F.cross_entropy(z_deep, batch.y)}
        deep_feat = out.taps[self.deepest].detach()
        for name, branch in self.branches.items():
            z_i, f_i = branch(out.taps[name])
            terms[f"ce_{name}"] = (1 - c.alpha) * F.cross_entropy(z_i, batch.y)
            terms[f"kd_{name}"] = c.alpha * kd_kl(z_i, z_deep.detach(), c.temperature)
            if c.feature_weight > 0:
                terms[f"feat_{name}"] = c.feature_weight * ((f_i - deep_feat) ** 2).mean()
        return terms
