"""The feature-tap contract every model follows.

A model declares its tappable layers in ``feature_info`` (name, channels, reduction = stride w.r.t. the input) and
returns them from ``forward_taps(x, names)``: ``stage1``..``stage4`` are the stage outputs (N, C, H, W) and ``last``
is the pooled feature (N, C) that the classifier reads. ``forward`` returns logits only. Methods ask for taps by name,
never through forward hooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    channels: int
    reduction: int  # spatial stride relative to the input; 0 for the pooled vector `last`


class TapModel(nn.Module):
    """Base class: subclasses set ``feature_info`` and implement ``forward_taps``."""

    feature_info: list[FeatureSpec]
    num_classes: int

    def tap_names(self) -> list[str]:
        return [f.name for f in self.feature_info]

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.feature_info:
            if spec.name == name:
                return spec
        raise KeyError(f"model has no tap {name!r}; taps: {self.tap_names()}")

    def check_taps(self, names: Sequence[str]) -> None:
        unknown = [n for n in names if n not in self.tap_names()]
        if unknown:
            raise KeyError(f"unknown taps {unknown}; this model exposes {self.tap_names()}")

    def forward_taps(self, x: torch.Tensor, names: Sequence[str] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_taps(x, ())[0]
