"""Hand-computed checks of how each baseline builds its targets and teacher signals."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import torch

from rskd_core.config import RunConfig
from rskd_core.data import AugmentSpec, DeviceLoader, LoaderOptions, TorchLoader
from rskd_core.engine import Trainer
from rskd_core.losses import soft_target_ce
from rskd_core.methods import ModelOutput, Progress
from rskd_core.methods.ps_kd import ps_kd_alpha, ps_kd_targets
from rskd_core.methods.tf_kd import manual_teacher_probs, resolve_multiplier
from rskd_core.teachers import TeacherSignal


def test_ps_kd_soft_target_at_a_given_epoch(make_config: Callable[..., RunConfig]) -> None:
    assert ps_kd_alpha(0.8, epoch=4, epochs=10) == pytest.approx(0.4)  # α_t = α_T·(t+1)/E
    assert ps_kd_alpha(0.8, epoch=9, epochs=10) == pytest.approx(0.8)
    bank = torch.tensor([[0.2, 0.5, 0.3]])
    target = ps_kd_targets(torch.tensor([1]), bank, 0.4)
    torch.testing.assert_close(target, torch.tensor([[0.08, 0.80, 0.12]]))  # 0.6·onehot + 0.4·P
    trainer = Trainer(make_config("method.name=ps_kd", "teacher.rule=pred_bank", "data.num_classes=3"))
    logits = torch.randn(1, 3)
    terms = trainer.method.losses(
        _batch(torch.tensor([1])), ModelOutput(logits, {}), TeacherSignal(probs=bank), Progress(4, 0, 1, 10)
    )
    torch.testing.assert_close(terms["ce"], soft_target_ce(logits, target))


def test_tf_kd_reg_hand_made_teacher() -> None:
    q = manual_teacher_probs(torch.tensor([0]), 4, 0.99, 20.0)
    a, b = math.exp(0.99 / 20), math.exp(0.01 / 3 / 20)
    torch.testing.assert_close(q, torch.tensor([[a, b, b, b]]) / (a + 3 * b))
    assert 0.25 < q[0, 0].item() < 0.26  # almost uniform (METHODS.md §3 quirk)
    assert resolve_multiplier(None, 50.0, 100) == 50.0  # the released CIFAR-100 value
    assert resolve_multiplier(None, 50.0, 10) == 5.0  # same effective weight α·τ²·m/K on 10 classes
    assert resolve_multiplier(7.0, 50.0, 10) == 7.0


@pytest.mark.parametrize("kind", ["device", "dataloader"])
def test_cs_kd_partners_are_always_of_the_anchor_class(kind: str) -> None:
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3] * 3)
    x = torch.arange(len(y), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    opts = LoaderOptions(8, torch.device("cpu"), shuffle=True, augment=AugmentSpec(0, False), seed=5, pairs=True)
    loader = DeviceLoader(x, y, opts) if kind == "device" else TorchLoader.from_tensors(x, y, opts)
    partner_counts: Counter[int] = Counter()
    anchors_seen: list[int] = []
    for epoch in range(40):
        for batch in loader.epoch(epoch):
            n = len(batch) // 2
            anchors, partners = batch.idx[:n], batch.idx[n:]
            assert torch.equal(y[anchors], y[partners])  # same class, row by row
            assert torch.equal(batch.y[:n], batch.y[n:])
            assert torch.equal(batch.x[n:, 0, 0, 0].long(), partners)  # the partner's own image
            partner_counts.update(partners.tolist())
            if epoch == 0:
                anchors_seen += anchors.tolist()
    assert sorted(anchors_seen) == list(range(len(y)))  # anchors are a plain pass over the data
    # partners are uniform within the class: class 3 has 3 members drawn for its 3 anchors each epoch
    class3 = [partner_counts[i] for i in range(len(y)) if y[i] == 3]
    assert sum(class3) == 3 * 40 and min(class3) > 20


def test_dlb_carries_the_previous_batch_second_view_and_logits(make_config: Callable[..., RunConfig]) -> None:
    cfg = make_config(
        "method.name=dlb",
        "teacher.rule=last_batch",
        "teacher.repeat_split=full",
        "teacher.repeat_view=second",
        "optim.batch_size=8",
    )
    trainer = Trainer(cfg)
    seen: list[dict[str, Any]] = []
    original = trainer.method.losses

    def spy(batch: Any, out: ModelOutput, teacher: TeacherSignal | None, progress: Progress) -> Any:
        seen.append({"batch": batch, "logits": out.logits.detach().clone(), "teacher": teacher})
        return original(batch, out, teacher, progress)

    trainer.method.losses = spy  # type: ignore[method-assign]
    trainer.model.train()
    batches = list(trainer.data.train.epoch(0))[:3]
    assert all(b.x2 is not None and len(b) == 8 for b in batches)  # B new images, each with a second view
    assert not torch.equal(batches[0].x, batches[0].x2)  # two independent augmentations
    for i, b in enumerate(batches):
        trainer.train_step(b, Progress(0, i, 3, 3))
    first, second = seen[0], seen[1]
    assert first["teacher"] is None and len(first["batch"]) == 8  # step 0: plain CE on the new batch
    prev = batches[0]
    now = second["batch"]
    assert len(now) == 16  # B repeated + B new (the released code's 2B images per step)
    assert torch.equal(now.idx[:8], prev.idx) and torch.equal(now.idx[8:], batches[1].idx)
    torch.testing.assert_close(now.x[:8], prev.x2)  # the previous samples, as their second view
    torch.testing.assert_close(now.x[8:], batches[1].x)
    sig = second["teacher"]
    assert sig.mask.tolist() == [True] * 8 + [False] * 8
    torch.testing.assert_close(sig.logits[:8], first["logits"])  # what the network said one step earlier
    third = seen[2]
    torch.testing.assert_close(third["teacher"].logits[:8], second["logits"][8:])  # only the new half carries on


def test_byot_heads_and_terms(make_config: Callable[..., RunConfig]) -> None:
    trainer = Trainer(make_config("method.name=byot", "method.alpha=0.0", "data.image_size=16"))
    method = trainer.method
    assert set(method.branches) == {"stage1", "stage2", "stage3"}  # type: ignore[arg-type]
    x = torch.randn(4, 3, 16, 16)
    logits, taps = trainer.model.forward_taps(x, method.student_taps)
    z1, f1 = method.branches["stage1"](taps["stage1"])  # type: ignore[index]
    assert f1.shape == taps["stage4"].shape and z1.shape == logits.shape  # reaches the deepest width and stride
    terms = method.losses(_batch(torch.tensor([0, 1, 2, 3])), ModelOutput(logits, taps), None, Progress(0, 0, 1, 1))
    assert terms["kd_stage1"].item() == 0.0  # α = 0: no distillation, CE on every head
    assert set(terms) == {"ce", "ce_stage1", "ce_stage2", "ce_stage3", "kd_stage1", "kd_stage2", "kd_stage3"}
    torch.testing.assert_close(method.predict(ModelOutput(logits, taps)), logits)  # the deepest head predicts


def test_two_stage_tf_kd_self_trains_the_teacher_once(make_config: Callable[..., RunConfig], tmp_path: Any) -> None:
    from rskd_core.engine import Checkpointer

    cfg = make_config("method.name=tf_kd_self", "teacher.rule=frozen", "optim.epochs=2")
    trainer = Trainer(cfg, [Checkpointer(tmp_path)])
    assert trainer.teacher.needs_pretraining
    untrained = {k: v.clone() for k, v in trainer.teacher.net.state_dict().items()}  # type: ignore[attr-defined]
    trainer.fit()
    assert not trainer.teacher.needs_pretraining
    trained = trainer.teacher.net.state_dict()  # type: ignore[attr-defined]
    assert any(not torch.equal(untrained[k], v) for k, v in trained.items())
    resumed = Trainer(cfg)
    resumed.load_checkpoint(tmp_path / "checkpoint.pt")
    assert not resumed.teacher.needs_pretraining  # the stage-1 weights travel with the checkpoint
    for k, v in resumed.teacher.net.state_dict().items():  # type: ignore[attr-defined]
        assert torch.equal(v, trained[k])


def _batch(y: torch.Tensor) -> Any:
    from rskd_core.data import Batch

    return Batch(torch.zeros(len(y), 3, 8, 8), y, torch.arange(len(y)))
