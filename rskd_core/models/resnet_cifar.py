"""Post-activation ResNets for 32 px inputs (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

One class covers both families the Self-KD papers use:

* ``resnet18_cifar`` — the kuangliu-style post-activation ResNet-18 of TF-KD (METHODS.md §0.2): conv3×3 stem (64) +
  BN + ReLU, no max-pool, 2-2-2-2 BasicBlocks (conv-BN-ReLU-conv-BN, + shortcut, then ReLU), widths 64..512, strides
  1/2/2/2, projection shortcut = 1×1 conv + BN.
* ``resnet32`` / ``resnet56`` / ``resnet110`` — the 6n+2 CIFAR ResNets with three stages of n BasicBlocks at widths
  16/32/64 (n = 5, 9, 18). Shortcuts are 1×1 conv + BN where the shape changes ("option B", as in DLB's code; the
  original paper's option A zero-pads instead). DLB's own "resnet110" is a bottleneck variant; this one is the paper's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rskd_core.models.base import FeatureSpec, TapModel, conv_stem, init_weights, make_stages


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PostActResNet(TapModel):
    def __init__(
        self,
        blocks: Sequence[int],
        widths: Sequence[int],
        num_classes: int,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = conv_stem(in_channels, widths[0])
        self.stages = make_stages(BasicBlock, widths[0], widths, blocks)
        self.fc = nn.Linear(widths[-1], num_classes)
        self.feature_info = FeatureSpec.for_stages(widths)
        init_weights(self)

    def forward_taps(self, x: torch.Tensor, names: Sequence[str] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.run_stages(self.stem(x), self.stages, names, self.fc)
