"""Models with the feature-tap contract, created by name from a closed registry."""

from __future__ import annotations

from collections.abc import Callable

from rskd_core.config import ModelConfig
from rskd_core.models.base import FeatureSpec, TapModel
from rskd_core.models.preact_resnet import PreActResNet
from rskd_core.models.resnet_cifar import PostActResNet
from rskd_core.models.torchvision_resnet import TorchvisionResNet18
from rskd_core.models.wrn import WideResNet
from rskd_core.registry import Registry

ModelFactory = Callable[[int, int, int | None], TapModel]
MODELS: Registry[ModelFactory] = Registry("model")


def _scaled(widths: list[int], width: int | None) -> list[int]:
    return widths if width is None else [width * w // widths[0] for w in widths]


@MODELS.register("preact_resnet18")
def preact_resnet18(num_classes: int, in_channels: int = 3, width: int | None = None) -> TapModel:
    """PreAct ResNet-18 (2-2-2-2 blocks, width 64): the CIFAR network of the PS-KD and CS-KD tables."""
    return PreActResNet([2, 2, 2, 2], num_classes, in_channels, width or 64)


@MODELS.register("preact_resnet_tiny")
def preact_resnet_tiny(num_classes: int, in_channels: int = 3, width: int | None = None) -> TapModel:
    """PreAct ResNet-18 layout (2-2-2-2) at width 16: the same shape and taps, small enough for digits on CPU."""
    return PreActResNet([2, 2, 2, 2], num_classes, in_channels, width or 16)


@MODELS.register("resnet18_cifar")
def resnet18_cifar(num_classes: int, in_channels: int = 3, width: int | None = None) -> TapModel:
    """Post-activation ResNet-18 for 32 px (kuangliu style; TF-KD's network)."""
    return PostActResNet([2, 2, 2, 2], _scaled([64, 128, 256, 512], width), num_classes, in_channels)


def _cifar_resnet(depth: int) -> ModelFactory:
    def make(num_classes: int, in_channels: int = 3, width: int | None = None) -> TapModel:
        n = (depth - 2) // 6
        return PostActResNet([n, n, n], _scaled([16, 32, 64], width), num_classes, in_channels)

    make.__doc__ = f"CIFAR ResNet-{depth}: 3 stages of {(depth - 2) // 6} BasicBlocks, widths 16/32/64."
    return make


for _depth in (32, 56, 110):
    MODELS.register(f"resnet{_depth}")(_cifar_resnet(_depth))


def _wrn(depth: int, widen: int) -> ModelFactory:
    def make(num_classes: int, in_channels: int = 3, width: int | None = None) -> TapModel:
        return WideResNet(depth, width or widen, num_classes, in_channels)

    make.__doc__ = f"WRN-{depth}-{widen} (model.width overrides the widening factor)."
    return make


MODELS.register("wrn_16_4")(_wrn(16, 4))
MODELS.register("wrn_28_10")(_wrn(28, 10))


@MODELS.register("resnet18_imagenet")
def resnet18_imagenet(num_classes: int, in_channels: int = 3, width: int | None = None) -> TapModel:
    """torchvision's ResNet-18 (224 px, stride-2 stem + max-pool), random init."""
    return TorchvisionResNet18(num_classes, in_channels, width or 64)


def create_model(cfg: ModelConfig, num_classes: int, in_channels: int) -> TapModel:
    return MODELS.get(cfg.name)(num_classes, in_channels, cfg.width)


__all__ = ["MODELS", "FeatureSpec", "TapModel", "create_model"]
