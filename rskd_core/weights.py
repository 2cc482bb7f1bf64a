"""Trained weights back into a model: the file ``Trainer.save_weights`` writes (``final.pt``, ``best.pt``, and the
MLflow LoggedModel of a sweep's trial, which holds the same ``final.pt``) → a ``TapModel`` in eval mode.

    from rskd_core.weights import load_tap_model
    model = load_tap_model("final.pt")                      # a local file
    # a sweep trial's LoggedModel (MLflow 3's Models tab; its id is in the run's outputs)
    from worker.mlflow_extras import download_model_weights
    model = load_tap_model(download_model_weights(MlflowClient(tracking_uri), model_id))
"""

from __future__ import annotations

from pathlib import Path

import torch

from rskd_core.config import RunConfig
from rskd_core.engine import checkpoint as ckpt
from rskd_core.models import TapModel, create_model


def _shape_facts(state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(classes, input channels) read off the weights: the first convolution's input channels and the last linear
    layer's outputs (the classifier); the strict ``load_state_dict`` below proves the guess."""
    convs = [t for t in state.values() if t.ndim == 4]
    linears = [t for t in state.values() if t.ndim == 2]
    if not convs or not linears:
        raise ValueError("these weights have no convolution or no linear layer: not a TapModel of this project")
    return int(linears[-1].shape[0]), int(convs[0].shape[1])


def load_tap_model(path: str | Path, device: torch.device | str = "cpu") -> TapModel:
    """The model of a weights file (``Trainer.save_weights``), rebuilt from the config it carries; eval mode."""
    payload = ckpt.load(path, device)
    cfg = RunConfig.model_validate(payload["config"])
    num_classes, channels = _shape_facts(payload["model"])
    model = create_model(cfg.model, num_classes, channels)
    model.load_state_dict(payload["model"])
    return model.to(device).eval()
