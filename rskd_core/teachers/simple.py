"""Teachers without a network copy: ``none``, ``pred_bank`` (PS-KD's memory) and ``last_batch`` (DLB's cache)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rskd_core.config import TeacherConfig
from rskd_core.data import LoaderNeeds
from rskd_core.data.batch import Batch
from rskd_core.models.base import TapModel
from rskd_core.teachers.base import TeacherContext, TeacherRule, TeacherSignal


class NoTeacher(TeacherRule):
    name = "none"

    def __init__(self, cfg: TeacherConfig) -> None:
        del cfg

    def setup(self, student: TapModel, ctx: TeacherContext) -> None:
        del student, ctx


class PredBankTeacher(TeacherRule):
    """Per-sample predictions of the previous epoch, kept in a bank P ∈ R^{N×K} (Kim et al., PS-KD, ICCV 2021).

    P starts as the one-hot labels; after each optimizer step P[idx] ← softmax(z) of the (train-mode, augmented)
    forward that was just trained on. Each sample is visited once an epoch, so reading P[idx] before the write gives the
    previous epoch's prediction. The signal's ``logits`` are log P (valid logits up to a per-sample constant); its
    ``mask`` marks samples that have a prediction yet (none in epoch 0).
    """

    name = "pred_bank"

    def __init__(self, cfg: TeacherConfig) -> None:
        del cfg
        self.bank = torch.empty(0)
        self.filled = torch.empty(0, dtype=torch.bool)
        self.epoch = 0

    def setup(self, student: TapModel, ctx: TeacherContext) -> None:
        del student
        self.bank = F.one_hot(ctx.train_labels.to(ctx.device), ctx.num_classes).float()
        self.filled = torch.zeros(ctx.num_train, dtype=torch.bool, device=ctx.device)

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def signal(self, batch: Batch) -> TeacherSignal:
        probs = self.bank[batch.idx]
        # each sample is seen once an epoch, so no row has a prediction yet in the first one (known without a sync)
        rows = slice(0, 0) if self.epoch == 0 else None
        return TeacherSignal(logits=probs.clamp_min(1e-12).log(), probs=probs, mask=self.filled[batch.idx], rows=rows)

    @torch.no_grad()
    def after_step(self, batch: Batch, logits: torch.Tensor, taps: dict[str, torch.Tensor]) -> None:
        self.bank[batch.idx] = F.softmax(logits.float(), dim=1)
        self.filled[batch.idx] = True

    def state_dict(self) -> dict[str, Any]:
        return {"bank": self.bank, "filled": self.filled}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bank.copy_(state["bank"])
        self.filled.copy_(state["filled"])


class LastBatchTeacher(TeacherRule):
    """The model one optimizer step older (Shen et al., DLB, CVPR 2022).

    Each step trains on the new samples and, repeated, the new samples of the previous step. The teacher signal for
    the repeated rows is what the network computed for them in the previous step — logits and the requested stage
    features, cached, so no extra forward is needed; new rows have no teacher (``mask`` False). The cache crosses
    epoch boundaries; step 0 has no teacher.

    ``repeat_split=half`` (default): B/2 new + B/2 repeated = B images per step, so an epoch has twice the steps of a
    plain one. ``full``: B new + B repeated = 2B images per step, as DLB's released code. ``repeat_view=same``: the
    repeated images are the very inputs of the previous step, which makes cached features exact. ``second``: they
    are a second augmented view (DLB's code); the cached logits then come from the first view, as in DLB. One
    forward covers both halves (DLB's code runs two, so its BatchNorm statistics are per half).
    """

    name = "last_batch"
    provides_features: ClassVar[bool] = True

    def __init__(self, cfg: TeacherConfig) -> None:
        self.cfg = cfg
        self.taps: tuple[str, ...] = ()
        self.carry: Batch | None = None
        self.carry_logits: torch.Tensor | None = None
        self.carry_feats: dict[str, torch.Tensor] = {}
        self._new: Batch | None = None

    def setup(self, student: TapModel, ctx: TeacherContext) -> None:
        del student
        self.taps = ctx.taps

    def loader_needs(self, batch_size: int) -> LoaderNeeds:
        new = max(batch_size // 2, 1) if self.cfg.repeat_split == "half" else batch_size
        return LoaderNeeds(new, two_views=self.cfg.repeat_view == "second")

    def student_taps(self) -> tuple[str, ...]:
        return self.taps

    def prepare(self, batch: Batch) -> Batch:
        self._new = batch
        new = Batch(batch.x, batch.y, batch.idx)
        return new if self.carry is None else Batch.cat(self.carry, new)

    def signal(self, batch: Batch) -> TeacherSignal | None:
        if self.carry is None or self.carry_logits is None:
            return None
        n_old = len(self.carry)
        mask = torch.zeros(len(batch), dtype=torch.bool, device=batch.y.device)
        mask[:n_old] = True

        def pad(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t, t.new_zeros((len(batch) - n_old, *t.shape[1:]))])

        return TeacherSignal(
            logits=pad(self.carry_logits),
            features={k: pad(v) for k, v in self.carry_feats.items()},
            mask=mask,
            rows=slice(0, n_old),
        )

    @torch.no_grad()
    def after_step(self, batch: Batch, logits: torch.Tensor, taps: dict[str, torch.Tensor]) -> None:
        assert self._new is not None
        fresh = self._new
        new = slice(len(batch) - len(fresh), len(batch))
        view = fresh.x2 if self.cfg.repeat_view == "second" and fresh.x2 is not None else fresh.x
        self.carry = Batch(view, fresh.y, fresh.idx)
        self.carry_logits = logits[new].detach().float()
        self.carry_feats = {k: taps[k][new].detach() for k in self.taps}

    def state_dict(self) -> dict[str, Any]:
        if self.carry is None:
            return {"carry": None}
        return {
            "carry": {"x": self.carry.x, "y": self.carry.y, "idx": self.carry.idx},
            "logits": self.carry_logits,
            "features": self.carry_feats,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        c = state.get("carry")
        if c is None:
            self.carry, self.carry_logits, self.carry_feats = None, None, {}
            return
        self.carry = Batch(c["x"], c["y"], c["idx"])
        self.carry_logits = state["logits"]
        self.carry_feats = dict(state["features"])


class ClassPairTeacher(TeacherRule):
    """The current network on a same-class partner (Yun et al., CS-KD, CVPR 2020).

    The loader delivers B anchors followed by B partners of the same classes. ``prepare`` keeps the anchors for
    training; ``signal`` runs the student itself, in train mode and without gradients, on the partners, exactly as the
    released code does (so BatchNorm statistics also see the partners).
    """

    name = "class_pair"

    def __init__(self, cfg: TeacherConfig) -> None:
        del cfg
        self.student: TapModel | None = None
        self.taps: tuple[str, ...] = ()
        self._partners: Batch | None = None

    def setup(self, student: TapModel, ctx: TeacherContext) -> None:
        self.student = student
        self.taps = ctx.taps
        self._forward = student.forward_taps

    def compile(self) -> None:
        assert self.student is not None, "setup() first"
        self._forward = torch.compile(self.student.forward_taps, dynamic=False)

    def loader_needs(self, batch_size: int) -> LoaderNeeds:
        return LoaderNeeds(batch_size, pairs=True)

    def prepare(self, batch: Batch) -> Batch:
        n = len(batch) // 2
        self._partners = batch.rows(slice(n, 2 * n))
        return batch.rows(slice(0, n))

    def partners(self) -> Batch:
        assert self._partners is not None, "prepare() first"
        return self._partners

    def signal(self, batch: Batch) -> TeacherSignal:
        assert self.student is not None
        partners = self.partners()
        x = partners.x
        if x.dim() == 4 and batch.x.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        logits, feats = self._forward(x, self.taps)
        return TeacherSignal(logits=logits, features=feats)
