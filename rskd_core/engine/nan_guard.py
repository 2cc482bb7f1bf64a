"""The NaN/inf guard of the training loop, without a host sync per step.

Each step's detached loss terms are kept (a few scalars on the device) and a finite flag is and-ed on the device.
The flag is read — one host sync — every ``runtime.nan_check_every`` steps and at each epoch's end; when it is down,
the kept terms name the first bad step and its terms. With ``every=1`` the flag is read before each backward, so a
bad step never reaches the weights; with ``every>1`` the steps up to the check have run on (the weights in memory are
no longer finite, the last checkpoint is: checkpoints are written only after an epoch that passed its check).
"""

from __future__ import annotations

import torch

from rskd_core.methods import Progress


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the message names the epoch, the step and the offending terms."""


class NanGuard:
    """Keeps each step's terms and a device-side finite flag until the next check."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._ok: torch.Tensor | None = None
        self._steps: list[tuple[Progress, dict[str, torch.Tensor]]] = []

    @property
    def before_backward(self) -> bool:
        """Check each step before its backward (exact: a bad step never updates the weights)."""
        return self.every == 1

    def observe(self, progress: Progress, values: dict[str, torch.Tensor]) -> None:
        """``values``: the step's detached terms, ``loss`` the total. No host sync."""
        finite = torch.isfinite(values["loss"])
        self._ok = finite if self._ok is None else self._ok & finite
        self._steps.append((progress, values))

    def due(self) -> bool:
        return len(self._steps) >= self.every

    def check(self) -> None:
        """Read the flag (one host sync); raise :class:`NonFiniteLossError` naming the first bad step."""
        ok, steps = self._ok, self._steps
        self._ok, self._steps = None, []
        if ok is None or bool(ok):
            return
        for i, (progress, values) in enumerate(steps):
            if bool(torch.isfinite(values["loss"])):
                continue
            bad = {k: float(v) for k, v in values.items() if k != "loss" and not bool(torch.isfinite(v))}
            named = ", ".join(f"{k}={v}" for k, v in bad.items()) or f"total={float(values['loss'])}"
            later = len(steps) - 1 - i
            found = f" (seen {later} steps later; runtime.nan_check_every={self.every})" if later else ""
            raise NonFiniteLossError(
                f"non-finite loss at epoch {progress.epoch + 1}, step {progress.step + 1}: {named}{found}; "
                "lower optim.lr, raise optim.warmup_epochs or check the data"
            )
