"""The states of a sweep: PENDING → SUBMITTED → RUNNING → SUCCEEDED | FAILED | CANCELLED.

The one place they are spelled. Pure (no Ray, no MLflow): the service stores them, its CLI and the dashboards show them.
MLflow's run states (FINISHED, KILLED, …) are another set, owned by ``dashboards.layout``.
"""

from __future__ import annotations

from enum import StrEnum


class SweepStatus(StrEnum):
    """A sweep's state as the service stores and serves it (a ``str``: compares equal to its name)."""

    PENDING = "PENDING"  # stored, not submitted yet
    SUBMITTED = "SUBMITTED"  # its Ray Job is queued
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


ACTIVE: frozenset[SweepStatus] = frozenset({SweepStatus.PENDING, SweepStatus.SUBMITTED, SweepStatus.RUNNING})
TERMINAL: frozenset[SweepStatus] = frozenset({SweepStatus.SUCCEEDED, SweepStatus.FAILED, SweepStatus.CANCELLED})
RESUMABLE: frozenset[SweepStatus] = frozenset({SweepStatus.FAILED, SweepStatus.CANCELLED})
