"""Learning-rate schedules as pure functions of the global step, so that resuming needs only the step count."""

from __future__ import annotations

import math

from rskd_core.config import OptimConfig


class LRSchedule:
    """Linear warm-up (per step, from lr/warmup_steps) then multistep (milestones in epochs), cosine or constant."""

    def __init__(self, cfg: OptimConfig, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.steps_per_epoch = max(steps_per_epoch, 1)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.warmup_steps = round(cfg.warmup_epochs * self.steps_per_epoch)

    def lr_at(self, step: int) -> float:
        cfg = self.cfg
        if step < self.warmup_steps:
            return cfg.lr * (step + 1) / self.warmup_steps
        if cfg.schedule == "constant":
            return cfg.lr
        if cfg.schedule == "multistep":
            epoch = step // self.steps_per_epoch
            return cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * progress))
