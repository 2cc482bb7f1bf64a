"""Wide ResNets (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016): WRN-d-k.

Depth d = 6n + 4: a conv3×3 stem (16), three stages of n pre-activation blocks (BN-ReLU-conv3×3-BN-ReLU-conv3×3) at
widths 16k, 32k, 64k, strides 1/2/2, 1×1 projection shortcuts where the shape changes, a final BN-ReLU, global average
pooling and FC. Dropout between the convolutions is off (the KD papers train without it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rskd_core.models.base import FeatureSpec, TapModel, init_weights, make_stages
from rskd_core.models.preact_resnet import PreActBlock


class WideResNet(TapModel):
    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        self.num_classes = num_classes
        widths = [16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.stages = make_stages(PreActBlock, 16, widths, [n, n, n])
        self.bn = nn.BatchNorm2d(widths[-1])
        self.fc = nn.Linear(widths[-1], num_classes)
        self.feature_info = FeatureSpec.for_stages(widths)
        init_weights(self)

    def forward_taps(self, x: torch.Tensor, names: Sequence[str] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # the stage-3 tap is the pre-activation block output; the final BN-ReLU belongs to the head
        return self.run_stages(self.stem(x), self.stages, names, self.fc, head=lambda f: F.relu(self.bn(f)))
