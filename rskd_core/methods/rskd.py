"""RSKD: Residual Learning for Self-Knowledge Distillation (Liu, Zhang, He, IEEE Trans. Big Data 11(5), 2025).

The paper's text is not public; this is the formulation of METHODS.md §11.2, marked there as inference, with every
inferred choice exposed as a knob. All teacher quantities are stop-gradient.

* RSKD-L (``layers`` contains ``last``): a zero-initialised linear residual head r reads the pooled feature h and
  learns the gap g = z̃ − z between the pseudo-teacher's logits and the student's (:func:`residual_logit_loss`).
* RSKD-ML (``layers`` contains shallow stages): an adapter a_l maps stage l's feature map to the shape of the
  target stage j (l+1 with ``target=next``, the deepest with ``target=last``) and regresses N(F̃_j) − N(F_j)
  (:func:`residual_feature_loss`); with ``layer_gap_grad=feature`` F_j is re-run from F_l through detached stages, so
  the gap's student side carries the true derivative into F_l (``stop``: the gap is a constant).

Total: L = w_ce·CE(z, y) + γ·CE(ẑ, y) + λ(t)·[w_out·L_out + w_layers·Σ_l L_l + w_kd·τ²·KL(p̃^τ ‖ p^τ)],
λ(t) a linear ramp over ``warmup_epochs``. Rows without a teacher signal (``mask``) get only the CE terms.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rskd_core.config import RSKDConfig
from rskd_core.data.batch import Batch
from rskd_core.losses import kd_kl, residual_feature_loss, residual_logit_loss
from rskd_core.methods.base import Method, ModelOutput, Progress, TeacherRows, linear_ramp
from rskd_core.models.base import TapModel
from rskd_core.teachers.base import TeacherSignal


def make_adapter(kind: str, in_channels: int, out_channels: int, ratio: int) -> nn.Sequential:
    """Map a (C_l, H, W) feature map to (C_j, H/ratio, W/ratio).

    ``conv``: log2(ratio) conv3×3 stride-2 layers (BN, ReLU between them), ending in BN. ``pool``: average pooling
    by ``ratio``, then conv1×1 + BN. A ratio of 1 is a conv3×3 + BN.
    """
    if ratio < 1 or ratio & (ratio - 1):
        raise ValueError(f"adapter needs a power-of-two downsampling ratio, got {ratio}")
    layers: list[nn.Module] = []
    if kind == "pool":
        if ratio > 1:
            layers.append(nn.AvgPool2d(ratio, ratio))
        layers += [nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        return nn.Sequential(*layers)
    n = max(int(math.log2(ratio)), 1)
    c = in_channels
    for i in range(n):
        stride = 2 if ratio > 1 else 1
        layers += [nn.Conv2d(c, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels)]
        if i < n - 1:
            layers.append(nn.ReLU(inplace=True))
        c = out_channels
    return nn.Sequential(*layers)


def target_stage(layer: str, target: str, stages: list[str]) -> str:
    """The stage whose gap ``layer`` regresses: the next one, or the deepest."""
    if layer not in stages[:-1]:
        raise ValueError(
            f"method.layers: {layer} is not a shallow stage of this model (its stages are {stages}; the deepest, "
            f"{stages[-1]}, has no deeper stage to learn from)"
        )
    return stages[-1] if target == "last" else stages[stages.index(layer) + 1]


class RSKD(Method):
    """Residual self-knowledge distillation, RSKD-L and RSKD-ML (METHODS.md §11.2)."""

    name = "rskd"

    def __init__(self, cfg: RSKDConfig, model: TapModel) -> None:
        super().__init__(cfg, model)
        self.residual: nn.Linear | None = None
        if "last" in cfg.layers:
            self.residual = nn.Linear(model.feature("last").channels, model.num_classes)
            nn.init.zeros_(self.residual.weight)  # zero-init: the corrected logits start as the student's own
            nn.init.zeros_(self.residual.bias)
        self.stages = [layer for layer in cfg.layers if layer != "last"]
        self.targets = {layer: target_stage(layer, cfg.target, model.stage_names()) for layer in self.stages}
        self.adapters = nn.ModuleDict()
        for layer, target in self.targets.items():
            src, dst = model.feature(layer), model.feature(target)
            self.adapters[layer] = make_adapter(cfg.adapter, src.channels, dst.channels, dst.reduction // src.reduction)
        targets = sorted(set(self.targets.values()))
        self.teacher_taps = tuple(targets)
        self.student_taps = tuple(sorted(set(self.stages) | set(targets) | ({"last"} if self.residual else set())))
        self.eval_taps = ("last",) if cfg.infer_with_residual else ()
        # references, not submodules: the classifier's and the stages' parameters belong to the model
        self._classifier: tuple[nn.Linear] = (model.classifier(),)
        self._model: tuple[TapModel] = (model,)

    def losses(
        self, batch: Batch, out: ModelOutput, teacher: TeacherSignal | None, progress: Progress
    ) -> dict[str, torch.Tensor]:
        w = self.cfg.weights
        z, y = out.logits, batch.y
        terms: dict[str, torch.Tensor] = {}
        if w.ce > 0:
            terms["ce"] = w.ce * F.cross_entropy(z, y)
        r = self.residual(out.taps["last"]) if self.residual is not None else None
        z_g = self.base_logits(out) if r is not None else z
        if r is not None and w.res_ce > 0:
            terms["res_ce"] = w.res_ce * F.cross_entropy(z_g + r, y)
        rows = TeacherRows.of(teacher)
        active = teacher is not None and teacher.logits is not None and not rows.empty
        ramp = linear_ramp(progress, self.cfg.warmup_epochs) if active else 0.0
        terms.update(self._output_terms(out, z_g, r, teacher, rows, ramp))
        terms.update(self._layer_terms(out, teacher, rows, ramp))
        return terms

    def _output_terms(
        self,
        out: ModelOutput,
        z_g: torch.Tensor,
        r: torch.Tensor | None,
        teacher: TeacherSignal | None,
        rows: TeacherRows,
        ramp: float,
    ) -> dict[str, torch.Tensor]:
        """L_out (RSKD-L) and the optional plain KD term; zero while there is no teacher signal or ramp."""
        cfg, w, z, pick = self.cfg, self.cfg.weights, out.logits, rows.pick
        zero = z.new_zeros(())
        terms: dict[str, torch.Tensor] = {}
        if r is not None:
            terms["res_out"] = zero
            if ramp > 0 and w.out > 0:
                assert teacher is not None and teacher.logits is not None
                # z_g carries the gradient path that gap_grad chose; the loss must not detach it again
                loss = residual_logit_loss(
                    pick(z_g),
                    pick(teacher.logits),
                    pick(r),
                    cfg.temperature,
                    cfg.out_loss,
                    gap_grad="through",
                    mask=rows.mask,
                )
                terms["res_out"] = ramp * w.out * loss
        if w.kd > 0:
            terms["kd"] = zero
            if ramp > 0:
                assert teacher is not None and teacher.logits is not None
                kd = kd_kl(pick(z), pick(teacher.logits).detach(), cfg.temperature, rows.mask)
                terms["kd"] = ramp * w.kd * kd
        return terms

    def _layer_terms(
        self, out: ModelOutput, teacher: TeacherSignal | None, rows: TeacherRows, ramp: float
    ) -> dict[str, torch.Tensor]:
        """Lₗ (RSKD-ML) for every selected stage; zero while there is no teacher signal or ramp."""
        w, pick = self.cfg.weights, rows.pick
        terms: dict[str, torch.Tensor] = {}
        for layer in self.stages:
            key = f"res_{layer}"
            terms[key] = out.logits.new_zeros(())
            if ramp > 0 and w.layers > 0:
                assert teacher is not None
                j = self.targets[layer]
                f_l = pick(out.taps[layer])
                feature = self.cfg.layer_gap_grad == "feature"
                f_j = self._model[0].rerun_stages(f_l, layer, j) if feature else pick(out.taps[j])
                loss = residual_feature_loss(
                    self.adapters[layer](f_l), f_j, pick(teacher.features[j]), self.cfg.feat_norm, rows.mask, feature
                )
                terms[key] = ramp * w.layers * loss
        return terms

    def base_logits(self, out: ModelOutput) -> torch.Tensor:
        """z_g, the student logits the residual corrects, with the gradient path ``gap_grad`` asks for.

        ``feature``: z recomputed from h through the classifier's detached weights, so the term's gradient reaches h
        through both r and W — the true derivative of the corrected output ẑ = W·h + b + r(h) with respect to the
        feature — while W and b themselves are not pulled. ``stop``: sg(z); h then learns only through r, and moving h
        moves z and so the very gap r is fitting (a feedback loop that diverges when r ≈ −c·W; docs/rskd.md).
        ``through``: z itself (W is pulled towards the teacher as in plain KD).
        """
        if self.cfg.gap_grad == "stop":
            return out.logits.detach()
        if self.cfg.gap_grad == "through":
            return out.logits
        fc = self._classifier[0]
        h = out.taps["last"]
        return F.linear(h, fc.weight.detach().to(h.dtype), None if fc.bias is None else fc.bias.detach().to(h.dtype))

    @torch.no_grad()
    def step_stats(self, out: ModelOutput, teacher: TeacherSignal | None) -> dict[str, float]:
        """‖z̃ − z‖ and ‖r(h)‖ per sample (batch means), and the cosines of r(h) with the gap and with z."""
        stats: dict[str, float] = {}
        if self.residual is not None:
            r = self.residual(out.taps["last"]).float()
            stats["residual_norm"] = float(r.norm(dim=1).mean())
            # < 0 when r(h) runs against the student's own logits: the regime where stop-gradient diverges
            stats["residual_logit_cos"] = float(F.cosine_similarity(r, out.logits.float(), dim=1).mean())
        if teacher is not None and teacher.logits is not None:
            rows = teacher.mask if teacher.mask is not None else slice(None)
            gap = (teacher.logits.float() - out.logits.float())[rows]
            stats["gap_norm"] = float(gap.norm(dim=1).mean())
            if self.residual is not None and gap.shape[0]:
                stats["residual_gap_cos"] = float(F.cosine_similarity(r[rows], gap, dim=1).mean())
        return stats

    def predict(self, out: ModelOutput) -> torch.Tensor:
        if self.cfg.infer_with_residual and self.residual is not None:
            return out.logits + self.residual(out.taps["last"])
        return out.logits
