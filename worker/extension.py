"""Growing a finished sweep (pure: no Ray, no MLflow): an extension → the union spec → the trials that are new.

An extension is either additive — ``{"seeds": [3, 4]}``, ``{"variants": {...}}``, ``{"grid": {"path": [more]}}``,
``{"baselines": [...]}`` in any mix — or a whole new spec that contains the old one (the same name, base, objective
and resources; every old seed, variant, grid value and baseline still there, unchanged). Either way the result is the
union spec, and every trial of the old spec must be a trial of the union (a trial id is the hash of its resolved
``RunConfig``), so an extension only ever adds trials. The new trials are the union's expansion minus the trial ids
that exist; they run as children of the same MLflow parent run. Of those, a variant racing pruned before gets none
(``keep_pruned``) unless the additive body's ``reopen`` names it (``reopen_problems``: a name that is not pruned).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rskd_core.config_io import format_validation_error
from worker.spec import NAME_PATTERN, Baseline, SpecError, SweepSpec, Trial, expand, validate_text
from worker.spec import _baseline_or_name as baseline_or_name

FIXED = ("name", "base", "objective", "resources")  # a trial's config or the comparison depends on these


class ExtendBody(BaseModel):
    """What to add to a sweep: seeds, variants, grid values and baselines, in any mix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(
        default_factory=list, max_length=100, description="seeds to add (those the sweep has are ignored)"
    )
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="name → {dotted.path: value}: variants to add (an existing name must keep its overrides)",
        json_schema_extra={"propertyNames": {"pattern": NAME_PATTERN}},
    )
    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="dotted.path → values to add to an existing grid axis (a new axis would change every trial)",
        json_schema_extra={"additionalProperties": {"type": "array", "minItems": 1}},
    )
    baselines: list[Baseline] = Field(
        default_factory=list,
        max_length=100,
        description="baselines to add (a method name, or {name, label, overrides})",
        json_schema_extra=baseline_or_name,
    )

    reopen: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="variants racing pruned earlier that get this extension's new trials after all (by default a "
        "pruned variant gets none); not part of the spec",
    )

    @field_validator("baselines", mode="before")
    @classmethod
    def _baseline_shorthand(cls, v: Any) -> Any:
        return [{"name": b} if isinstance(b, str) else b for b in v] if isinstance(v, list) else v


def is_whole_spec(data: Any) -> bool:
    """A body with a ``name`` or a ``base`` is a whole spec; anything else is additive."""
    return isinstance(data, dict) and ("name" in data or "base" in data)


def _merge_list(old: list[Any], new: list[Any]) -> list[Any]:
    return [*old, *(x for x in new if x not in old)]


def _add(old: SweepSpec, add: ExtendBody) -> tuple[dict[str, Any], list[str]]:
    data = old.model_dump(mode="json")
    problems: list[str] = []
    data["seeds"] = _merge_list(data["seeds"], list(add.seeds))
    if add.variants and not old.variants:
        problems.append("variants: the sweep runs the base itself ('base'); naming variants would drop it")
    for name, overrides in add.variants.items():
        if name in old.variants and old.variants[name] != overrides:
            problems.append(f"variants.{name}: already in the sweep with other overrides {old.variants[name]}")
        data["variants"].setdefault(name, overrides)
    for path, values in add.grid.items():
        if path not in old.grid:
            problems.append(f"grid.{path}: a new grid axis would change every trial of the sweep; add a variant")
            continue
        data["grid"][path] = _merge_list(data["grid"][path], values)
    have = {b.label or b.name: b for b in old.baselines}
    for b in add.baselines:
        label = b.label or b.name
        if label in have and have[label] != b:
            problems.append(f"baselines.{label}: already in the sweep as {have[label].model_dump(mode='json')}")
        elif label not in have:
            data["baselines"].append(b.model_dump(mode="json"))
    return data, problems


def _contains(old: SweepSpec, new: SweepSpec) -> list[str]:
    """What ``new`` removes or changes of ``old``, one line per field."""
    problems = [f"{f}: an extension cannot change it" for f in FIXED if getattr(old, f) != getattr(new, f)]
    missing = [s for s in old.seeds if s not in new.seeds]
    if missing:
        problems.append(f"seeds: {missing} removed")
    for name, overrides in old.variants.items():
        if name not in new.variants:
            problems.append(f"variants.{name}: removed")
        elif new.variants[name] != overrides:
            problems.append(f"variants.{name}: changed from {overrides} to {new.variants[name]}")
    if not old.variants and new.variants:
        problems.append("variants: the sweep runs the base itself ('base'); naming variants would drop it")
    for path, values in old.grid.items():
        if path not in new.grid:
            problems.append(f"grid.{path}: removed")
        elif [v for v in values if v not in new.grid[path]]:
            problems.append(f"grid.{path}: values {[v for v in values if v not in new.grid[path]]} removed")
    for path in new.grid.keys() - old.grid.keys():
        problems.append(f"grid.{path}: a new grid axis would change every trial of the sweep; add a variant")
    new_baselines = {b.label or b.name: b for b in new.baselines}
    for b in old.baselines:
        label = b.label or b.name
        if label not in new_baselines:
            problems.append(f"baselines.{label}: removed")
        elif new_baselines[label] != b:
            problems.append(f"baselines.{label}: changed")
    return problems


def union_spec(old: SweepSpec, extension: ExtendBody | SweepSpec, max_trials: int) -> SweepSpec:
    """The union of the sweep and the extension. :class:`SpecError` names each field removed or changed, and each
    trial of the old sweep that the union would not run again (nothing is ever dropped)."""
    if isinstance(extension, SweepSpec):
        problems = _contains(old, extension)
        data = extension.model_dump(mode="json")
    else:
        data, problems = _add(old, extension)
    if problems:
        raise SpecError(f"sweep {old.name}: the extension must keep every trial of the sweep", problems)
    try:
        union = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError("invalid extension", format_validation_error(err).splitlines()) from None
    kept = {t.trial_id for t in expand(union, max_trials)}
    lost = [f"{t.variant} (seed {t.seed}) would change" for t in expand(old, max_trials) if t.trial_id not in kept]
    if lost:
        raise SpecError(f"sweep {old.name}: the extension changes trials that exist", lost)
    return union


def new_trials(union: SweepSpec, existing: set[str], max_trials: int) -> list[Trial]:
    """The union's trials whose id is not among ``existing`` (the trial ids the sweep has)."""
    return [t for t in expand(union, max_trials) if t.trial_id not in existing]


def reopen_problems(reopen: Iterable[str], pruned: Collection[str]) -> list[str]:
    """One line per name in ``reopen`` that is not a pruned variant of the sweep (``pruned``: their names)."""
    have = ", ".join(sorted(pruned)) or "none"
    return [
        f"reopen.{name}: not a pruned variant of the sweep (pruned: {have})" for name in reopen if name not in pruned
    ]


def keep_pruned(
    trials: list[Trial], pruned: Collection[str], reopen: Collection[str] = ()
) -> tuple[list[Trial], list[Trial]]:
    """The new trials split into those that run and those left out: a variant pruned so far (``pruned``: the
    variants racing has pruned and no extension reopened since, ``dashboards.layout.pruned_variants``) gets no new
    trial unless ``reopen`` names it."""
    closed = set(pruned) - set(reopen)
    return [t for t in trials if t.variant not in closed], [t for t in trials if t.variant in closed]


def parse_extension(text: str, fmt: str = "json") -> ExtendBody | SweepSpec:
    """The body as an additive :class:`ExtendBody` or a whole :class:`SweepSpec` (``SpecError`` when invalid). JSON is
    validated strictly, as its schema reads; YAML in pydantic's lax mode (as ``worker.spec.parse_spec``)."""

    def model_for(data: Any) -> type[ExtendBody | SweepSpec]:
        return SweepSpec if is_whole_spec(data) else ExtendBody

    return validate_text(text, fmt, model_for, "invalid extension")
