"""torchvision's ResNet-18 for 224 px images (He et al., 2016), randomly initialised: the fine-grained benchmarks
of CS-KD and FRSKD (CUB-200, Stanford Dogs, MIT67) train it from scratch. Taps: layer1..layer4 as stage1..stage4."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rskd_core.models.base import FeatureSpec, TapModel


class TorchvisionResNet18(TapModel):
    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        from torchvision.models import resnet18

        if width != 64:
            raise ValueError("resnet18_imagenet has a fixed width of 64")
        net = resnet18(weights=None, num_classes=num_classes)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.num_classes = num_classes
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.fc = net.fc
        # the stem already reduces by 4 (stride-2 conv + max-pool)
        self.feature_info = FeatureSpec.for_stages([64, 128, 256, 512], first_reduction=4)

    def forward_taps(self, x: torch.Tensor, names: Sequence[str] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.run_stages(self.stem(x), self.stages, names, self.fc)
