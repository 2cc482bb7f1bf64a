"""rskd_core: one training run of the RSKD trainer and its Self-KD baselines.

Imports torch, torchvision, numpy, pydantic and scikit-learn only — never Ray, MLflow, FastAPI or SQLAlchemy — so it
trains on a bare GPU box. ``fit`` and ``Trainer`` are imported lazily to keep ``import rskd_core.config`` light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rskd_core.config import RunConfig

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rskd_core.engine import FitResult, Trainer, fit


def __getattr__(name: str) -> Any:
    if name in {"fit", "Trainer", "FitResult"}:
        from rskd_core import engine

        return getattr(engine, name)
    raise AttributeError(name)


__all__ = ["FitResult", "RunConfig", "Trainer", "__version__", "fit"]
