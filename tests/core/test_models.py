"""The feature-tap contract, checked for every registered model."""

from __future__ import annotations

import pytest
import torch

from rskd_core.config import ModelConfig
from rskd_core.models import MODELS, create_model


@pytest.mark.parametrize("name", MODELS.names())
def test_tap_contract(name: str) -> None:
    torch.manual_seed(0)
    model = MODELS.get(name)(7, 3, None)
    model.eval()
    size = 64 if name == "resnet18_imagenet" else 32
    x = torch.randn(2, 3, size, size)
    names = model.tap_names()
    stages = model.stage_names()
    assert names == [*stages, "last"]
    assert stages == [f"stage{i + 1}" for i in range(len(stages))] and len(stages) in (3, 4)
    assert model.deepest_stage() == stages[-1]
    logits, taps = model.forward_taps(x, names)
    assert logits.shape == (2, 7)
    assert set(taps) == set(names)
    for spec in model.feature_info:
        t = taps[spec.name]
        if spec.reduction == 0:
            assert t.shape == (2, spec.channels)
        else:
            assert t.shape == (2, spec.channels, size // spec.reduction, size // spec.reduction), spec
    assert model.feature("last").channels == model.feature(stages[-1]).channels
    # plain forward returns the same logits; taps are computed only when asked for
    torch.testing.assert_close(model(x), logits)
    _, none = model.forward_taps(x, ())
    assert none == {}
    # `last` is what the classifier reads
    torch.testing.assert_close(model.fc(taps["last"]), logits)  # type: ignore[operator]
    with pytest.raises(KeyError, match="unknown taps"):
        model.check_taps(["stage9"])


@pytest.mark.parametrize(
    ("name", "millions"),
    [("resnet32", 0.46), ("resnet56", 0.85), ("resnet110", 1.73), ("wrn_16_4", 2.75), ("wrn_28_10", 36.5),
     ("resnet18_cifar", 11.2), ("resnet18_imagenet", 11.2)],
)  # fmt: skip
def test_published_parameter_counts(name: str, millions: float) -> None:
    model = MODELS.get(name)(10 if name != "resnet18_imagenet" else 1000, 3, None)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    # CIFAR-10 heads for the CIFAR nets (He et al. / Zagoruyko & Komodakis tables), 1000 classes for ImageNet (11.7 M)
    expected = 11.7 if name == "resnet18_imagenet" else millions
    assert abs(n - expected) / expected < 0.03, n


def test_preact_resnet18_matches_the_published_size() -> None:
    model = create_model(ModelConfig(name="preact_resnet18"), num_classes=100, in_channels=3)
    n = sum(p.numel() for p in model.parameters())
    assert 11.1e6 < n < 11.3e6  # METHODS.md §0.2: about 11.2 M parameters
    # projection shortcuts are 1×1 convs without BN; no final BN before pooling
    block = model.stages[1][0]  # type: ignore[index]
    assert isinstance(block.shortcut, torch.nn.Conv2d)
    assert [s.channels for s in model.feature_info] == [64, 128, 256, 512, 512]


def test_tiny_model_has_small_width_and_handles_8px() -> None:
    model = create_model(ModelConfig(name="preact_resnet_tiny"), num_classes=10, in_channels=1)
    assert [s.channels for s in model.feature_info] == [16, 32, 64, 128, 128]
    logits, taps = model.forward_taps(torch.randn(3, 1, 8, 8), ["stage4"])
    assert logits.shape == (3, 10) and taps["stage4"].shape == (3, 128, 1, 1)
