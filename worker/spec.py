"""The SweepSpec contract and its expansion to trials. Pure pydantic: no Ray, no MLflow, no torch.

A sweep asks: does each variant (the base RunConfig with some dotted-path overrides, crossed with a grid) beat each
baseline (a method swapped into the base recipe), over these seeds? Trials = (variants × grid ∪ baselines) × seeds.
Each trial's id is the hash of its resolved RunConfig, so a retry or a resubmission never duplicates work. Every
trial is validated before anything runs; the error lists each bad trial and why.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rskd_core.config import METHOD_CONFIGS, RunConfig
from rskd_core.config_io import (
    ConfigError,
    format_validation_error,
    parse_text,
    set_dotted_many,
    swap_method,
)

DEFAULT_MAX_TRIALS = 500
DEFAULT_MAX_EPOCHS = 1000
M = TypeVar("M", bound=BaseModel)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class SpecError(ValueError):
    """A sweep that cannot run; ``problems`` holds one line per bad field or trial."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message + "\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectiveSpec(_Strict):
    metric: Literal["test/top1", "test/top5", "test/nll", "test/ece"] = Field(
        "test/top1", description="the per-epoch test metric that ranks trials (ASHA) and is compared in the report"
    )
    mode: Literal["max", "min"] = "max"


class SchedulerSpec(_Strict):
    type: Literal["none", "asha"] = "none"
    grace_period: int = Field(1, ge=1, description="asha: epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(3.0, gt=1)


class RacingSpec(_Strict):
    """Seed-aware racing (docs/racing.md): stop a variant that a sequential test, looked at after every paired seed,
    finds worse than its baseline by more than ``margin``; P(any wrongful stop) ≤ ``alpha`` over all looks."""

    baseline: str = Field(description='a baseline of this sweep (its label), or "each" = every baseline (Holm)')
    metric: Literal["test/top1", "test/top5", "test/nll", "test/ece"] | None = Field(
        None, description="the metric compared (its final value); default: the sweep's objective"
    )
    margin: float = Field(0.0, ge=0, description="stop when worse by more than this, in the metric's logged units")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="P(any wrongful stop of a variant within margin) ≤ alpha")
    min_seeds: int = Field(2, ge=2, le=100, description="never stop before this many paired seeds")
    max_failed: int = Field(
        2,
        ge=1,
        le=100,
        description="stop a variant once this many of its trials failed for good (a non-finite loss or another error) "
        "on seeds where no racing baseline failed",
    )


class Resources(_Strict):
    cpu: float = Field(1.0, gt=0, le=256, description="CPUs per trial (fractions allowed)")
    gpu: float = Field(
        0.0,
        ge=0,
        le=16,
        description="GPUs per trial; a fraction f < 1 packs 1/f trials on a GPU, each capped to f of its memory "
        "(runtime.gpu_memory_fraction, unless the config sets it)",
    )

    @property
    def memory_fraction(self) -> float | None:
        """The CUDA memory cap of a packed trial: its share, less 5 % for the CUDA context, which lies outside the
        cap (≈ 0.5 GiB a process), so 1/f trials fit on the GPU together."""
        return round(self.gpu * 0.95, 4) if 0 < self.gpu < 1 else None


class Baseline(_Strict):
    name: str = Field(
        description="a registered method, run on the base recipe with its defaults",
        json_schema_extra={"enum": [*sorted(METHOD_CONFIGS)]},  # what _known enforces
    )
    label: str | None = Field(None, pattern=NAME_PATTERN, description="name in tables (default: the method name)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted.path: value on top of the swap")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in METHOD_CONFIGS:
            raise ValueError(f"unknown method {v!r}; known methods: {', '.join(sorted(METHOD_CONFIGS))}")
        return v


def _baseline_or_name(schema: dict[str, Any]) -> None:
    """A baseline may be given as its method's name alone (``baselines: [ce, ps_kd]``)."""
    schema["items"] = {"anyOf": [schema["items"], {"type": "string", "enum": sorted(METHOD_CONFIGS)}]}


class SweepSpec(_Strict):
    """An ablation: variants of a base recipe against baselines, over seeds."""

    name: str = Field(pattern=NAME_PATTERN, description="also the MLflow experiment name")
    description: str = Field("", max_length=4000)
    base: RunConfig
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="name → {dotted.path: value}; empty = the base itself, named 'base'",
        json_schema_extra={"propertyNames": {"pattern": NAME_PATTERN}},  # what _variant_names enforces
    )
    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="dotted.path → values, crossed with variants",
        json_schema_extra={"additionalProperties": {"type": "array", "minItems": 1}},  # what _grid_nonempty enforces
    )
    baselines: list[Baseline] = Field(default_factory=list, json_schema_extra=_baseline_or_name)
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(  # RunConfig.seed's range
        default_factory=lambda: [0], min_length=1, max_length=100, json_schema_extra={"uniqueItems": True}
    )
    objective: ObjectiveSpec = ObjectiveSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    resources: Resources = Resources()
    max_concurrent_trials: int | None = Field(None, ge=1, le=1024)
    max_failures: int = Field(1, ge=0, le=100, description="retries per trial (from its last checkpoint)")
    racing: RacingSpec | None = Field(None, description="stop clearly worse variants early (docs/racing.md)")

    @field_validator("baselines", mode="before")
    @classmethod
    def _baseline_shorthand(cls, v: Any) -> Any:
        return [{"name": b} if isinstance(b, str) else b for b in v] if isinstance(v, list) else v

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        import re

        bad = [name for name in v if not re.match(NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"variant names {bad} must be 1-64 letters, digits, '_', '.', '-'")
        return v

    @field_validator("grid")
    @classmethod
    def _grid_nonempty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, vals in v.items() if not vals]
        if empty:
            raise ValueError(f"grid entries {empty} have no values")
        return v

    @model_validator(mode="after")
    def _unique(self) -> SweepSpec:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds} has duplicates")
        labels = [b.label or b.name for b in self.baselines]
        clash = sorted({x for x in labels if labels.count(x) > 1} | (set(labels) & set(self.variants)))
        if clash:
            raise ValueError(f"names {clash} are used twice (variants and baselines need distinct names; set label)")
        if self.racing is not None:
            if not labels:
                raise ValueError("racing needs at least one baseline to race the variants against")
            if self.racing.baseline != "each" and self.racing.baseline not in labels:
                raise ValueError(f"racing.baseline {self.racing.baseline!r} is not one of the baselines {labels}")
            if self.racing.min_seeds > len(self.seeds):
                raise ValueError(f"racing.min_seeds={self.racing.min_seeds} is more than the {len(self.seeds)} seeds")
        return self

    def racing_baselines(self) -> list[str]:
        """The baselines' labels that racing compares each variant with (none without racing)."""
        if self.racing is None:
            return []
        labels = [b.label or b.name for b in self.baselines]
        return labels if self.racing.baseline == "each" else [self.racing.baseline]


class Trial(BaseModel):
    """One training run of a sweep."""

    model_config = ConfigDict(frozen=True)

    trial_id: str
    variant: str  # variant name (with grid values) or baseline label
    role: Literal["variant", "baseline"]
    method: str
    seed: int
    knobs: dict[str, Any]  # the dotted paths this trial sets, for tables
    config: RunConfig


def _grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = sorted(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def _label(name: str, point: dict[str, Any]) -> str:
    if not point:
        return name
    return name + "[" + ",".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in point.items()) + "]"


Plan = tuple[str, Literal["variant", "baseline"], dict[str, Any], dict[str, Any]]  # label, role, overrides, swap


def _plans(spec: SweepSpec) -> list[Plan]:
    """Every variant × grid point, then every baseline (each to be run with every seed)."""
    plans: list[Plan] = []
    for name, overrides in (spec.variants or {"base": {}}).items():
        for point in _grid_points(spec.grid):
            plans.append((_label(name, point), "variant", {**overrides, **point}, {}))
    for b in spec.baselines:
        plans.append((b.label or b.name, "baseline", dict(b.overrides), {"method": b.name}))
    return plans


def expand(spec: SweepSpec, max_trials: int = DEFAULT_MAX_TRIALS) -> list[Trial]:
    """Every trial of the sweep, validated, seed-major. Raises :class:`SpecError` naming each bad trial."""
    base = spec.base.model_dump(mode="json")
    if base["runtime"]["gpu_memory_fraction"] is None:
        base["runtime"]["gpu_memory_fraction"] = spec.resources.memory_fraction
    plans = _plans(spec)
    n = len(plans) * len(spec.seeds)
    if n > max_trials:
        raise SpecError(
            f"sweep {spec.name} has {n} trials, over the limit of {max_trials}",
            [f"{len(plans)} variant/baseline configurations × {len(spec.seeds)} seeds; drop grid values or seeds"],
        )
    trials: list[Trial] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for seed in spec.seeds:  # seed-major: every variant and baseline on seed 0, then seed 1, … (racing pairs early)
        for label, role, overrides, swap in plans:
            who = f"{label} (seed {seed})"
            try:
                data = swap_method(base, swap["method"]) if swap else base
                data = set_dotted_many(data, [("seed", seed), *overrides.items()])
                cfg = RunConfig.model_validate(data)
            except ConfigError as err:
                problems.append(f"{who}: {err}")
                continue
            except ValidationError as err:
                problems.append(f"{who}: " + format_validation_error(err).replace("\n", "; "))
                continue
            tid = cfg.config_hash()
            if tid in seen:
                problems.append(f"{who}: resolves to the same config as {seen[tid]}; drop one of them")
                continue
            seen[tid] = who
            trials.append(
                Trial(
                    trial_id=tid,
                    variant=label,
                    role=role,
                    method=cfg.method.name,
                    seed=seed,
                    knobs=overrides,
                    config=cfg,
                )
            )
    if problems:
        raise SpecError(f"sweep {spec.name}: {len(problems)} of {n} trials are invalid", problems)
    return trials


def data_path_problems(trials: list[Trial], data_root: str | None) -> list[str]:
    """Data paths a service accepts: relative to RSKD_DATA_ROOT, no ``..``, and (where the root is visible here)
    no symlink that leads out of it. One line per offending trial."""
    problems = []
    base = Path(data_root).resolve() if data_root else None
    for t in trials:
        root = t.config.data.root
        if root is None:
            continue
        who = f"{t.variant} (seed {t.seed}): data.root {root!r}"
        p = Path(root)
        if p.is_absolute():
            problems.append(f"{who} is absolute; give a folder relative to RSKD_DATA_ROOT")
        elif ".." in p.parts:
            problems.append(f"{who} contains '..'; give a folder inside RSKD_DATA_ROOT")
        elif base is not None and base.is_dir() and not (base / p).resolve().is_relative_to(base):
            problems.append(f"{who} leads outside RSKD_DATA_ROOT through a symlink")
    return problems


def parse_spec(text: str, fmt: str = "yaml") -> SweepSpec:
    """Parse and validate a YAML/JSON spec; field errors become a :class:`SpecError` with dotted paths."""
    return validate_text(text, fmt, lambda data: SweepSpec, "invalid sweep spec")


def validate_text(text: str, fmt: str, model_for: Callable[[Any], type[M]], what: str) -> M:
    """Parse ``text`` and validate it as the model that ``model_for(parsed data)`` chooses; every problem becomes a
    :class:`SpecError` headed ``what``.

    JSON is validated strictly, as its schema reads (``false`` is no integer, ``"2"`` no number); YAML's values are
    typed by the YAML parser, so YAML is validated in pydantic's lax mode."""
    try:
        data = parse_text(text, fmt=fmt)  # its errors name the format ("not valid JSON: …")
        model = model_for(data)
        if fmt == "json":
            return model.model_validate_json(text, strict=True)
        return model.model_validate(data)
    except ConfigError as err:
        raise SpecError(what, [str(err)]) from None
    except ValidationError as err:
        raise SpecError(what, format_validation_error(err).splitlines()) from None
    except ValueError as err:  # YAML syntax errors and the like
        raise SpecError(what, [str(err)]) from None


def epoch_limit_problems(trials: list[Trial], max_epochs: int) -> list[str]:
    """One line per trial whose ``optim.epochs`` is over ``max_epochs`` (``RSKD_MAX_EPOCHS``)."""
    return [
        f"{t.variant} (seed {t.seed}): optim.epochs={t.config.optim.epochs} is over this service's limit "
        f"RSKD_MAX_EPOCHS={max_epochs}"
        for t in trials
        if t.config.optim.epochs > max_epochs
    ]
