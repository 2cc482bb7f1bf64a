"""Optional training diagnostics (``runtime.diagnostics_every``): where each loss term pushes the network.

Every N-th step, before the backward pass, the gradient that each weighted loss term sends into each feature tap of
the student (``stage1..stageN`` and the pooled feature ``last``) is measured with ``torch.autograd.grad`` — the norm
of the batch's gradient tensor — together with the method's own per-step statistics (for RSKD: ‖z̃ − z‖, ‖r(h)‖).
At the end of the epoch the averages go into the metrics record as ``diag/grad/<term>/<tap>`` and ``diag/<stat>``,
with the pseudo-teacher's own test accuracy and its agreement with the student (``diag/teacher_top1``,
``diag/agreement``) when the teacher is a network. Off by default: each measured step costs one extra backward pass
per term.
"""

from __future__ import annotations

from collections import defaultdict

import torch


class Diagnostics:
    """Accumulates per-step measurements and hands out their epoch means."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def due(self, global_step: int) -> bool:
        return self.every > 0 and global_step % self.every == 0

    def add(self, key: str, value: float) -> None:
        self._sums[key] += value
        self._counts[key] += 1

    def measure_gradients(self, terms: dict[str, torch.Tensor], taps: dict[str, torch.Tensor]) -> None:
        """‖∂term/∂tap‖ for every term and tap (the taps must be part of the graph of the terms)."""
        names = [n for n, t in taps.items() if t.requires_grad]
        tensors = [taps[n] for n in names]
        for term, value in terms.items():
            if not value.requires_grad:
                for name in names:
                    self.add(f"diag/grad/{term}/{name}", 0.0)
                continue
            grads = torch.autograd.grad(value.float(), tensors, retain_graph=True, allow_unused=True)
            for name, grad in zip(names, grads, strict=True):
                self.add(f"diag/grad/{term}/{name}", 0.0 if grad is None else float(grad.float().norm()))

    def add_stats(self, stats: dict[str, float]) -> None:
        for key, value in stats.items():
            self.add(f"diag/{key}", value)

    def pop_epoch(self) -> dict[str, float]:
        means = {k: self._sums[k] / self._counts[k] for k in sorted(self._sums)}
        self._sums.clear()
        self._counts.clear()
        return means


def teacher_agreement(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, labels: torch.Tensor
) -> dict[str, float]:
    """The pseudo-teacher's test top-1 and how often its top-1 class equals the student's."""
    t_pred = teacher_logits.argmax(dim=1)
    return {
        "diag/teacher_top1": float((t_pred == labels).float().mean()),
        "diag/agreement": float((t_pred == student_logits.argmax(dim=1)).float().mean()),
    }
