"""A packed trial (``resources.gpu`` < 1) carries its CUDA memory cap in its config (issue 13)."""

from __future__ import annotations

from worker.spec import SweepSpec, expand

BASE = {"name": "t", "base": {"optim": {"epochs": 1, "milestones": []}}, "seeds": [0]}


def test_a_fractional_gpu_caps_each_trial_to_its_share_unless_the_config_says() -> None:
    packed = expand(SweepSpec.model_validate({**BASE, "resources": {"gpu": 0.25}}))
    assert {t.config.runtime.gpu_memory_fraction for t in packed} == {0.2375}  # 5 % left for the CUDA context
    whole = expand(SweepSpec.model_validate({**BASE, "resources": {"gpu": 1}}))
    assert {t.config.runtime.gpu_memory_fraction for t in whole} == {None}
    mine = {**BASE, "base": {**BASE["base"], "runtime": {"gpu_memory_fraction": 0.1}}, "resources": {"gpu": 0.5}}
    assert {t.config.runtime.gpu_memory_fraction for t in expand(SweepSpec.model_validate(mine))} == {0.1}
