"""PreAct ResNet-18 for CIFAR (the ``CIFAR_ResNet18`` of the CS-KD, PS-KD and Self-KD-Lib tables; METHODS.md §0.2).

He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016. Stem conv3×3 + BN + ReLU (no max-pool); four
stages of two pre-activation blocks (BN-ReLU-conv3×3-BN-ReLU-conv3×3), widths w, 2w, 4w, 8w, strides 1, 2, 2, 2; the
projection shortcut is a 1×1 conv without BN taken after the block's first BN-ReLU; no final BN-ReLU before global
average pooling; FC to the classes. With w=64 and 100 classes it has about 11.2 M parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rskd_core.models.base import FeatureSpec, TapModel, conv_stem, init_weights, make_stages


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        identity = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + identity


class PreActResNet(TapModel):
    def __init__(self, blocks: Sequence[int], num_classes: int, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.num_classes = num_classes
        widths = [width, width * 2, width * 4, width * 8]
        self.stem = conv_stem(in_channels, width)
        self.stages = make_stages(PreActBlock, width, widths, blocks)
        self.fc = nn.Linear(widths[-1], num_classes)
        self.feature_info = FeatureSpec.for_stages(widths)
        init_weights(self)

    def forward_taps(self, x: torch.Tensor, names: Sequence[str] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.run_stages(self.stem(x), self.stages, names, self.fc)
