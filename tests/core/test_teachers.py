"""Pseudo-teacher rules: the math of each update, and an exact state_dict round trip for every registered rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from rskd_core.config import ModelConfig, RunConfig, TeacherConfig
from rskd_core.data import Batch, LoaderNeeds
from rskd_core.engine import Trainer
from rskd_core.models import create_model
from rskd_core.teachers import TEACHERS, TeacherContext, create_teacher


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(ModelConfig(name="preact_resnet_tiny", width=4), num_classes=3, in_channels=3)


def _ctx(taps: tuple[str, ...] = (), n: int = 10) -> TeacherContext:
    return TeacherContext(n, 3, torch.device("cpu"), torch.arange(n) % 3, taps)


def _batch(idx: list[int]) -> Batch:
    g = torch.Generator().manual_seed(sum(idx))
    return Batch(torch.randn(len(idx), 3, 8, 8, generator=g), torch.tensor(idx) % 3, torch.tensor(idx))


def test_ema_update_and_bn_buffers() -> None:
    student = _model()
    rule = create_teacher(TeacherConfig(rule="ema", momentum=0.9))
    rule.setup(student, _ctx())  # type: ignore[arg-type]
    teacher_before = {k: v.clone() for k, v in rule.net.state_dict().items()}  # type: ignore[attr-defined]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
        student(torch.randn(4, 3, 8, 8))  # eval forward: buffers unchanged; make them change with a train forward
    student.train()
    student(torch.randn(4, 3, 8, 8))
    b = _batch([0, 1])
    rule.after_step(b, torch.zeros(2, 3), {})
    t_state, s_state = rule.net.state_dict(), student.state_dict()  # type: ignore[attr-defined]
    for name, _ in student.named_parameters():
        expected = 0.9 * teacher_before[name] + 0.1 * s_state[name]
        torch.testing.assert_close(t_state[name], expected)
    for name, _ in student.named_buffers():
        torch.testing.assert_close(t_state[name], s_state[name], rtol=0, atol=0)  # copied, not averaged


def test_prev_epoch_copies_at_epoch_start_only() -> None:
    student = _model()
    rule = create_teacher(TeacherConfig(rule="prev_epoch"))
    rule.setup(student, _ctx(("stage2",)))  # type: ignore[arg-type]
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(0.5)
    x = _batch([0, 1, 2])
    rule.after_step(x, torch.zeros(3, 3), {})
    assert not torch.equal(rule.net.fc.weight, student.fc.weight)  # type: ignore[attr-defined]
    rule.on_epoch_start(1)
    torch.testing.assert_close(rule.net.fc.weight, student.fc.weight)  # type: ignore[attr-defined]
    sig = rule.signal(x)
    assert sig is not None and sig.logits is not None and set(sig.features) == {"stage2"}


def test_teacher_bn_train_mode_leaves_running_stats_alone() -> None:
    student = _model()
    rule = create_teacher(TeacherConfig(rule="prev_epoch", bn_mode="train"))
    rule.setup(student, _ctx())  # type: ignore[arg-type]
    before = {k: v.clone() for k, v in rule.net.state_dict().items() if "running" in k}  # type: ignore[attr-defined]
    rule.signal(_batch([0, 1, 2, 3]))
    after = rule.net.state_dict()  # type: ignore[attr-defined]
    for k, v in before.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0)


def test_pred_bank_gives_previous_epoch_probabilities() -> None:
    rule = create_teacher(TeacherConfig(rule="pred_bank"))
    rule.setup(_model(), _ctx(n=6))  # type: ignore[arg-type]
    b = _batch([4, 1])
    sig = rule.signal(b)
    assert sig is not None and sig.mask is not None and not sig.mask.any()  # epoch 0: nothing banked yet
    torch.testing.assert_close(sig.probs, torch.nn.functional.one_hot(b.y, 3).float())  # P starts as one-hot
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    rule.after_step(b, logits, {})
    sig = rule.signal(_batch([1, 4, 0]))
    assert sig is not None and sig.mask is not None and sig.probs is not None and sig.logits is not None
    assert sig.mask.tolist() == [True, True, False]
    torch.testing.assert_close(sig.probs[1], torch.softmax(logits[0], 0))
    torch.testing.assert_close(sig.probs[0], torch.full((3,), 1 / 3))
    torch.testing.assert_close(torch.softmax(sig.logits[1], 0), torch.softmax(logits[0], 0))


def test_last_batch_repeats_the_previous_half_with_its_cached_outputs() -> None:
    rule = create_teacher(TeacherConfig(rule="last_batch"))
    rule.setup(_model(), _ctx(("stage3",)))  # type: ignore[arg-type]
    assert rule.loader_needs(8) == LoaderNeeds(4)
    assert rule.student_taps() == ("stage3",)
    first = rule.prepare(_batch([0, 1, 2, 3]))
    assert len(first) == 4 and rule.signal(first) is None  # step 0 is plain CE
    logits1 = torch.randn(4, 3)
    feats1 = {"stage3": torch.randn(4, 16, 2, 2)}
    rule.after_step(first, logits1, feats1)
    second = rule.prepare(_batch([4, 5, 6, 7]))
    assert second.idx.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]  # the previous samples, then the new ones
    torch.testing.assert_close(second.x[:4], first.x)
    sig = rule.signal(second)
    assert sig is not None and sig.mask is not None and sig.logits is not None
    assert sig.mask.tolist() == [True] * 4 + [False] * 4
    torch.testing.assert_close(sig.logits[:4], logits1)  # the model one step older, on the same inputs
    torch.testing.assert_close(sig.features["stage3"][:4], feats1["stage3"])
    logits2 = torch.randn(8, 3)
    rule.after_step(second, logits2, {"stage3": torch.randn(8, 16, 2, 2)})
    third = rule.prepare(_batch([8, 9]))
    assert third.idx.tolist() == [4, 5, 6, 7, 8, 9]  # only the new half is carried on
    sig = rule.signal(third)
    assert sig is not None and sig.logits is not None
    torch.testing.assert_close(sig.logits[:4], logits2[4:])


def test_frozen_teacher_loads_a_checkpoint_and_refuses_a_mismatch(
    tmp_path: Path, make_config: Callable[..., RunConfig]
) -> None:
    cfg = make_config("optim.epochs=1", "method.name=ce")
    trainer = Trainer(cfg)
    trainer.fit()
    trainer.save_weights(tmp_path / "best.pt")
    rule = create_teacher(TeacherConfig(rule="frozen", checkpoint=str(tmp_path / "best.pt")))
    fresh = Trainer(cfg).model
    rule.setup(fresh, _ctx(n=48))
    torch.testing.assert_close(rule.net.fc.weight, trainer.model.fc.weight)  # type: ignore[attr-defined]
    other = create_model(ModelConfig(name="preact_resnet_tiny", width=8), num_classes=4, in_channels=3)
    with pytest.raises(ValueError, match="do not fit this model"):
        create_teacher(TeacherConfig(rule="frozen", checkpoint=str(tmp_path / "best.pt"))).setup(other, _ctx())
    with pytest.raises(FileNotFoundError, match="teacher.checkpoint not found"):
        create_teacher(TeacherConfig(rule="frozen", checkpoint=str(tmp_path / "nope.pt"))).setup(fresh, _ctx())


@pytest.mark.parametrize("rule", TEACHERS.names())
def test_every_rule_round_trips_its_state(rule: str, tmp_path: Path, make_config: Callable[..., RunConfig]) -> None:
    overrides = ["optim.epochs=1"]
    if rule == "none":
        overrides.append("method.name=ce")
    elif rule == "class_pair":
        overrides += ["method.name=cs_kd", "teacher.rule=class_pair"]
    else:
        layers = "[last]" if rule == "pred_bank" else "[last, stage2]"
        overrides += ["method.name=rskd", f"teacher.rule={rule}", f"method.layers={layers}", "method.warmup_epochs=0"]
    if rule == "frozen":
        base = Trainer(make_config("optim.epochs=1", "method.name=ce"))
        base.fit()
        base.save_weights(tmp_path / "t.pt")
        overrides.append(f"teacher.checkpoint={tmp_path / 't.pt'}")
    cfg = make_config(*overrides)
    a = Trainer(cfg)
    a.fit()
    state = a.teacher.state_dict()
    b = Trainer(cfg)
    b.model.load_state_dict(a.model.state_dict())  # class_pair's teacher is the student itself
    b.teacher.load_state_dict(state)
    restored = b.teacher.state_dict()
    assert _flatten(restored).keys() == _flatten(state).keys()
    for k, v in _flatten(state).items():
        assert torch.equal(_flatten(restored)[k], v), k
    if rule != "none":
        batch = next(iter(a.data.train.epoch(1)))
        a.model.train()
        b.model.train()
        sa, sb = a.teacher.signal(a.teacher.prepare(batch)), b.teacher.signal(b.teacher.prepare(batch))
        assert (sa is None) == (sb is None)
        if sa is not None and sb is not None and sa.logits is not None:
            torch.testing.assert_close(sa.logits, sb.logits)


def _flatten(state: object, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if isinstance(state, dict):
        for k, v in state.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(state, torch.Tensor):
        out[prefix] = state
    return out


def test_config_knows_which_rules_provide_features() -> None:
    """``config.FEATURE_TEACHERS`` (read by RunConfig's validators, which must not import torch) says the same as each
    registered rule's ``provides_features``."""
    from rskd_core.config import FEATURE_TEACHERS

    rules = [create_teacher(TeacherConfig(rule=name)) for name in TEACHERS.names()]
    assert {r.name for r in rules if r.provides_features} == FEATURE_TEACHERS
