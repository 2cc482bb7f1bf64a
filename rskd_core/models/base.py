"""The feature-tap contract every model follows.

A model declares its tappable layers in ``feature_info`` (name, channels, reduction = stride w.r.t. the input) and
returns them from ``forward_taps(x, names)``: ``stage1``..``stageN`` are the stage outputs (B, C, H, W) — N is 4 for
the ResNet-18 family and 3 for the CIFAR ResNets and WRNs — and ``last`` is the pooled feature (B, C) that the
classifier reads. ``forward`` returns logits only. Methods ask for taps by name, never through forward hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    channels: int
    reduction: int  # spatial stride relative to the input; 0 for the pooled vector `last`

    @staticmethod
    def for_stages(widths: Sequence[int], first_reduction: int = 1) -> list[FeatureSpec]:
        """stage1..stageN with the reduction doubling from stage to stage, then ``last``."""
        specs = [FeatureSpec(f"stage{i + 1}", c, first_reduction * 2**i) for i, c in enumerate(widths)]
        return [*specs, FeatureSpec("last", widths[-1], 0)]


def make_stages(
    block: Callable[[int, int, int], nn.Module], in_planes: int, widths: Sequence[int], blocks: Sequence[int]
) -> nn.ModuleList:
    """Stage i holds ``blocks[i]`` blocks of width ``widths[i]``; every stage after the first starts with stride 2."""
    stages = []
    for i, (planes, n) in enumerate(zip(widths, blocks, strict=True)):
        layers = [block(in_planes, planes, 1 if i == 0 else 2)] + [block(planes, planes, 1) for _ in range(n - 1)]
        stages.append(nn.Sequential(*layers))
        in_planes = planes
    return nn.ModuleList(stages)


def conv_stem(in_channels: int, width: int) -> nn.Sequential:
    """conv3×3 + BN + ReLU, no pooling: the 32 px stem of the CIFAR ResNets."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
    )


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out) convolutions, unit BatchNorm scale and zero shift (torchvision's ResNet init)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class TapModel(nn.Module):
    """Base class: subclasses set ``feature_info`` and implement ``forward_taps``."""

    feature_info: list[FeatureSpec]
    num_classes: int
    fc: nn.Linear
    stages: nn.ModuleList  # stage1..stageN, in order

    def classifier(self) -> nn.Linear:
        """The linear head z = W·h + b that reads the pooled feature ``last``."""
        return self.fc

    def tap_names(self) -> list[str]:
        return [f.name for f in self.feature_info]

    def stage_names(self) -> list[str]:
        return [f.name for f in self.feature_info if f.name != "last"]

    def deepest_stage(self) -> str:
        return self.stage_names()[-1]

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.feature_info:
            if spec.name == name:
                return spec
        raise KeyError(f"model has no tap {name!r}; taps: {self.tap_names()}")

    def check_taps(self, names: Sequence[str]) -> None:
        unknown = [n for n in names if n not in self.tap_names()]
        if unknown:
            raise KeyError(f"unknown taps {unknown}; this model exposes {self.tap_names()}")

    def run_stages(
        self,
        x: torch.Tensor,
        stages: Iterable[nn.Module],
        names: Sequence[str],
        fc: nn.Module,
        head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run the stages, keep the requested stage outputs, pool, classify (shared by every model)."""
        taps: dict[str, torch.Tensor] = {}
        for i, stage in enumerate(stages):
            x = stage(x)
            if f"stage{i + 1}" in names:
                taps[f"stage{i + 1}"] = x
        if head is not None:
            x = head(x)
        h = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        if "last" in names:
            taps["last"] = h
        return fc(h), taps

    def forward_taps(self, x: torch.Tensor, names: Sequence[str] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def rerun_stages(self, x: torch.Tensor, after: str, upto: str) -> torch.Tensor:
        """Stage ``upto``'s output recomputed from stage ``after``'s output ``x`` with every weight detached and the
        BatchNorm running statistics untouched (batch statistics in training mode, as in the forward): the gradient
        reaches ``x`` through the stages, and no parameter or buffer changes."""
        names = self.stage_names()
        for stage in self.stages[names.index(after) + 1 : names.index(upto) + 1]:
            state = {n: p.detach() for n, p in stage.named_parameters()}
            state |= {n: b.clone() for n, b in stage.named_buffers()}
            x = torch.func.functional_call(stage, state, (x,))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_taps(x, ())[0]
