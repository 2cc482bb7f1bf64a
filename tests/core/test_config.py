"""RunConfig: typing of overrides, --method swaps, cross-field rules whose messages say what to change."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from rskd_core.config import (
    METHOD_CONFIGS,
    DatasetName,
    ModelName,
    RSKDConfig,
    RunConfig,
    TeacherRuleName,
)
from rskd_core.config_io import (
    ConfigError,
    apply_overrides,
    load_run_config,
    parse_text,
    swap_method,
    validate,
)
from rskd_core.data import DATASETS
from rskd_core.methods import METHODS
from rskd_core.models import MODELS
from rskd_core.teachers import TEACHERS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "runs" / "digits_rskd.yaml"


def test_registries_match_the_config_literals() -> None:
    assert sorted(typing.get_args(ModelName)) == MODELS.names()
    assert sorted(typing.get_args(DatasetName)) == DATASETS.names()
    assert sorted(typing.get_args(TeacherRuleName)) == TEACHERS.names()
    assert sorted(METHOD_CONFIGS) == METHODS.names()


def test_example_config_loads_and_is_rskd_l_with_ema() -> None:
    cfg = load_run_config(EXAMPLE)
    assert isinstance(cfg.method, RSKDConfig)
    assert cfg.method.layers == ("last",)
    assert cfg.teacher.rule == "ema"
    assert cfg.data.name == "digits"


def test_overrides_are_typed_by_pydantic() -> None:
    cfg = load_run_config(
        EXAMPLE,
        ["optim.lr=0.01", "method.layers=[last, stage2]", "runtime.amp=true", "method.weights.kd=0.5", "seed=7"],
    )
    assert cfg.optim.lr == 0.01
    assert isinstance(cfg.method, RSKDConfig)
    assert cfg.method.layers == ("last", "stage2")
    assert cfg.runtime.amp is True
    assert cfg.method.weights.kd == 0.5
    assert cfg.seed == 7


def test_override_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        load_run_config(EXAMPLE, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="dotted.path=value"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(ConfigError, match=r"optim\.lrr.*[Ee]xtra"):
        load_run_config(EXAMPLE, ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=1"])


def test_unknown_method_and_model_are_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="known methods: byot, ce, cs_kd, dlb, label_smoothing, ps_kd, rskd"):
        swap_method({}, "bogus")
    with pytest.raises(ConfigError, match=r"model\.name.*preact_resnet18"):
        validate({"model": {"name": "torch.nn.Linear"}})


def test_method_swap_sets_or_keeps_the_teacher_rule() -> None:
    base = parse_text(EXAMPLE.read_text())
    ce = validate(swap_method(base, "ce"))
    assert ce.method.name == "ce" and ce.teacher.rule == "none"
    back = validate(swap_method(swap_method(base, "ce"), "rskd"))
    assert back.teacher.rule == "ema"  # rskd's default when the current rule (none) will not do
    kept = validate(swap_method(apply_overrides(base, ["teacher.rule=prev_epoch"]), "rskd"))
    assert kept.teacher.rule == "prev_epoch"  # a rule rskd can use is kept
    assert isinstance(kept.method, RSKDConfig) and kept.method.layers == ("last",)  # method defaults


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["method.name=rskd", "teacher.rule=none"], "rskd needs a pseudo-teacher: set teacher.rule"),
        (["method.name=ce", "teacher.rule=ema"], r"method ce needs teacher.rule=none \(got ema\)"),
        (["method.name=ps_kd", "teacher.rule=ema"], "method ps_kd needs teacher.rule=pred_bank"),
        (["method.name=cs_kd"], "method cs_kd needs teacher.rule=class_pair"),
        (["method.name=rskd", "teacher.rule=class_pair"], "method rskd does not use teacher.rule=class_pair"),
        (
            ["method.name=rskd", "method.layers=[last, stage1]", "teacher.rule=pred_bank"],
            "needs a teacher that computes features: set teacher.rule to ema, prev_epoch, last_batch or frozen",
        ),
        (["teacher.checkpoint=x.pt"], "only read by teacher.rule=frozen"),
        (["method.name=rskd", "teacher.rule=last_batch", "optim.batch_size=15"], "must be even"),
        (["optim.epochs=10", "optim.milestones=[5, 20]"], "lie beyond optim.epochs"),
        (["optim.milestones=[150, 100]"], "must be increasing"),
        (["method.name=rskd", "teacher.rule=ema", "method.layers=[last, last]"], "duplicates"),
        (
            ["method.name=rskd", "teacher.rule=ema", "method.layers=[stage1]", "method.infer_with_residual=true"],
            "needs 'last' in method.layers",
        ),
        (["method.name=rskd", "teacher.rule=ema", "method.layers=[stage4]"], r"method\.rskd\.layers"),
    ],
)
def test_cross_field_rules_say_what_to_change(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(apply_overrides({}, overrides))


def test_method_swap_applies_the_method_teacher_defaults() -> None:
    base = parse_text(EXAMPLE.read_text())
    dlb = validate(swap_method(base, "dlb"))
    assert (dlb.teacher.rule, dlb.teacher.repeat_split, dlb.teacher.repeat_view) == ("last_batch", "full", "second")
    for name, rule in [("ps_kd", "pred_bank"), ("cs_kd", "class_pair"), ("tf_kd_self", "frozen"), ("byot", "none")]:
        assert validate(swap_method(base, name)).teacher.rule == rule
    # a frozen teacher without a checkpoint is valid: stage 1 trains it
    assert validate(swap_method(base, "tf_kd_self")).teacher.checkpoint is None


def test_config_is_frozen_and_hash_is_stable() -> None:
    a = load_run_config(EXAMPLE)
    b = RunConfig.model_validate(json.loads(json.dumps(a.model_dump(mode="json"))))
    assert a.config_hash() == b.config_hash()
    assert a.config_hash() != load_run_config(EXAMPLE, ["seed=1"]).config_hash()
    with pytest.raises(Exception, match="frozen"):
        a.seed = 3  # type: ignore[misc]


def test_yaml_is_parsed_safely() -> None:
    with pytest.raises(ConfigError, match="not valid YAML.*could not determine a constructor"):
        parse_text("seed: !!python/object/apply:os.system ['echo pwned']")
    with pytest.raises(ConfigError, match="mapping"):
        parse_text("- 1\n- 2\n")
