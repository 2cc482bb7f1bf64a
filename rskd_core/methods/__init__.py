"""Self-KD methods, created by name from a closed registry."""

from __future__ import annotations

from typing import Any

from rskd_core.methods.base import Method, ModelOutput, Progress, linear_ramp
from rskd_core.methods.byot import BYOT
from rskd_core.methods.ce import CrossEntropy, LabelSmoothing
from rskd_core.methods.cs_kd import CSKD
from rskd_core.methods.dlb import DLB
from rskd_core.methods.ps_kd import PSKD
from rskd_core.methods.rskd import RSKD
from rskd_core.methods.tf_kd import TFKDReg, TFKDSelf
from rskd_core.models.base import TapModel
from rskd_core.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")
for _cls in (CrossEntropy, LabelSmoothing, TFKDReg, TFKDSelf, CSKD, PSKD, BYOT, DLB, RSKD):
    METHODS.register(_cls.name)(_cls)


def create_method(cfg: Any, model: TapModel) -> Method:
    """Build the method named by ``cfg.name`` (a member of the RunConfig's method union)."""
    cls: Any = METHODS.get(cfg.name)
    method: Method = cls(cfg, model)
    return method


__all__ = ["METHODS", "Method", "ModelOutput", "Progress", "create_method", "linear_ramp"]
