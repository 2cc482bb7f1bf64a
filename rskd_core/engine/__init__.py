"""The training engine: one loop, callbacks, checkpoints, metrics."""

from rskd_core.engine.callbacks import Callback, Checkpointer, JsonlWriter, ProgressBar
from rskd_core.engine.trainer import FitResult, InjectedFault, NonFiniteLossError, ResumeError, Trainer, fit

__all__ = [
    "Callback",
    "Checkpointer",
    "FitResult",
    "InjectedFault",
    "JsonlWriter",
    "NonFiniteLossError",
    "ProgressBar",
    "ResumeError",
    "Trainer",
    "fit",
]
