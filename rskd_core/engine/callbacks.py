"""Trainer callbacks: the progress bar, the JSONL metrics file and checkpointing. Ray reporting and MLflow logging
(in ``worker/``) are callbacks of the same kind.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rskd_core.engine.trainer import Trainer
    from rskd_core.methods.base import Progress


class Callback:
    """Hooks the trainer calls; every one is optional."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (after a resume has been applied)."""

    def on_step_end(self, trainer: Trainer, progress: Progress) -> None:
        """After each optimizer step. Keep it cheap: it runs in the training hot path."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After each epoch's evaluation, with that epoch's metrics record."""

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        """Once at the end, also when training failed (``error`` set)."""


def format_record(record: dict[str, Any], epochs: int) -> str:
    terms = " ".join(
        f"{k.removeprefix('train/')}={v:.4f}" for k, v in record.items() if k.startswith("train/") and k != "train/loss"
    )
    return (
        f"epoch {record['epoch']:>3}/{epochs} loss={record['train/loss']:.4f} {terms} | "
        f"top1={record['test/top1']:.4f} top5={record['test/top5']:.4f} nll={record['test/nll']:.4f} "
        f"ece={record['test/ece']:.2f} | lr={record['lr']:.4g} {record['throughput/samples_per_s']:.0f} img/s"
    ).replace("  ", " ")


class ProgressBar(Callback):
    """A one-line bar per epoch on a terminal (redrawn at most 10×/s) and a line of metrics per epoch."""

    def __init__(self, stream: TextIO | None = None, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._start = 0.0

    def on_step_end(self, trainer: Trainer, progress: Progress) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if progress.step == 1:
            self._start = now
        if now - self._last < 0.1 and progress.step < progress.steps_per_epoch:
            return
        self._last = now
        frac = progress.step / max(progress.steps_per_epoch, 1)
        filled = math.floor(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(
            f"\repoch {progress.epoch + 1}/{progress.epochs} [{bar}] {progress.step}/{progress.steps_per_epoch} "
            f"{now - self._start:.1f}s"
        )
        self.stream.flush()

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        prefix = "\r\033[K" if self.tty else ""
        self.stream.write(prefix + format_record(record, trainer.cfg.optim.epochs) + "\n")
        self.stream.flush()


class JsonlWriter(Callback):
    """``metrics.jsonl``: one JSON object per epoch. On resume it is rewritten from the checkpoint's history first, so
    it never holds an epoch twice nor misses one, whatever moment the previous process died."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_fit_start(self, trainer: Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w") as f:
            for record in trainer.history:
                f.write(json.dumps(record) + "\n")

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


class Checkpointer(Callback):
    """``checkpoint.pt`` (everything needed to resume) after every epoch, ``best.pt`` (weights) when top-1 improves."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if trainer.best_epoch == record["epoch"]:
            trainer.save_weights(self.dir / "best.pt")
        trainer.save_checkpoint(self.dir / "checkpoint.pt")


class InjectedFault(RuntimeError):
    """Raised by ``FailAfterEpoch`` (fault injection for tests)."""


class FailAfterEpoch(Callback):
    """Fault injection for tests: raises ``InjectedFault`` at the end of the 0-based epoch ``epoch``, after the
    callbacks listed before it (put it last: the checkpoint of that epoch exists, as after a real crash). A run resumed
    past that epoch never reaches it again, so the fault fires once."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if record["epoch"] == self.epoch + 1:
            raise InjectedFault(f"fail_at_epoch={self.epoch}: injected failure after epoch {record['epoch']}")
