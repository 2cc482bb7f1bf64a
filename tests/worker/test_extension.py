"""Extending a sweep (pure): additive bodies and whole specs → the union spec; new trials = union − existing ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.extension import ExtendBody, new_trials, parse_extension, union_spec
from worker.spec import SpecError, SweepSpec, expand

LIMIT = 500


def spec(**kw: Any) -> SweepSpec:
    base = {
        "name": "t",
        "base": {"method": {"name": "rskd"}, "teacher": {"rule": "ema"}, "optim": {"epochs": 2, "milestones": []}},
        "variants": {"a": {}, "b": {"method.weights.out": 0.5}},
        "baselines": ["ce"],
        "seeds": [0, 1, 2],
    }
    return SweepSpec.model_validate({**base, **kw})


def ids(s: SweepSpec) -> set[str]:
    return {t.trial_id for t in expand(s, LIMIT)}


def added(old: SweepSpec, body: dict[str, Any]) -> list[Any]:
    union = union_spec(old, ExtendBody.model_validate(body), LIMIT)
    assert ids(old) <= ids(union)
    return new_trials(union, ids(old), LIMIT)


def test_more_seeds_add_exactly_the_new_seeds_trials() -> None:
    new = added(spec(), {"seeds": [3, 4]})
    assert len(new) == 6 and {t.seed for t in new} == {3, 4}
    union = union_spec(spec(), ExtendBody(seeds=[3, 4]), LIMIT)
    assert union.seeds == [0, 1, 2, 3, 4]
    assert ids(union) == ids(spec(seeds=[0, 1, 2, 3, 4]))  # the union is the 5-seed sweep


def test_variants_grid_values_and_baselines_mix() -> None:
    old = spec(grid={"method.weights.out": [0.5]}, variants={"a": {}})
    new = added(old, {"variants": {"c": {"optim.lr": 0.2}}, "grid": {"method.weights.out": [0.5, 1.0]},
                      "baselines": ["label_smoothing"], "seeds": [1]})  # fmt: skip
    # a[w=1.0], c[w=0.5], c[w=1.0], label_smoothing, each × 3 seeds
    assert len(new) == 12
    assert {t.variant for t in new} == {"a[method.weights.out=1.0]", "c[method.weights.out=0.5]",
                                        "c[method.weights.out=1.0]", "label_smoothing"}  # fmt: skip


def test_nothing_new_is_a_no_op() -> None:
    assert added(spec(), {"seeds": [0, 2], "variants": {"a": {}}, "baselines": ["ce"]}) == []
    assert new_trials(union_spec(spec(), spec(), LIMIT), ids(spec()), LIMIT) == []


@pytest.mark.parametrize(
    ("whole", "field"),
    [
        ({"base": {"method": {"name": "rskd"}, "teacher": {"rule": "ema"}, "optim": {"epochs": 3, "milestones": []}}},
         "base"),
        ({"objective": {"metric": "test/nll", "mode": "min"}}, "objective"),
        ({"name": "other"}, "name"),
        ({"seeds": [0, 1]}, "seeds"),
        ({"variants": {"a": {}}}, "variants.b"),
        ({"variants": {"a": {}, "b": {"method.weights.out": 0.7}}}, "variants.b"),
        ({"baselines": []}, "baselines.ce"),
        ({"grid": {"optim.lr": [0.1]}}, "grid.optim.lr"),
    ],
)  # fmt: skip
def test_a_whole_spec_must_contain_the_old_one(whole: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        union_spec(spec(), spec(**whole), LIMIT)
    assert any(p.startswith(field) for p in err.value.problems), err.value.problems


def test_a_whole_spec_that_contains_the_old_one_is_the_union() -> None:
    bigger = spec(seeds=[0, 1, 2, 5], description="more", max_failures=2)
    union = union_spec(spec(), bigger, LIMIT)
    assert union == bigger and len(new_trials(union, ids(spec()), LIMIT)) == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"variants": {"b": {"method.weights.out": 0.7}}}, "variants.b"),
        ({"grid": {"optim.lr": [0.1]}}, "grid.optim.lr"),
        ({"baselines": [{"name": "ce", "overrides": {"optim.lr": 0.2}}]}, "baselines.ce"),
    ],
)
def test_an_additive_body_never_changes_what_exists(body: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        union_spec(spec(), ExtendBody.model_validate(body), LIMIT)
    assert any(p.startswith(field) for p in err.value.problems), err.value.problems


def test_a_sweep_of_the_base_alone_cannot_gain_named_variants() -> None:
    with pytest.raises(SpecError, match="variants"):
        union_spec(spec(variants={}), ExtendBody(variants={"x": {"optim.lr": 0.2}}), LIMIT)


def test_the_body_is_additive_unless_it_names_a_spec() -> None:
    assert isinstance(parse_extension('{"seeds": [3]}'), ExtendBody)
    assert isinstance(parse_extension(spec().model_dump_json()), SweepSpec)
    assert isinstance(parse_extension("seeds: [3]\nbaselines: [ce]", "yaml"), ExtendBody)
    for bad in ('{"seeds": ["3"]}', '{"sedes": [3]}', "[", json.dumps({"baselines": ["nope"]})):
        with pytest.raises(SpecError):
            parse_extension(bad)


def test_the_union_keeps_the_trial_limit() -> None:
    with pytest.raises(SpecError, match="over the limit"):
        union_spec(spec(), ExtendBody(seeds=list(range(3, 40))), 20)


def test_reopen_is_no_part_of_the_union_and_a_pruned_variant_is_kept_unless_reopened() -> None:
    from worker.extension import keep_pruned, reopen_problems

    old = spec()
    union = union_spec(old, ExtendBody(seeds=[3], reopen=["b"]), LIMIT)
    assert union == union_spec(old, ExtendBody(seeds=[3]), LIMIT)
    new = new_trials(union, ids(old), LIMIT)
    run, kept = keep_pruned(new, {"b"})
    assert {t.variant for t in run} == {"a", "ce"} and [t.variant for t in kept] == ["b"]
    run, kept = keep_pruned(new, {"b"}, ["b"])
    assert len(run) == 3 and kept == []
    assert reopen_problems(["b", "ce"], {"b"}) == ["reopen.ce: not a pruned variant of the sweep (pruned: b)"]
    assert reopen_problems(["a"], set()) == ["reopen.a: not a pruned variant of the sweep (pruned: none)"]
    assert parse_extension('{"seeds": [3], "reopen": ["b"]}') == ExtendBody(seeds=[3], reopen=["b"])
