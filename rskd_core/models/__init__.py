"""Models with the feature-tap contract, created by name from a closed registry."""

from __future__ import annotations

from collections.abc import Callable

from rskd_core.config import ModelConfig
from rskd_core.models.base import FeatureSpec, TapModel
from rskd_core.models.preact_resnet import PreActResNet
from rskd_core.registry import Registry

ModelFactory = Callable[[int, int, int | None], TapModel]
MODELS: Registry[ModelFactory] = Registry("model")


@MODELS.register("preact_resnet18")
def preact_resnet18(num_classes: int, in_channels: int = 3, width: int | None = None) -> TapModel:
    """PreAct ResNet-18 (2-2-2-2 blocks, width 64): the CIFAR network of the PS-KD and CS-KD tables."""
    return PreActResNet([2, 2, 2, 2], num_classes, in_channels, width or 64)


@MODELS.register("preact_resnet_tiny")
def preact_resnet_tiny(num_classes: int, in_channels: int = 3, width: int | None = None) -> TapModel:
    """PreAct ResNet-18 layout (2-2-2-2) at width 16: the same shape and taps, small enough for digits on CPU."""
    return PreActResNet([2, 2, 2, 2], num_classes, in_channels, width or 16)


def create_model(cfg: ModelConfig, num_classes: int, in_channels: int) -> TapModel:
    return MODELS.get(cfg.name)(num_classes, in_channels, cfg.width)


__all__ = ["MODELS", "FeatureSpec", "TapModel", "create_model"]
