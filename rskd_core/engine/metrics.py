"""Test metrics as METHODS.md §0.3 defines them: top-1/top-5 accuracy (fractions), NLL (mean CE at τ=1), ECE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rskd_core.losses import expected_calibration_error


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction of samples whose label is among the k largest logits (k is capped at the number of classes)."""
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return float((top == labels.view(-1, 1)).any(dim=1).float().mean())


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, ece_bins: int = 15) -> dict[str, float]:
    logits = logits.float()
    return {
        "top1": topk_accuracy(logits, labels, 1),
        "top5": topk_accuracy(logits, labels, 5),
        "nll": float(F.cross_entropy(logits, labels)),
        "ece": expected_calibration_error(F.softmax(logits, dim=1), labels, ece_bins),
    }
