"""Teachers that are a copy of the network and run on the current input: ``ema``, ``prev_epoch``, ``frozen``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from rskd_core.config import TeacherConfig
from rskd_core.data.batch import Batch
from rskd_core.models.base import TapModel
from rskd_core.teachers.base import TeacherContext, TeacherRule, TeacherSignal


class NetworkTeacher(TeacherRule):
    """A frozen copy ξ of the student, evaluated without gradients on the student's augmented input.

    ``bn_mode=eval`` uses the copy's running statistics; ``train`` normalises with the batch statistics and leaves the
    running statistics untouched (BatchNorm momentum 0 on the copy). Unset, copies of the moving student (``ema``,
    ``prev_epoch``) use ``train``: early in training the student's running statistics lag its weights so far that an
    eval-mode copy scores near chance on its own training images, and distilling from it collapses the student.
    """

    provides_features: ClassVar[bool] = True

    def __init__(self, cfg: TeacherConfig) -> None:
        self.cfg = cfg
        self.net: TapModel | None = None
        self.student: TapModel | None = None
        self.taps: tuple[str, ...] = ()

    def setup(self, student: TapModel, ctx: TeacherContext) -> None:
        self.student = student
        self.taps = ctx.taps
        net = copy.deepcopy(student)
        for p in net.parameters():
            p.requires_grad_(False)
        bn_train = self.cfg.resolved_bn_mode == "train"
        if bn_train:
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = 0.0
        net.train(bn_train)
        self.net = net
        self._forward = net.forward_taps

    def compile(self) -> None:
        assert self.net is not None, "setup() first"
        self._forward = torch.compile(self.net.forward_taps, dynamic=False)

    def signal(self, batch: Batch) -> TeacherSignal:
        assert self.net is not None, "setup() first"
        logits, feats = self._forward(batch.x, self.taps)
        return TeacherSignal(logits=logits, features=feats)

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor | None:
        assert self.net is not None, "setup() first"
        return self.net.forward_taps(x, ())[0]

    def _copy_from_student(self) -> None:
        assert self.net is not None and self.student is not None
        with torch.no_grad():
            for dst, src in zip(self.net.state_dict().values(), self.student.state_dict().values(), strict=True):
                dst.copy_(src)

    def state_dict(self) -> dict[str, Any]:
        assert self.net is not None
        return {"net": self.net.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.net is not None
        self.net.load_state_dict(state["net"])


class EMATeacher(NetworkTeacher):
    """ξ ← m·ξ + (1−m)·θ after every optimizer step; BatchNorm buffers copied from the student (mean teacher)."""

    name = "ema"

    def setup(self, student: TapModel, ctx: TeacherContext) -> None:
        super().setup(student, ctx)
        assert self.net is not None
        self._t_params: list[torch.Tensor] = list(self.net.parameters())
        self._s_params: list[torch.Tensor] = list(student.parameters())
        self._t_bufs: list[torch.Tensor] = list(self.net.buffers())
        self._s_bufs: list[torch.Tensor] = list(student.buffers())

    @torch.no_grad()
    def after_step(self, batch: Batch, logits: torch.Tensor, taps: dict[str, torch.Tensor]) -> None:
        torch._foreach_lerp_(self._t_params, self._s_params, 1.0 - self.cfg.momentum)
        torch._foreach_copy_(self._t_bufs, self._s_bufs)


class PrevEpochTeacher(NetworkTeacher):
    """ξ ← θ at the start of every epoch: the student of epoch t−1 teaches epoch t (with features)."""

    name = "prev_epoch"

    def on_epoch_start(self, epoch: int) -> None:
        self._copy_from_student()


class FrozenTeacher(NetworkTeacher):
    """A same-architecture network trained beforehand and never updated (Tf-KD_self-like, two stages).

    With ``teacher.checkpoint`` it loads those weights (a ``checkpoint.pt`` or ``best.pt`` of ``rskd train``);
    without one the trainer first trains the teacher with CE on the same recipe (stage 1) and hands its final weights
    over, which are then part of this rule's state so a resume does not train it again.
    """

    name = "frozen"

    def setup(self, student: TapModel, ctx: TeacherContext) -> None:
        super().setup(student, ctx)
        self._have_weights = False
        if self.cfg.checkpoint is None:
            return
        assert self.net is not None
        path = Path(self.cfg.checkpoint)
        if not path.is_file():
            raise FileNotFoundError(
                f"teacher.checkpoint not found: {path} (give a checkpoint.pt or best.pt of rskd train, or leave "
                "teacher.checkpoint unset to train the teacher first)"
            )
        payload = torch.load(path, map_location=ctx.device, weights_only=True)
        self.set_pretrained(payload.get("model", payload) if isinstance(payload, dict) else payload, source=str(path))

    @property
    def needs_pretraining(self) -> bool:
        return not self._have_weights

    def set_pretrained(self, weights: dict[str, torch.Tensor], source: str = "stage 1") -> None:
        assert self.net is not None
        try:
            self.net.load_state_dict(weights)
        except RuntimeError as err:
            raise ValueError(
                f"teacher weights from {source} do not fit this model (same architecture and classes needed): "
                f"{str(err).splitlines()[0]}"
            ) from None
        self._have_weights = True

    def state_dict(self) -> dict[str, Any]:
        # a checkpoint file is its own state; weights trained in stage 1 must travel with the run
        return {} if self.cfg.checkpoint else super().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "net" in state:
            self.set_pretrained(state["net"])
