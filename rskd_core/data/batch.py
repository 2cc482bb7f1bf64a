"""The batch every loader yields: images, labels and the indices of the samples in the training set."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """``idx`` lets sample-keyed state (PS-KD's prediction bank, CS-KD's pairs) find its rows."""

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        return Batch(
            self.x.to(device, non_blocking=non_blocking),
            self.y.to(device, non_blocking=non_blocking),
            self.idx.to(device, non_blocking=non_blocking),
        )

    @staticmethod
    def cat(first: Batch, second: Batch) -> Batch:
        return Batch(torch.cat([first.x, second.x]), torch.cat([first.y, second.y]), torch.cat([first.idx, second.idx]))
