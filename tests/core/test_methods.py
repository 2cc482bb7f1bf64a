"""Every method with every teacher rule it accepts: one short fit, finite named terms; RSKD's gradient paths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from rskd_core.config import METHOD_CONFIGS, RSKDConfig, RunConfig
from rskd_core.data import Batch
from rskd_core.engine import Trainer
from rskd_core.methods import ModelOutput, Progress, create_method, linear_ramp
from rskd_core.methods.rskd import make_adapter
from rskd_core.teachers import TeacherSignal
from tests.conftest import tiny_config

COMBOS = [(m, t) for m, cls in sorted(METHOD_CONFIGS.items()) for t in sorted(cls.teachers)]


@pytest.mark.parametrize(("method", "rule"), COMBOS)
def test_every_method_trains_with_every_rule_it_accepts(
    method: str, rule: str, tmp_path: Path, make_config: Callable[..., RunConfig]
) -> None:
    overrides = ["optim.epochs=2", f"method.name={method}", f"teacher.rule={rule}"]
    if method == "rskd":
        layers = "[last]" if rule == "pred_bank" else "[last, stage1, stage2]"
        overrides += [f"method.layers={layers}", "method.warmup_epochs=0.5", "method.weights.kd=0.5"]
    if rule == "frozen":
        base = Trainer(make_config("optim.epochs=1", "method.name=ce"))
        base.fit()
        base.save_weights(tmp_path / "teacher.pt")
        overrides.append(f"teacher.checkpoint={tmp_path / 'teacher.pt'}")
    trainer = Trainer(make_config(*overrides))
    result = trainer.fit()
    assert result.epochs_done == 2
    last = result.history[-1]
    terms = [k for k in last if k.startswith("train/")]
    assert "train/loss" in terms
    for k in terms:
        assert torch.isfinite(torch.tensor(last[k])), k
    assert last["train/loss"] == pytest.approx(sum(last[k] for k in terms if k != "train/loss"), rel=1e-4)
    if method == "rskd":
        expected = {"train/ce", "train/res_out", "train/kd"}
        if rule != "pred_bank":
            expected |= {"train/res_stage1", "train/res_stage2"}
        assert expected <= set(terms)
        assert last["train/res_out"] > 0  # the teacher signal arrived in epoch 2 for every rule


def _rskd(**kw: object) -> tuple[torch.nn.Module, torch.nn.Module, RSKDConfig]:
    cfg = tiny_config("method.name=rskd", "teacher.rule=ema", *[f"method.{k}={v}" for k, v in kw.items()])
    trainer = Trainer(cfg)
    assert isinstance(cfg.method, RSKDConfig)
    return trainer.model, trainer.method, cfg.method


def _step_grads(gap_grad: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    model, method, _ = _rskd(layers="[last]", gap_grad=gap_grad, warmup_epochs=0, **{"weights.ce": 0})
    with torch.no_grad():
        method.residual.weight.normal_()  # type: ignore[union-attr]  # leave zero-init so the head's input gets grads
    x = torch.randn(6, 3, 8, 8)
    batch = Batch(x, torch.tensor([0, 1, 2, 3, 0, 1]), torch.arange(6))
    logits, taps = model.forward_taps(x, method.student_taps)  # type: ignore[operator]
    teacher = TeacherSignal(logits=torch.randn(6, 4))
    terms = method.losses(batch, ModelOutput(logits, taps), teacher, Progress(1, 0, 3, 3))  # type: ignore[operator]
    sum(terms.values()).backward()
    return model, method


def test_rskd_stop_gradient_reaches_features_only_through_the_residual_head() -> None:
    model, method = _step_grads("stop")
    assert model.fc.weight.grad is None or model.fc.weight.grad.abs().sum() == 0  # type: ignore[union-attr]
    assert method.residual.weight.grad.abs().sum() > 0  # type: ignore[union-attr]
    assert model.stages[3][1].conv2.weight.grad.abs().sum() > 0  # type: ignore[index]  # the last feature layer
    model, method = _step_grads("through")
    assert model.fc.weight.grad.abs().sum() > 0  # type: ignore[union-attr]


def test_rskd_residual_head_is_zero_initialised_and_optional_at_inference() -> None:
    model, method, _ = _rskd(layers="[last]", infer_with_residual="true")
    assert method.residual.weight.abs().sum() == 0  # type: ignore[union-attr]
    x = torch.randn(2, 3, 8, 8)
    logits, taps = model.forward_taps(x, method.eval_taps)  # type: ignore[operator]
    torch.testing.assert_close(method.predict(ModelOutput(logits, taps)), logits)  # type: ignore[operator]
    with torch.no_grad():
        method.residual.bias.fill_(1.0)  # type: ignore[union-attr]
    torch.testing.assert_close(method.predict(ModelOutput(logits, taps)), logits + 1)  # type: ignore[operator]


@pytest.mark.parametrize("adapter", ["conv", "pool"])
@pytest.mark.parametrize("target", ["next", "last"])
def test_rskd_ml_adapters_reach_the_target_shape(adapter: str, target: str) -> None:
    model, method, cfg = _rskd(layers="[stage1, stage2, stage3]", adapter=adapter, target=target)
    x = torch.randn(2, 3, 16, 16)
    _, taps = model.forward_taps(x, model.tap_names())  # type: ignore[operator]
    for layer in cfg.layers:
        j = "stage4" if target == "last" else f"stage{int(layer[-1]) + 1}"
        assert method.adapters[layer](taps[layer]).shape == taps[j].shape  # type: ignore[index]
    assert set(method.teacher_taps) == ({"stage4"} if target == "last" else {"stage2", "stage3", "stage4"})  # type: ignore[arg-type]


def test_rskd_masked_rows_only_and_ramp() -> None:
    model, method, _ = _rskd(layers="[last]", warmup_epochs=2)
    x = torch.randn(4, 3, 8, 8)
    batch = Batch(x, torch.tensor([0, 1, 2, 3]), torch.arange(4))
    logits, taps = model.forward_taps(x, method.student_taps)  # type: ignore[operator]
    out = ModelOutput(logits, taps)
    no_rows = TeacherSignal(logits=torch.randn(4, 4), mask=torch.zeros(4, dtype=torch.bool))
    terms = method.losses(batch, out, no_rows, Progress(5, 0, 1, 9))  # type: ignore[operator]
    assert terms["res_out"].item() == 0.0
    sig = TeacherSignal(logits=torch.randn(4, 4))
    full = method.losses(batch, out, sig, Progress(5, 0, 1, 9))["res_out"]  # type: ignore[operator]
    half = method.losses(batch, out, sig, Progress(1, 0, 1, 9))["res_out"]  # type: ignore[operator]
    torch.testing.assert_close(half, 0.5 * full)  # epoch 1 of a 2-epoch ramp
    assert linear_ramp(Progress(0, 5, 10, 9), 1.0) == 0.5
    assert linear_ramp(Progress(0, 0, 10, 9), 0.0) == 1.0


def test_adapter_rejects_odd_ratios() -> None:
    with pytest.raises(ValueError, match="power-of-two"):
        make_adapter("conv", 4, 8, 3)


def test_label_smoothing_term_matches_its_definition() -> None:
    cfg = tiny_config("method.name=label_smoothing", "method.eps=0.2")
    trainer = Trainer(cfg)
    method = create_method(cfg.method, trainer.model)
    logits = torch.randn(3, 4)
    y = torch.tensor([0, 3, 1])
    term = method.losses(Batch(torch.zeros(3), y, torch.arange(3)), ModelOutput(logits, {}), None, Progress(0, 0, 1, 1))
    logp = torch.log_softmax(logits, 1)
    q = torch.full((3, 4), 0.2 / 3)
    q[torch.arange(3), y] = 0.8
    torch.testing.assert_close(term["ce"], -(q * logp).sum(1).mean())
