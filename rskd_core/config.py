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

ModelName = Literal[
    "preact_resnet18",
    "preact_resnet_tiny",
    "resnet18_cifar",
    "resnet32",
    "resnet56",
    "resnet110",
    "wrn_16_4",
    "wrn_28_10",
    "resnet18_imagenet",
]
DatasetName = Literal["digits", "synthetic", "cifar10", "cifar100", "imagefolder"]
TeacherRuleName = Literal["none", "ema", "prev_epoch", "last_batch", "pred_bank", "frozen", "class_pair"]
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
    # harder, still-real tasks from small tensor data sets: a stratified training subset and symmetric label noise
    train_per_class: int | None = Field(
        None, ge=1, description="train on this many images of each class (a stratified subset); unset = all"
    )
    train_fraction: float | None = Field(
        None, gt=0, le=1, description="train on this fraction of each class (a stratified subset); unset = all"
    )
    label_noise: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="symmetric label noise: this fraction of the training labels is replaced by a uniformly drawn "
        "other class (the test set stays clean)",
    )
    subset_seed: int = Field(
        0,
        ge=0,
        le=2**31 - 1,
        description="seed of the training subset and the label noise; independent of the run's seed, so every "
        "trial of a sweep sees the same images and the same noisy labels",
    )

    @model_validator(mode="after")
    def _one_subset_rule(self) -> DataConfig:
        if self.train_per_class is not None and self.train_fraction is not None:
            raise ValueError("set data.train_per_class or data.train_fraction, not both")
        return self


class ModelConfig(_Frozen):
    name: ModelName = "preact_resnet_tiny"
    width: int | None = Field(None, ge=4, le=256, description="base width (stage1 channels); default per model")


class TeacherConfig(_Frozen):
    """The pseudo-teacher update rule (METHODS.md §11.2 item 4)."""

    rule: TeacherRuleName = "none"
    momentum: float = Field(0.999, ge=0.0, lt=1.0, description="ema: ξ ← m·ξ + (1−m)·θ every step")
    checkpoint: str | None = Field(
        None,
        description="frozen: a checkpoint.pt/best.pt of the same architecture; unset = first train one with CE "
        "on the same recipe (stage 1 of a two-stage run)",
    )
    bn_mode: Literal["eval", "train"] | None = Field(
        None,
        description="teacher BatchNorm: running stats (eval) or batch stats (train); unset = train for ema and "
        "prev_epoch (a copy of a moving student, whose running stats lag its weights), eval for frozen",
    )
    repeat_split: Literal["half", "full"] = Field(
        "half",
        description="last_batch: a step holds B/2 new + B/2 repeated images (half) or B new + B repeated (full, "
        "as DLB's released code)",
    )
    repeat_view: Literal["same", "second"] = Field(
        "same",
        description="last_batch: repeat the previous images as they were (same; cached features stay exact) or as a "
        "second augmented view (second, as DLB's released code)",
    )

    @property
    def resolved_bn_mode(self) -> Literal["eval", "train"]:
        """``bn_mode``, or the rule's default when unset (docs/rskd.md: an eval-mode copy of the student collapses)."""
        if self.bn_mode is not None:
            return self.bn_mode
        return "train" if self.rule in ("ema", "prev_epoch") else "eval"


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
    grad_clip: float | None = Field(
        None, gt=0, description="clip the global gradient norm to this value before each step; unset = no clipping"
    )

    @model_validator(mode="after")
    def _milestones_sorted(self) -> OptimConfig:
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"optim.milestones must be increasing, got {list(self.milestones)}")
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"optim.warmup_epochs ({self.warmup_epochs}) exceeds optim.epochs ({self.epochs})")
        return self


class RuntimeConfig(_Frozen):
    """How a run uses its device. Unset speed knobs (None) take the fast value on CUDA and the plain one elsewhere
    (``rskd_core.engine.runtime.resolve_runtime``); the resolved values go into ``run.json`` / the trial's run info."""

    device: str = Field("auto", pattern=r"^(auto|cpu|cuda|cuda:\d+|mps)$")
    amp: bool | None = Field(None, description="bf16 autocast; unset = on for CUDA, off elsewhere")
    channels_last: bool | None = Field(None, description="NHWC memory format; unset = on for CUDA, off elsewhere")
    compile: bool | None = Field(
        None, description="torch.compile the student's and the teacher's training forward; unset = on for CUDA"
    )
    cudnn_benchmark: bool | None = Field(
        None, description="let cuDNN time its algorithms for each shape; unset = on for CUDA unless deterministic"
    )
    sgd_impl: Literal["auto", "fused", "foreach", "for_loop"] = Field(
        "auto",
        description="SGD kernel: auto = foreach on CUDA, torch's own choice elsewhere; fused only where every "
        "parameter has a gradient from the first step (not RSKD with a warm-up)",
    )
    nan_check_every: int | None = Field(
        None,
        ge=1,
        description="look at the NaN/inf flag every N steps (and at each epoch's end); 1 checks before every "
        "backward (a host sync per step); unset = 1 on CPU, 100 on CUDA",
    )
    gpu_memory_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description="cap this process's CUDA memory to this share of the GPU (packed trials; a sweep fills it "
        "from resources.gpu); unset = no cap",
    )
    deterministic: bool = Field(False, description="deterministic algorithms (bit-identical resume on CPU)")
    threads: int | None = Field(None, ge=1, le=256, description="torch intra-op threads")
    diagnostics_every: int = Field(
        0,
        ge=0,
        description="every N steps measure the gradient each loss term sends into each feature tap, plus the "
        "method's gap statistics and the teacher's test accuracy (diag/* metrics); 0 = off",
    )


class EvalConfig(_Frozen):
    ece_bins: int = Field(15, ge=2, le=100, description="equal-width bins (lo, hi] for the expected calibration error")
    batch_size: int = Field(512, ge=1, le=65_536)


# ---------------------------------------------------------------- methods (discriminated union on `name`)


def _name_required(schema: dict[str, Any]) -> None:
    """``name`` picks the method (the union's discriminator): an object without it is refused, so the schema says so."""
    schema["required"] = ["name", *(r for r in schema.get("required", []) if r != "name")]


class _MethodBase(_Frozen):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_name_required)

    default_teacher: ClassVar[str] = "none"
    teachers: ClassVar[frozenset[str]] = frozenset({"none"})
    # teacher settings that `--method NAME` applies along with default_teacher
    teacher_defaults: ClassVar[dict[str, Any]] = {}


class CEConfig(_MethodBase):
    """Plain cross-entropy (METHODS.md §1)."""

    name: Literal["ce"] = "ce"


class LabelSmoothingConfig(_MethodBase):
    """Label smoothing with ε/(K−1) on every non-target class (METHODS.md §2)."""

    name: Literal["label_smoothing"] = "label_smoothing"
    eps: float = Field(0.1, ge=0, lt=1)


class TFKDRegConfig(_MethodBase):
    """Tf-KD_reg (Yuan et al., CVPR 2020): a hand-made teacher u, 0.99 on the label (METHODS.md §3)."""

    name: Literal["tf_kd_reg"] = "tf_kd_reg"
    alpha: float = Field(0.1, ge=0, le=1)
    temperature: float = Field(20.0, gt=0)
    multiplier: float | None = Field(
        None, ge=0, description="m; unset = 100·K/100, the released CIFAR-100 ResNet-18 weight (α·m/K = 0.1) at any K"
    )
    correct_prob: float = Field(0.99, gt=0, lt=1)
    kl_reduction: Literal["mean", "batchmean"] = Field(
        "mean", description="mean over B·K elements, as the released nn.KLDivLoss() does; or batchmean"
    )


class TFKDSelfConfig(_MethodBase):
    """Tf-KD_self (Yuan et al., CVPR 2020): a frozen same-architecture teacher trained with CE (METHODS.md §3)."""

    default_teacher: ClassVar[str] = "frozen"
    teachers: ClassVar[frozenset[str]] = frozenset({"frozen"})

    name: Literal["tf_kd_self"] = "tf_kd_self"
    alpha: float = Field(0.95, ge=0, le=1)
    temperature: float = Field(6.0, gt=0)
    multiplier: float | None = Field(
        None,
        ge=0,
        description="m; unset = 50·K/100, the released CIFAR-100 ResNet-18 weight (α·τ²·m/K = 17.1) at any K",
    )
    kl_reduction: Literal["mean", "batchmean"] = "mean"


class CSKDConfig(_MethodBase):
    """CS-KD (Yun et al., CVPR 2020): class-wise self-distillation from a same-class partner (METHODS.md §4)."""

    default_teacher: ClassVar[str] = "class_pair"
    teachers: ClassVar[frozenset[str]] = frozenset({"class_pair"})

    name: Literal["cs_kd"] = "cs_kd"
    temperature: float = Field(4.0, gt=0)
    lam: float = Field(1.0, ge=0, description="λ: 1 on CIFAR/TinyImageNet, 3 on the 224 px fine-grained sets")


class PSKDConfig(_MethodBase):
    """PS-KD (Kim et al., ICCV 2021): progressive self-distillation from the previous epoch (METHODS.md §5)."""

    default_teacher: ClassVar[str] = "pred_bank"
    teachers: ClassVar[frozenset[str]] = frozenset({"pred_bank"})

    name: Literal["ps_kd"] = "ps_kd"
    alpha_T: float = Field(0.8, ge=0, le=1)


class BYOTConfig(_MethodBase):
    """BYOT (Zhang et al., ICCV 2019): auxiliary heads on shallow stages taught by the deepest (METHODS.md §6)."""

    name: Literal["byot"] = "byot"
    alpha: float = Field(0.3, ge=0, le=1)
    temperature: float = Field(3.0, gt=0)
    feature_weight: float = Field(0.0, ge=0, description="λ of the feature L2 term (0 in the journal code)")
    heads: tuple[Literal["stage1", "stage2", "stage3"], ...] | None = Field(
        None, description="stages with an auxiliary head; default every stage but the deepest"
    )


class DLBConfig(_MethodBase):
    """DLB (Shen et al., CVPR 2022): self-distillation from the last mini-batch (METHODS.md §7)."""

    default_teacher: ClassVar[str] = "last_batch"
    teachers: ClassVar[frozenset[str]] = frozenset({"last_batch"})
    teacher_defaults: ClassVar[dict[str, Any]] = {"repeat_split": "full", "repeat_view": "second"}

    name: Literal["dlb"] = "dlb"
    temperature: float = Field(3.0, gt=0)
    alpha: float = Field(1.0, ge=0, description="weight of the KL term (paper τ=3, α=1; unverified)")


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
    gap_grad: Literal["feature", "stop", "through"] = Field(
        "feature",
        description="what the output residual term trains besides r: feature = the last feature layer, through the "
        "residual head and the frozen classifier (z_g = sg(W)·h + sg(b)); stop = the feature layer through r only "
        "(z_g = sg(z)); through = also the classifier (z_g = z)",
    )
    target: Literal["next", "last"] = Field(
        "next", description="stage l regresses the gap of stage l+1, or of the deepest stage (stage4 on ResNet-18)"
    )
    layer_gap_grad: Literal["stop", "feature"] = Field(
        "feature",
        description="what a stage term trains besides its adapter: stop = stage l through the adapter only (the gap "
        "sg(N(F̃_j) − N(F_j)) is a constant); feature = also through the student's side of the gap, F_j recomputed "
        "from F_l by stages l+1..j with their weights detached (the stage analogue of gap_grad: feature; one more "
        "forward of those stages per step)",
    )
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


MethodConfig = Annotated[
    CEConfig
    | LabelSmoothingConfig
    | TFKDRegConfig
    | TFKDSelfConfig
    | CSKDConfig
    | PSKDConfig
    | BYOTConfig
    | DLBConfig
    | RSKDConfig,
    Field(discriminator="name"),
]
METHOD_CONFIGS: dict[str, type[_MethodBase]] = {
    c.model_fields["name"].default: c
    for c in (
        CEConfig,
        LabelSmoothingConfig,
        TFKDRegConfig,
        TFKDSelfConfig,
        CSKDConfig,
        PSKDConfig,
        BYOTConfig,
        DLBConfig,
        RSKDConfig,
    )
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
            if len(allowed) == 1:
                raise ValueError(f"method {method.name} needs teacher.rule={next(iter(allowed))} (got {rule})")
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
