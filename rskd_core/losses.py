"""Pure loss functions and the calibration metric. No state, no logging; each one is tested against a hand-computed
example and with ``gradcheck`` in float64.

Notation (METHODS.md): z = student logits, z̃ = teacher logits, p^τ = softmax(z/τ), KL(p‖q) = Σ_k p_k log(p_k/q_k),
sg = stop-gradient (``detach``), K = number of classes, B = batch size. "Mean over the batch" always means the
per-sample sum over classes averaged over the B samples (``batchmean``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F


def batch_mean(per_sample: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch; with a boolean ``mask``, over the rows it marks (0 when it marks none).

    The same value as ``per_sample[mask].mean()`` without a host sync (boolean indexing waits for the GPU to count
    the rows); rows outside the mask give no value and no gradient, even when they are not finite.
    """
    if mask is None:
        return per_sample.mean()
    kept = torch.where(mask, per_sample, per_sample.new_zeros(()))
    return kept.sum() / mask.sum().clamp_min(1).to(per_sample.dtype)


def kd_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """τ²·KL(softmax(z̃/τ) ‖ softmax(z/τ)), summed over classes, mean over the batch (the ``mask``ed rows).

    Hinton et al. (2015). The τ² factor keeps gradient magnitudes comparable across temperatures. Nothing is
    detached here: callers decide which side is a (stop-gradient) teacher.
    """
    t = temperature
    log_p_t = F.log_softmax(teacher_logits / t, dim=1)
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    return batch_mean(kl, mask) * (t * t)


def kl_to_target(
    logits: torch.Tensor, target_probs: torch.Tensor, reduction: Literal["batchmean", "mean"] = "batchmean"
) -> torch.Tensor:
    """KL(q ‖ softmax(z)) = Σ_k q_k·(log q_k − log softmax(z)_k).

    ``batchmean``: summed over classes, mean over the batch. ``mean``: mean over all B·K elements (= batchmean / K),
    which is what ``nn.KLDivLoss()`` with its old default reduction computes — TF-KD's released code uses that.
    """
    per_sample = (torch.xlogy(target_probs, target_probs) - target_probs * F.log_softmax(logits, dim=1)).sum(dim=1)
    kl = per_sample.mean()
    return kl / logits.shape[1] if reduction == "mean" else kl


def soft_target_ce(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """−Σ_k q_k·log softmax(z)_k, mean over the batch (cross-entropy against a soft target q)."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def label_smoothing_targets(labels: torch.Tensor, num_classes: int, eps: float) -> torch.Tensor:
    """Soft targets with 1−ε on the label and ε/(K−1) on every other class (the TF-KD / Self-KD-Lib form)."""
    off = eps / (num_classes - 1)
    q = torch.full((labels.shape[0], num_classes), off, dtype=torch.float32, device=labels.device)
    q.scatter_(1, labels.view(-1, 1), 1.0 - eps)
    return q


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """ECE in percent: 100·Σ_b (n_b/N)·|acc_b − conf_b| over equal-width confidence bins (lo, hi].

    Confidence is the maximum class probability (Guo et al., 2017). PS-KD's released code uses 10 bins; 15 is the
    Guo et al. convention.
    """
    probs = probs.detach().to(torch.float64)
    conf, pred = probs.max(dim=1)
    correct = (pred == labels.to(pred.device)).to(torch.float64)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=probs.device)
    # bucketize(right=False) gives i with edges[i-1] < conf <= edges[i]: bins closed on the right
    bins = (torch.bucketize(conf, edges, right=False) - 1).clamp_(0, n_bins - 1)
    sum_conf = torch.zeros(n_bins, dtype=torch.float64, device=probs.device).index_add_(0, bins, conf)
    sum_acc = torch.zeros(n_bins, dtype=torch.float64, device=probs.device).index_add_(0, bins, correct)
    return float(100.0 * (sum_acc - sum_conf).abs().sum() / max(len(conf), 1))


def _center(z: torch.Tensor) -> torch.Tensor:
    return z - z.mean(dim=1, keepdim=True)


def residual_logit_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    residual: torch.Tensor,
    temperature: float = 4.0,
    form: Literal["kl", "mse"] = "kl",
    gap_grad: Literal["stop", "through"] = "stop",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """RSKD-L, the output-level residual term (METHODS.md §11.2 item 1; an inferred formulation).

    A residual head r reads the student's last feature h and predicts the gap g = z̃ − z between the pseudo-teacher's
    logits z̃ (always sg) and the student's logits z. With z_g = sg(z) (``gap_grad="stop"``) or z_g = z (``"through"``)
    and the corrected logits ẑ = z_g + r(h):

    * ``form="kl"``:  L = τ²·KL(softmax(z̃/τ) ‖ softmax(ẑ/τ)), mean over the batch.
    * ``form="mse"``: L = ‖r(h) − (c(z̃) − c(z_g))‖² / K, mean over the batch, where c(v) = v − mean_k(v) removes
      the per-sample constant that logits are only defined up to (so log-probability teachers work too).

    With ``stop`` the gradient reaches the last feature layer only through r: that layer literally learns the gap.
    With ``through`` the gradient flows through ``student_logits`` as given: RSKD passes z itself (the classifier is
    pulled too) or, for its ``feature`` mode, z recomputed from h with the classifier's weights detached.
    ``mask`` restricts the batch mean to the rows that have a teacher.
    """
    z_t = teacher_logits.detach()
    z_g = student_logits.detach() if gap_grad == "stop" else student_logits
    if form == "kl":
        return kd_kl(z_g + residual, z_t, temperature, mask)
    if form == "mse":
        gap = _center(z_t) - _center(z_g)
        return batch_mean(((residual - gap) ** 2).sum(dim=1), mask) / residual.shape[1]
    raise ValueError(f"unknown residual form {form!r}; use 'kl' or 'mse'")


def normalize_features(x: torch.Tensor, mode: Literal["none", "layernorm", "l2"]) -> torch.Tensor:
    """Feature normalisation before a gap is taken.

    ``layernorm``: zero mean, unit variance over the channels at each position (no affine). ``l2``: each sample's
    flattened feature scaled to unit RMS (L2 norm √D), so that a mean squared error stays O(1).
    """
    if mode == "none":
        return x
    if mode == "layernorm":
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5)
    if mode == "l2":
        flat = x.flatten(1)
        rms = flat.pow(2).mean(dim=1).add(1e-12).sqrt()
        return x / rms.view(-1, *([1] * (x.dim() - 1)))
    raise ValueError(f"unknown feature normalisation {mode!r}; use none, layernorm or l2")


def residual_feature_loss(
    adapted: torch.Tensor,
    student_feature: torch.Tensor,
    teacher_feature: torch.Tensor,
    norm: Literal["none", "layernorm", "l2"] = "none",
    mask: torch.Tensor | None = None,
    student_grad: bool = False,
) -> torch.Tensor:
    """RSKD-ML, the layer-wise residual term (METHODS.md §11.2 item 2; an inferred formulation).

    An adapter a_l maps the student's stage-l feature F_l to the shape of the target stage j, and regresses the gap
    between the pseudo-teacher's and the student's stage-j features:

        L_l = mean( (a_l(F_l) − sg(N(F̃_j) − N(F_j)))² ),

    the mean over every element (of the ``mask``ed rows), N the ``norm`` of :func:`normalize_features`. Gradients
    reach F_l (and the layers before it) only through the adapter; the target is constant. With ``student_grad`` the
    student's side keeps its graph — L_l = mean((a_l(F_l) + N(F_j) − sg(N(F̃_j)))²) — for a caller that recomputed F_j
    from F_l through detached weights (``layer_gap_grad: feature``); the teacher's side stays constant.
    """
    with torch.no_grad():
        teacher = normalize_features(teacher_feature, norm)
    with torch.set_grad_enabled(student_grad and torch.is_grad_enabled()):
        gap = teacher - normalize_features(student_feature, norm)
    if adapted.shape != gap.shape:
        raise ValueError(f"adapter output {tuple(adapted.shape)} does not match the target gap {tuple(gap.shape)}")
    squared = (adapted - gap) ** 2
    return squared.mean() if mask is None else batch_mean(squared.flatten(1).mean(dim=1), mask)
