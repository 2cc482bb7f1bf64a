"""The SweepSpec ``racing:`` block and the seed-major trial order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.spec import SpecError, SweepSpec, expand, parse_spec


def spec(**kw: Any) -> SweepSpec:
    base = {
        "name": "t",
        "base": {"method": {"name": "rskd"}, "teacher": {"rule": "ema"}, "optim": {"epochs": 2, "milestones": []}},
        "variants": {"a": {}, "b": {"method.weights.out": 0.5}},
        "baselines": ["ce", {"name": "label_smoothing", "label": "ls"}],
        "seeds": [0, 1, 2],
    }
    return SweepSpec.model_validate({**base, **kw})


def test_trials_are_seed_major() -> None:
    trials = expand(spec())
    assert [t.seed for t in trials] == [0] * 4 + [1] * 4 + [2] * 4
    assert [t.variant for t in trials[:4]] == ["a", "b", "ce", "ls"]


def test_racing_defaults_and_baselines() -> None:
    s = spec(racing={"baseline": "ce"})
    assert s.racing is not None and s.racing.alpha == 0.05 and s.racing.min_seeds == 2 and s.racing.metric is None
    assert s.racing_baselines() == ["ce"]
    assert spec(racing={"baseline": "each"}).racing_baselines() == ["ce", "ls"]
    assert spec().racing_baselines() == []


@pytest.mark.parametrize(
    ("racing", "message"),
    [
        ({"baseline": "ps_kd"}, "not one of the baselines"),
        ({"baseline": "ce", "min_seeds": 4}, "more than the 3 seeds"),
        ({"baseline": "ce", "min_seeds": 1}, "min_seeds"),
        ({"baseline": "ce", "alpha": 0.0}, "alpha"),
        ({"baseline": "ce", "margin": -0.1}, "margin"),
        ({"baseline": "ce", "typo": 1}, "typo"),
    ],
)
def test_bad_racing_blocks_are_named(racing: dict[str, Any], message: str) -> None:
    text = spec().model_dump_json(exclude={"racing"})
    data = json.loads(text)
    data["racing"] = racing
    with pytest.raises(SpecError) as err:
        parse_spec(json.dumps(data), fmt="json")
    assert message in str(err.value)


def test_racing_needs_a_baseline() -> None:
    with pytest.raises(ValueError, match="at least one baseline"):
        spec(baselines=[], racing={"baseline": "each"})


def test_the_racing_example_is_valid() -> None:
    from pathlib import Path

    s = parse_spec((Path(__file__).resolve().parents[2] / "examples" / "sweeps" / "digits_racing.yaml").read_text())
    assert s.racing is not None and s.racing_baselines() == ["ce"] and len(expand(s)) == 8
