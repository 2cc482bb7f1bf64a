"""RSKD-ML's ``layer_gap_grad: feature``: the student's side of a stage gap recomputed from F_l through the deeper
stages with detached weights, so the term's gradient reaches F_l through the stages as well as through the adapter,
while those stages' weights and BatchNorm statistics stay as they were."""

from __future__ import annotations

import pytest
import torch

from rskd_core.config import RSKDConfig
from rskd_core.data.batch import Batch
from rskd_core.engine.trainer import Trainer
from rskd_core.losses import residual_feature_loss
from rskd_core.methods import ModelOutput, Progress
from rskd_core.models import MODELS
from rskd_core.teachers.base import TeacherSignal
from tests.conftest import tiny_config


def test_student_grad_hand_computed() -> None:
    a = torch.zeros(1, 2, 1, 1, requires_grad=True)
    f = torch.tensor([1.0, 2.0]).reshape(1, 2, 1, 1).requires_grad_(True)
    t = torch.tensor([4.0, 4.0]).reshape(1, 2, 1, 1)
    # L = mean((a + f − t)²) = ((−3)² + (−2)²) / 2 = 6.5; dL/df = (a + f − t) = [−3, −2]; dL/da the same
    loss = residual_feature_loss(a, f, t, "none", student_grad=True)
    assert loss.item() == pytest.approx(6.5)
    loss.backward()
    torch.testing.assert_close(f.grad, torch.tensor([-3.0, -2.0]).reshape(1, 2, 1, 1))
    torch.testing.assert_close(a.grad, f.grad)
    f.grad = None
    residual_feature_loss(a, f, t, "none").backward()  # the default: the gap is a constant
    assert f.grad is None


@pytest.mark.parametrize("name", ["preact_resnet_tiny", "resnet32", "wrn_16_4", "resnet18_imagenet"])
def test_rerun_stages_reproduces_the_forward_without_touching_weights_or_statistics(name: str) -> None:
    torch.manual_seed(0)
    model = MODELS.get(name)(5, 3, 8) if name in ("preact_resnet_tiny", "resnet32") else MODELS.get(name)(5, 3)
    model.train()
    stages = model.stage_names()
    _, taps = model.forward_taps(torch.randn(4, 3, 16, 16), stages)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = taps[stages[0]].detach().requires_grad_(True)
    again = model.rerun_stages(x, stages[0], stages[-1])
    torch.testing.assert_close(again, taps[stages[-1]])  # same batch, batch statistics: the same features
    again.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # running stats untouched


def test_feature_mode_trains_the_shallow_stage_through_the_deeper_one_but_not_the_deeper_weights() -> None:
    cfg = tiny_config(
        "method.name=rskd", "method.layers=[stage1]", "method.layer_gap_grad=feature", "teacher.rule=ema",
        "method.warmup_epochs=0", "method.weights.ce=0",
    )  # fmt: skip
    assert isinstance(cfg.method, RSKDConfig)
    trainer = Trainer(cfg)
    model, method = trainer.model, trainer.method
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    logits, taps = model.forward_taps(x, method.student_taps)
    f1 = taps["stage1"]
    f1.retain_grad()
    teacher = TeacherSignal(logits=torch.randn(6, 4), features={"stage2": torch.randn_like(taps["stage2"])})
    terms = method.losses(Batch(x, y, torch.arange(6)), ModelOutput(logits, taps), teacher, Progress(1, 0, 3, 3))
    terms["res_stage1"].backward()
    stage2 = model.stages[1]  # type: ignore[index]
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in stage2.parameters())
    # by hand: dL/dF1 through the adapter and through stage2 with its weights as constants
    leaf = f1.detach().clone().requires_grad_(True)
    f2 = torch.func.functional_call(stage2, {n: p.detach() for n, p in stage2.named_parameters()}, (leaf,))
    loss = residual_feature_loss(method.adapters["stage1"](leaf), f2, teacher.features["stage2"], "layernorm",
                                 student_grad=True)  # fmt: skip
    (expected,) = torch.autograd.grad(loss * terms["res_stage1"].item() / loss.item(), leaf)
    torch.testing.assert_close(f1.grad, expected, rtol=1e-4, atol=1e-6)
