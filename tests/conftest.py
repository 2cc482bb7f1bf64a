"""Shared fixtures: small, fast configs that train on CPU in seconds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from rskd_core.config import RunConfig
from rskd_core.config_io import apply_overrides, validate


def tiny_config(*overrides: str, **sections: Any) -> RunConfig:
    """A synthetic 8×8, 4-class problem on the tiny PreAct ResNet at width 4: a step takes milliseconds."""
    base: dict[str, Any] = {
        "seed": 0,
        "data": {
            "name": "synthetic",
            "image_size": 8,
            "num_classes": 4,
            "channels": 3,
            "train_size": 48,
            "test_size": 24,
            "loader": "device",
            "augment": {"crop_padding": 1, "flip": True},
        },
        "model": {"name": "preact_resnet_tiny", "width": 4},
        "optim": {"lr": 0.05, "batch_size": 16, "epochs": 3, "schedule": "cosine", "milestones": []},
        "runtime": {"device": "cpu", "threads": 1},
    }
    base.update(sections)
    return validate(apply_overrides(base, overrides))


@pytest.fixture
def make_config() -> Callable[..., RunConfig]:
    return tiny_config


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    torch.set_num_threads(1)
