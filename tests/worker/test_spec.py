"""SweepSpec: expansion to trials, stable ids, every bad trial named, limits; importable without Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from worker.spec import SpecError, SweepSpec, expand, parse_spec

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = ROOT / "examples" / "sweeps"


def spec(**kw: Any) -> SweepSpec:
    base = {
        "name": "t",
        "base": {"method": {"name": "rskd"}, "teacher": {"rule": "ema"}, "optim": {"epochs": 2, "milestones": []}},
    }
    return SweepSpec.model_validate({**base, **kw})


def test_expansion_is_variants_times_grid_plus_baselines_times_seeds() -> None:
    s = spec(
        variants={"l": {"method.layers": ["last"]}, "ml": {"method.layers": ["last", "stage1"]}},
        grid={"teacher.rule": ["ema", "prev_epoch"], "method.weights.out": [0.5, 1.0]},
        baselines=["ce", {"name": "label_smoothing", "label": "ls02", "overrides": {"method.eps": 0.2}}],
        seeds=[0, 1, 2],
    )
    trials = expand(s)
    assert len(trials) == (2 * 4 + 2) * 3
    assert len({t.trial_id for t in trials}) == len(trials)
    variants = {t.variant for t in trials if t.role == "variant"}
    assert 'l[method.weights.out=0.5,teacher.rule="ema"]' in variants and len(variants) == 8
    ls = [t for t in trials if t.variant == "ls02"]
    assert len(ls) == 3 and all(t.config.method.name == "label_smoothing" and t.config.method.eps == 0.2 for t in ls)
    ce = [t for t in trials if t.variant == "ce"]
    assert all(t.config.teacher.rule == "none" and t.role == "baseline" for t in ce)  # swapped with its teacher
    assert sorted(t.seed for t in ce) == [0, 1, 2] and all(t.config.seed == t.seed for t in ce)
    ml = next(t for t in trials if t.variant.startswith("ml[") and "prev_epoch" in t.variant)
    assert ml.config.teacher.rule == "prev_epoch" and ml.config.method.layers == ("last", "stage1")  # type: ignore[union-attr]


def test_trial_ids_are_stable_hashes_of_the_resolved_config() -> None:
    a, b = expand(spec(seeds=[0, 1])), expand(spec(seeds=[1, 0]))
    assert {t.trial_id for t in a} == {t.trial_id for t in b}
    assert all(t.trial_id == t.config.config_hash() for t in a)
    assert expand(spec(variants={"x": {}}))[0].trial_id == expand(spec())[0].trial_id  # names do not change ids


def test_every_bad_trial_is_named_before_anything_runs() -> None:
    s = spec(
        grid={"teacher.rule": ["ema", "none", "pred_bank"]},
        variants={"ml": {"method.layers": ["stage1"]}},
        seeds=[0, 1],
    )
    with pytest.raises(SpecError) as info:
        expand(s)
    problems = info.value.problems
    assert len(problems) == 4  # (none, pred_bank) × 2 seeds; ema is fine
    assert any('ml[teacher.rule="none"] (seed 1)' in p and "needs a pseudo-teacher" in p for p in problems)
    assert any("pred_bank" in p and "needs a teacher that computes features" in p for p in problems)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"baselines": ["nope"]}, "unknown method 'nope'"),
        ({"seeds": [1, 1]}, "duplicates"),
        ({"seeds": []}, "seeds"),
        ({"grid": {"optim.lr": []}}, "no values"),
        ({"variants": {"bad name!": {}}}, "variant names"),
        ({"baselines": ["ce", "ce"]}, "used twice"),
        ({"resources": {"cpu": 0}}, "resources.cpu"),
        ({"name": "../etc"}, "name"),
    ],
)
def test_invalid_specs_say_what_to_change(kw: dict[str, Any], message: str) -> None:
    body = {"name": "t", "base": {}, **kw}
    with pytest.raises(SpecError, match=message):
        parse_spec(json.dumps(body), fmt="json")


def test_unknown_override_paths_and_duplicates_are_refused() -> None:
    with pytest.raises(SpecError, match=r"optim\.lrr"):
        expand(spec(variants={"x": {"optim.lrr": 0.1}}))
    with pytest.raises(SpecError, match="same config"):
        expand(spec(variants={"a": {}, "b": {"optim.lr": 0.1}}))  # 0.1 is the default lr: b == a


def test_trial_count_limit() -> None:
    s = spec(grid={"optim.lr": [0.01 * i for i in range(1, 11)]}, seeds=list(range(10)))
    with pytest.raises(SpecError, match="100 trials, over the limit of 50"):
        expand(s, max_trials=50)


@pytest.mark.parametrize(
    "name",
    [
        "digits_smoke.yaml",
        "digits_ablation.yaml",
        "cifar100_paper.yaml",
        "digits_noisy.yaml",
        "rskd_stability.yaml",
        "rskd_lr.yaml",
        "rskd_alternatives.yaml",
    ],
)
def test_example_specs_expand(name: str) -> None:
    trials = expand(parse_spec((SWEEPS / name).read_text()))
    if name == "digits_smoke.yaml":
        assert len(trials) <= 6
    if name == "digits_ablation.yaml":
        assert len(trials) == 36
        assert {t.variant for t in trials if t.role == "baseline"} == {"ce", "label_smoothing", "ps_kd", "cs_kd"}
        assert {t.config.teacher.rule for t in trials if t.role == "variant"} == {"ema", "prev_epoch"}
    if name == "digits_noisy.yaml":  # RSKD-L/ML × EMA/prev-epoch + 5 baselines, 5 seeds, every trial on noisy labels
        assert len(trials) == 45
        assert {t.config.data.label_noise for t in trials} == {0.4}
        assert {t.config.seed for t in trials} == {0, 1, 2, 3, 4}
    if name == "rskd_stability.yaml":  # the old and new defaults, one knob at a time
        knobs = {(t.config.teacher.bn_mode, t.config.method.gap_grad) for t in trials if t.role == "variant"}  # type: ignore[union-attr]
        assert knobs == {("eval", "stop"), ("eval", "feature"), ("train", "stop"), ("train", "feature")}


def test_spec_module_imports_without_ray_mlflow_or_torch() -> None:
    code = (
        "import sys\n"
        "for m in ('ray', 'mlflow', 'torch'): sys.modules[m] = None\n"
        "from worker.spec import parse_spec, expand\n"
        f"print(len(expand(parse_spec(open({str(SWEEPS / 'digits_smoke.yaml')!r}).read()))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "4"
