"""The batch every loader yields: images, labels and the indices of the samples in the training set."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """``idx`` lets sample-keyed state (PS-KD's prediction bank, CS-KD's pairs) find its rows; ``x2`` is a second
    augmented view of the same images, present when the loader was asked for two views (DLB)."""

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor
    x2: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        return Batch(
            self.x.to(device, non_blocking=non_blocking),
            self.y.to(device, non_blocking=non_blocking),
            self.idx.to(device, non_blocking=non_blocking),
            None if self.x2 is None else self.x2.to(device, non_blocking=non_blocking),
        )

    def rows(self, sel: slice | torch.Tensor) -> Batch:
        return Batch(self.x[sel], self.y[sel], self.idx[sel], None if self.x2 is None else self.x2[sel])

    @staticmethod
    def cat(first: Batch, second: Batch) -> Batch:
        x2 = None if first.x2 is None or second.x2 is None else torch.cat([first.x2, second.x2])
        return Batch(
            torch.cat([first.x, second.x]), torch.cat([first.y, second.y]), torch.cat([first.idx, second.idx]), x2
        )
