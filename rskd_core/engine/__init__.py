"""The training engine: one loop, callbacks, checkpoints, metrics."""

from rskd_core.engine.callbacks import Callback, Checkpointer, FailAfterEpoch, InjectedFault, JsonlWriter, ProgressBar
from rskd_core.engine.nan_guard import NonFiniteLossError
from rskd_core.engine.trainer import FitResult, ResumeError, Trainer, fit

__all__ = [
    "Callback",
    "Checkpointer",
    "FailAfterEpoch",
    "FitResult",
    "InjectedFault",
    "JsonlWriter",
    "NonFiniteLossError",
    "ProgressBar",
    "ResumeError",
    "Trainer",
    "fit",
]
