"""Pseudo-teacher update rules, created by name from a closed registry."""

from __future__ import annotations

from collections.abc import Callable

from rskd_core.config import TeacherConfig
from rskd_core.registry import Registry
from rskd_core.teachers.base import TeacherContext, TeacherRule, TeacherSignal
from rskd_core.teachers.network import EMATeacher, FrozenTeacher, PrevEpochTeacher
from rskd_core.teachers.simple import ClassPairTeacher, LastBatchTeacher, NoTeacher, PredBankTeacher

TEACHERS: Registry[Callable[[TeacherConfig], TeacherRule]] = Registry("teacher rule")
for _cls in (
    NoTeacher,
    EMATeacher,
    PrevEpochTeacher,
    LastBatchTeacher,
    PredBankTeacher,
    FrozenTeacher,
    ClassPairTeacher,
):
    TEACHERS.register(_cls.name)(_cls)


def create_teacher(cfg: TeacherConfig) -> TeacherRule:
    return TEACHERS.get(cfg.rule)(cfg)


__all__ = ["TEACHERS", "TeacherContext", "TeacherRule", "TeacherSignal", "create_teacher"]
