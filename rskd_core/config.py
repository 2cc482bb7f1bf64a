"""The RunConfig contract: one typed, frozen description of a training run.

The same object crosses every boundary (REST → Ray → trial → trainer) and is re-validated at each one. This module
imports pydantic only — no torch — so that a service can validate configs without loading the training stack.
Names of models, datasets, methods and teacher rules are closed sets (``Literal``); a contract test checks that they
match the registries, so a config can never name code.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelName = Literal["preact_resnet18", "preact_resnet_tiny"]
DatasetName = Literal["digits", "synthetic", "cifar10", "cifar100"]
TeacherRuleName = Literal["none", "ema", "prev_epoch", "last_batch", "pred_bank", "frozen"]
TapName = Literal["stage1", "stage2", "stage3", "stage4", "last"]
RSKDLayer = Literal["last", "stage1", "stage2", "stage3"]

# Teacher rules that run a network on the current input and so can hand out stage feature maps too.
FEATURE_TEACHERS: frozenset[str] = frozenset({"ema", "prev_epoch", "frozen", "last_batch"})


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AugmentConfig(_Frozen):
    """Training augmentation, run batched on the device for small data sets. ``None`` → the data set's default."""

    crop_padding: int | None = Field(None, ge=0, le=16, description="random crop with this zero padding, in pixels")
    flip: bool | None = Field(None, description="random horizontal flip (off by default for digits)")


class DataConfig(_Frozen):
    name: DatasetName = "digits"
    root: str | None = Field(None, description="folder of the data set; default: $RSKD_DATA_ROOT/<standard name>")
    image_size: int | None = Field(None, ge=4, le=512, description="resize images to this side (digits: 8 → e.g. 16)")
    loader: Literal["auto", "device", "dataloader"] = "auto"
    num_workers: int = Field(2, ge=0, le=64, description="DataLoader workers (dataloader path only)")
    augment: AugmentConfig = AugmentConfig()
    # synthetic only
    num_classes: int = Field(10, ge=2, le=1000, description="synthetic: number of classes")
    channels: int = Field(3, ge=1, le=4, description="synthetic: image channels")
    train_size: int = Field(512, ge=8, le=1_000_000, description="synthetic: training samples")
    test_size: int = Field(256, ge=8, le=1_000_000, description="synthetic: test samples")
    download: bool = Field(False, description="cifar: download when missing (needs internet; off by default)")


class ModelConfig(_Frozen):
    name: ModelName = "preact_resnet_tiny"
    width: int | None = Field(None, ge=4, le=256, description="base width (stage1 channels); default per model")


class TeacherConfig(_Frozen):
    """The pseudo-teacher update rule (METHODS.md §11.2 item 4)."""

    rule: TeacherRuleName = "none"
    momentum: float = Field(0.999, ge=0.0, lt=1.0, description="ema: ξ ← m·ξ + (1−m)·θ every step")
    checkpoint: str | None = Field(None, description="frozen: a checkpoint.pt/best.pt of the same architecture")
    bn_mode: Literal["eval", "train"] = Field("eval", description="teacher BatchNorm: running stats or batch stats")


class OptimConfig(_Frozen):
    lr: float = Field(0.1, gt=0, le=10, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0, le=1)
    batch_size: int = Field(128, ge=2, le=65_536, description="images per optimizer step")
    epochs: int = Field(200, ge=1, le=10_000)
    schedule: Literal["multistep", "cosine", "constant"] = "multistep"
    milestones: tuple[int, ...] = Field((100, 150), description="multistep: epochs at which lr ×= gamma")
    gamma: float = Field(0.1, gt=0, le=1)
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up from 0, per step, over this many epochs")

    @model_validator(mode="after")
    def _milestones_sorted(self) -> OptimConfig:
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"optim.milestones must be increasing, got {list(self.milestones)}")
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"optim.warmup_epochs ({self.warmup_epochs}) exceeds optim.epochs ({self.epochs})")
        return self


class RuntimeConfig(_Frozen):
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda|cuda:\d+|mps)$")
    amp: bool = Field(False, description="bf16 autocast (CUDA)")
    channels_last: bool = False
    compile: bool = Field(False, description="torch.compile the model")
    deterministic: bool = Field(False, description="deterministic algorithms (bit-identical resume on CPU)")
    threads: int | None = Field(None, ge=1, le=256, description="torch intra-op threads")
    fail_at_epoch: int | None = Field(
        None, ge=0, description="fault injection for tests: raise once at the end of this epoch (0-based)"
    )


class EvalConfig(_Frozen):
    ece_bins: int = Field(15, ge=2, le=100, description="equal-width bins (lo, hi] for the expected calibration error")
    batch_size: int = Field(512, ge=1, le=65_536)


# ---------------------------------------------------------------- methods (discriminated union on `name`)


class _MethodBase(_Frozen):
    default_teacher: ClassVar[str] = "none"
    teachers: ClassVar[frozenset[str]] = frozenset({"none"})


class CEConfig(_MethodBase):
    """Plain cross-entropy (METHODS.md §1)."""

    name: Literal["ce"] = "ce"


class LabelSmoothingConfig(_MethodBase):
    """Label smoothing with ε/(K−1) on every non-target class (METHODS.md §2)."""

    name: Literal["label_smoothing"] = "label_smoothing"
    eps: float = Field(0.1, ge=0, lt=1)


class RSKDWeights(_Frozen):
    ce: float = Field(1.0, ge=0, description="CE(z, y) on the plain logits")
    out: float = Field(1.0, ge=0, description="λ_out: output-level residual term")
    layers: float = Field(1.0, ge=0, description="λ_l: each intermediate-layer residual term")
    kd: float = Field(0.0, ge=0, description="λ_kd: optional plain KD τ²·KL(p̃ ‖ p)")
    res_ce: float = Field(0.0, ge=0, description="γ: CE on the corrected logits ẑ = z_g + r(h)")


class RSKDConfig(_MethodBase):
    """RSKD: residual learning for self-knowledge distillation (METHODS.md §11.2; the paper's text is not public)."""

    default_teacher: ClassVar[str] = "ema"
    teachers: ClassVar[frozenset[str]] = frozenset({"ema", "prev_epoch", "last_batch", "pred_bank", "frozen"})

    name: Literal["rskd"] = "rskd"
    layers: tuple[RSKDLayer, ...] = Field(("last",), min_length=1, description="'last' = RSKD-L; stageN = RSKD-ML")
    temperature: float = Field(4.0, gt=0, le=100)
    weights: RSKDWeights = RSKDWeights()
    out_loss: Literal["kl", "mse"] = Field("kl", description="output residual: τ²·KL form or ‖r(h) − g‖²/K form")
    gap_grad: Literal["stop", "through"] = Field("stop", description="z_g = sg(z) (stop) or z (through)")
    target: Literal["next", "last"] = Field("next", description="stage l regresses the gap of stage l+1 or stage 4")
    feat_norm: Literal["none", "layernorm", "l2"] = Field("layernorm", description="normalise features before the gap")
    adapter: Literal["conv", "pool"] = Field("conv", description="conv3×3 stride-2 chain + BN, or pool + conv1×1 + BN")
    warmup_epochs: float = Field(5.0, ge=0, description="ramp λ_out, λ_l, λ_kd linearly from 0 over these epochs")
    infer_with_residual: bool = Field(False, description="evaluate on ẑ = z + r(h) instead of z")

    @model_validator(mode="after")
    def _layers_unique(self) -> RSKDConfig:
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"method.layers has duplicates: {list(self.layers)}; list each layer once")
        if self.infer_with_residual and "last" not in self.layers:
            raise ValueError("method.infer_with_residual needs 'last' in method.layers (the residual head lives there)")
        return self


MethodConfig = Annotated[CEConfig | LabelSmoothingConfig | RSKDConfig, Field(discriminator="name")]
METHOD_CONFIGS: dict[str, type[_MethodBase]] = {
    "ce": CEConfig,
    "label_smoothing": LabelSmoothingConfig,
    "rskd": RSKDConfig,
}


class RunConfig(_Frozen):
    """Everything that determines one training run. ``extra="forbid"``: a misspelt key is an error, not a no-op."""

    seed: int = Field(0, ge=0, le=2**31 - 1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    method: MethodConfig = CEConfig()
    teacher: TeacherConfig = TeacherConfig()
    optim: OptimConfig = OptimConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _cross_field(self) -> RunConfig:
        method, rule = self.method, self.teacher.rule
        allowed = type(method).teachers
        if rule not in allowed:
            if rule == "none":
                raise ValueError(
                    f"method {method.name} needs a pseudo-teacher: set teacher.rule to one of {sorted(allowed)} "
                    f"(default {type(method).default_teacher})"
                )
            raise ValueError(
                f"method {method.name} does not use teacher.rule={rule}: set teacher.rule to one of {sorted(allowed)}"
            )
        if isinstance(method, RSKDConfig):
            stages = [layer for layer in method.layers if layer != "last"]
            if stages and rule not in FEATURE_TEACHERS:
                raise ValueError(
                    f"rskd with intermediate layers {stages} needs a teacher that computes features: set teacher.rule "
                    f"to ema, prev_epoch, last_batch or frozen (teacher.rule={rule} has logits only), or use "
                    "method.layers=[last]"
                )
        if rule == "frozen" and not self.teacher.checkpoint:
            raise ValueError("teacher.rule=frozen needs teacher.checkpoint: the path of a same-architecture checkpoint")
        if rule != "frozen" and self.teacher.checkpoint:
            raise ValueError(f"teacher.checkpoint is only read by teacher.rule=frozen (got rule={rule}); remove it")
        if rule == "last_batch" and self.optim.batch_size % 2:
            raise ValueError(
                f"teacher.rule=last_batch splits each batch into new and repeated halves: optim.batch_size "
                f"({self.optim.batch_size}) must be even"
            )
        if self.optim.schedule == "multistep" and any(m > self.optim.epochs for m in self.optim.milestones):
            raise ValueError(
                f"optim.milestones {list(self.optim.milestones)} lie beyond optim.epochs ({self.optim.epochs}); "
                "lower them or set optim.schedule=cosine"
            )
        return self

    def config_hash(self) -> str:
        """A stable short hash of the resolved config (same config → same hash, across processes)."""
        return config_hash(self.model_dump(mode="json"))


def config_hash(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
