"""Each loss against a small example computed by hand (math module only), and gradcheck in float64."""

from __future__ import annotations

import math

import pytest
import torch

from rskd_core.losses import (
    expected_calibration_error,
    kd_kl,
    label_smoothing_targets,
    normalize_features,
    residual_feature_loss,
    residual_logit_loss,
    soft_target_ce,
)


def _kl2(p: tuple[float, float], q: tuple[float, float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def _softmax2(a: float, b: float) -> tuple[float, float]:
    ea, eb = math.exp(a), math.exp(b)
    return ea / (ea + eb), eb / (ea + eb)


def test_kd_kl_hand_computed_tau1_and_tau2() -> None:
    s = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    t = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    # τ=1: row 0 KL([3/4,1/4] ‖ [1/2,1/2]); row 1 KL([1/2,1/2] ‖ softmax(1,-1))
    row0 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    row1 = _kl2((0.5, 0.5), _softmax2(1.0, -1.0))
    assert kd_kl(s, t, 1.0).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    # τ=2: logits halved, result × τ² = 4
    row0 = _kl2(_softmax2(math.log(3.0) / 2, 0.0), (0.5, 0.5))
    row1 = _kl2((0.5, 0.5), _softmax2(0.5, -0.5))
    assert kd_kl(s, t, 2.0).item() == pytest.approx(4 * (row0 + row1) / 2, rel=1e-6)


def test_kd_kl_zero_for_equal_logits_and_does_not_detach() -> None:
    z = torch.randn(5, 7, requires_grad=True)
    t = torch.randn(5, 7, requires_grad=True)
    assert kd_kl(z, z.detach(), 3.0).item() == pytest.approx(0.0, abs=1e-6)
    kd_kl(z, t, 3.0).backward()
    assert t.grad is not None and t.grad.abs().sum() > 0  # callers detach the teacher, not the function


def test_soft_target_ce_hand_computed() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])
    q = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_target_ce(logits, q).item() == pytest.approx(expected, rel=1e-6)
    # one-hot targets reduce to cross-entropy
    z = torch.randn(6, 5)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    onehot = torch.nn.functional.one_hot(y, 5).float()
    assert soft_target_ce(z, onehot).item() == pytest.approx(torch.nn.functional.cross_entropy(z, y).item(), rel=1e-6)


def test_label_smoothing_targets_hand_computed() -> None:
    q = label_smoothing_targets(torch.tensor([2, 0]), 4, 0.3)
    expected = torch.tensor([[0.1, 0.1, 0.7, 0.1], [0.7, 0.1, 0.1, 0.1]])
    torch.testing.assert_close(q, expected)
    torch.testing.assert_close(q.sum(1), torch.ones(2))


def test_ece_hand_computed_bins() -> None:
    # K=5; confidences 0.95 (right), 0.92 (wrong), 0.55 (right), 0.30 (wrong); 10 bins (lo, hi]
    def row(conf: float, cls: int) -> list[float]:
        rest = (1 - conf) / 4
        r = [rest] * 5
        r[cls] = conf
        return r

    probs = torch.tensor([row(0.95, 0), row(0.92, 1), row(0.55, 2), row(0.30, 3)], dtype=torch.float64)
    labels = torch.tensor([0, 0, 2, 0])
    expected = 100 * (2 / 4 * abs(0.5 - (0.95 + 0.92) / 2) + 1 / 4 * abs(1 - 0.55) + 1 / 4 * abs(0 - 0.30))
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(expected, rel=1e-9)


def test_ece_bins_are_closed_on_the_right() -> None:
    # conf 0.5 (right) and 0.45 (wrong) share the bin (0.4, 0.5] → |0.5 − 0.475| = 2.5 %;
    # with [lo, hi) bins they would be apart (47.5 %)
    probs = torch.tensor([[0.5, 0.25, 0.25, 0.0], [0.45, 0.35, 0.2, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(2.5, abs=1e-9)


def test_ece_matches_a_naive_loop_on_random_data() -> None:
    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(500, 10, generator=g) * 2, dim=1)
    labels = torch.randint(0, 10, (500,), generator=g)
    conf, pred = probs.max(1)
    total = 0.0
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        sel = [i for i in range(500) if lo < conf[i].item() <= hi]
        if sel:
            acc = sum(float(pred[i] == labels[i]) for i in sel) / len(sel)
            c = sum(conf[i].item() for i in sel) / len(sel)
            total += len(sel) / 500 * abs(acc - c)
    assert expected_calibration_error(probs, labels, 15) == pytest.approx(100 * total, rel=1e-5)


def test_residual_logit_loss_kl_hand_computed() -> None:
    z = torch.tensor([[0.0, 0.0]])
    zt = torch.tensor([[math.log(3.0), 0.0]])
    r = torch.tensor([[0.5, -0.5]])
    expected = _kl2((0.75, 0.25), _softmax2(0.5, -0.5))
    assert residual_logit_loss(z, zt, r, temperature=1.0, form="kl").item() == pytest.approx(expected, abs=1e-7)
    # a residual that equals the gap closes it
    assert residual_logit_loss(z, zt, zt - z, temperature=4.0).item() == pytest.approx(0.0, abs=1e-6)


def test_residual_logit_loss_mse_hand_computed_and_shift_invariant() -> None:
    z = torch.tensor([[1.0, 2.0, 3.0]])
    zt = torch.tensor([[3.0, 2.0, 1.0]])
    r = torch.tensor([[1.0, 1.0, 1.0]])
    # centred gap = [1,0,-1] − [-1,0,1] = [2,0,-2]; (r − gap)² = [1,1,9]; sum 11, / K=3
    assert residual_logit_loss(z, zt, r, form="mse").item() == pytest.approx(11 / 3, rel=1e-6)
    assert residual_logit_loss(z, zt + 7.0, r, form="mse").item() == pytest.approx(11 / 3, rel=1e-6)


@pytest.mark.parametrize("form", ["kl", "mse"])
def test_residual_gap_grad_stop_vs_through(form: str) -> None:
    z = torch.randn(4, 6, requires_grad=True)
    zt = torch.randn(4, 6, requires_grad=True)
    r = torch.randn(4, 6, requires_grad=True)
    residual_logit_loss(z, zt, r, 2.0, form, "stop").backward()  # type: ignore[arg-type]
    assert z.grad is None or z.grad.abs().sum() == 0  # the gap reaches the features only through r
    assert zt.grad is None  # teacher is always stop-gradient
    assert r.grad is not None and r.grad.abs().sum() > 0
    r.grad = None
    residual_logit_loss(z, zt, r, 2.0, form, "through").backward()  # type: ignore[arg-type]
    assert z.grad is not None and z.grad.abs().sum() > 0
    if form == "kl":  # ẑ = z + r: both receive the same gradient
        torch.testing.assert_close(z.grad, r.grad)


def test_residual_feature_loss_hand_computed() -> None:
    f = torch.ones(2, 3, 2, 2)
    ft = 3 * torch.ones(2, 3, 2, 2)
    adapted = torch.zeros(2, 3, 2, 2, requires_grad=True)
    assert residual_feature_loss(adapted, f, ft, "none").item() == pytest.approx(4.0)  # gap 2 everywhere
    # l2: a teacher that is a positive multiple of the student has no gap after normalisation
    g = torch.randn(2, 3, 2, 2)
    a = torch.randn(2, 3, 2, 2)
    assert residual_feature_loss(a, g, 3 * g, "l2").item() == pytest.approx((a**2).mean().item(), rel=1e-5)
    # layernorm: a per-position shift of the channels leaves no gap either
    assert residual_feature_loss(a, g, g + 5, "layernorm").item() == pytest.approx((a**2).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        residual_feature_loss(torch.zeros(2, 3, 1, 1), f, ft)


def test_normalize_features_properties() -> None:
    x = torch.randn(4, 8, 3, 3) * 5 + 2
    ln = normalize_features(x, "layernorm")
    torch.testing.assert_close(ln.mean(1), torch.zeros(4, 3, 3), atol=1e-5, rtol=0)
    l2 = normalize_features(x, "l2")
    torch.testing.assert_close(l2.flatten(1).pow(2).mean(1), torch.ones(4), atol=1e-5, rtol=0)
    assert normalize_features(x, "none") is x


def _f64(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


def test_gradcheck_float64() -> None:
    s, t, q = _f64(3, 5), _f64(3, 5), torch.softmax(torch.randn(3, 5, dtype=torch.float64), 1)
    assert torch.autograd.gradcheck(lambda a, b: kd_kl(a, b, 2.5), (s, t))
    assert torch.autograd.gradcheck(lambda a: soft_target_ce(a, q), (s,))
    r = _f64(3, 5)
    for form in ("kl", "mse"):
        # "through": the gradient w.r.t. z and r; "stop": z only enters as a constant, so w.r.t. r alone
        assert torch.autograd.gradcheck(
            lambda a, b, form=form: residual_logit_loss(a, t, b, 3.0, form, "through"), (s, r)
        )
        assert torch.autograd.gradcheck(lambda b, form=form: residual_logit_loss(s, t, b, 3.0, form, "stop"), (r,))
    fs, ft = torch.randn(2, 4, 3, 3, dtype=torch.float64), torch.randn(2, 4, 3, 3, dtype=torch.float64)
    for norm in ("none", "layernorm", "l2"):
        assert torch.autograd.gradcheck(
            lambda a, norm=norm: residual_feature_loss(a, fs, ft, norm), (_f64(2, 4, 3, 3),)
        )
        assert torch.autograd.gradcheck(lambda a, norm=norm: normalize_features(a, norm), (_f64(2, 4, 3, 3),))
