"""Two ways to feed the trainer, with one interface: ``loader.epoch(e)`` yields :class:`Batch` objects.

* :class:`DeviceLoader` keeps the whole data set on the training device as one tensor, shuffles with a per-epoch
  generator and augments each batch there (crop + flip in one gather). No workers, no host→device copies.
* :class:`TorchLoader` is the classic path for data that does not fit: a ``torch.utils.data.DataLoader`` with workers,
  pinned memory and per-sample torchvision transforms.

Both derive their random numbers from (seed, epoch), so an epoch's order and augmentations are reproducible on resume
without any generator state in the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rskd_core.data.augment import AugmentSpec, augment_batch
from rskd_core.data.batch import Batch


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A well-mixed 63-bit seed for (run seed, epoch, stream)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(2, dtype=np.uint32).astype(np.int64)[0])


class Loader(Protocol):
    num_samples: int

    def __len__(self) -> int: ...

    def epoch(self, epoch: int) -> Iterator[Batch]: ...


def _steps(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else math.ceil(n / batch_size)


class DeviceLoader:
    """The data set as tensors on ``device``; batched shuffling and augmentation there."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        device: torch.device,
        shuffle: bool,
        augment: AugmentSpec | None,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        self.x = x.to(device)
        self.y = y.to(device)
        self.num_samples = int(y.shape[0])
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.augment = augment if augment is not None and augment.active else None
        self.seed = seed
        self.drop_last = drop_last

    def __len__(self) -> int:
        return _steps(self.num_samples, self.batch_size, self.drop_last)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(self.num_samples, generator=g) if self.shuffle else torch.arange(self.num_samples)
        order = order.to(self.device)
        for step in range(len(self)):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            x = self.x[idx]
            if self.augment is not None:
                x = augment_batch(x, self.augment, g)
            yield Batch(x, self.y[idx], idx)


class _IndexedTensors(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, augment: AugmentSpec | None) -> None:
        self.x, self.y = x, y
        self.transform = None
        if augment is not None and augment.active:
            from torchvision.transforms import v2

            ops: list[torch.nn.Module] = []
            if augment.crop_padding:
                ops.append(v2.RandomCrop(x.shape[-1], padding=augment.crop_padding))
            if augment.flip:
                ops.append(v2.RandomHorizontalFlip())
            self.transform = v2.Compose(ops)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        x = self.x[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.y[i], i


class TorchLoader:
    """A DataLoader over CPU tensors with per-sample torchvision transforms, workers and pinned memory."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        device: torch.device,
        shuffle: bool,
        augment: AugmentSpec | None,
        seed: int = 0,
        num_workers: int = 2,
        drop_last: bool = False,
    ) -> None:
        self.dataset = _IndexedTensors(x, y, augment)
        self.num_samples = len(self.dataset)
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.seed = seed
        self.num_workers = num_workers
        self.drop_last = drop_last

    def __len__(self) -> int:
        return _steps(self.num_samples, self.batch_size, self.drop_last)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            generator=g,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=self.drop_last,
            persistent_workers=False,
        )
        non_blocking = self.device.type == "cuda"
        for x, y, idx in loader:
            yield Batch(x, y, idx).to(self.device, non_blocking=non_blocking)
