"""Teachers without a network copy: ``none``, ``pred_bank`` (PS-KD's memory) and ``last_batch`` (DLB's cache)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rskd_core.config import TeacherConfig
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

    def setup(self, student: TapModel, ctx: TeacherContext) -> None:
        del student
        self.bank = F.one_hot(ctx.train_labels.to(ctx.device), ctx.num_classes).float()
        self.filled = torch.zeros(ctx.num_train, dtype=torch.bool, device=ctx.device)

    def signal(self, batch: Batch) -> TeacherSignal:
        probs = self.bank[batch.idx]
        return TeacherSignal(logits=probs.clamp_min(1e-12).log(), probs=probs, mask=self.filled[batch.idx])

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

    Each step trains on B images: B/2 new samples and the B/2 samples of the previous step, repeated. The teacher
    signal for the repeated half is what the network computed for those same inputs in the previous step — logits and
    the requested stage features, cached, so no extra forward is needed. New rows have no teacher (``mask`` False).
    An epoch delivers every sample once as new, so it has twice the steps of a plain epoch; the cache crosses epoch
    boundaries. (The released DLB code uses a second augmented view for the repeated half; here the cached input is
    repeated as it was, which is what makes the cached features exact.)
    """

    name = "last_batch"
    provides_features: ClassVar[bool] = True

    def __init__(self, cfg: TeacherConfig) -> None:
        del cfg
        self.taps: tuple[str, ...] = ()
        self.carry: Batch | None = None
        self.carry_logits: torch.Tensor | None = None
        self.carry_feats: dict[str, torch.Tensor] = {}
        self._n_new = 0

    def setup(self, student: TapModel, ctx: TeacherContext) -> None:
        del student
        self.taps = ctx.taps

    def train_batch_size(self, batch_size: int) -> int:
        return max(batch_size // 2, 1)

    def student_taps(self) -> tuple[str, ...]:
        return self.taps

    def prepare(self, batch: Batch) -> Batch:
        self._n_new = len(batch)
        return batch if self.carry is None else Batch.cat(self.carry, batch)

    def signal(self, batch: Batch) -> TeacherSignal | None:
        if self.carry is None or self.carry_logits is None:
            return None
        n_old = len(self.carry)
        mask = torch.zeros(len(batch), dtype=torch.bool, device=batch.y.device)
        mask[:n_old] = True

        def pad(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t, t.new_zeros((len(batch) - n_old, *t.shape[1:]))])

        return TeacherSignal(
            logits=pad(self.carry_logits), features={k: pad(v) for k, v in self.carry_feats.items()}, mask=mask
        )

    @torch.no_grad()
    def after_step(self, batch: Batch, logits: torch.Tensor, taps: dict[str, torch.Tensor]) -> None:
        new = slice(len(batch) - self._n_new, len(batch))
        self.carry = Batch(batch.x[new], batch.y[new], batch.idx[new])
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
