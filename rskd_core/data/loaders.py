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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class LoaderOptions:
    batch_size: int
    device: torch.device
    shuffle: bool
    augment: AugmentSpec | None = None
    seed: int = 0
    num_workers: int = 0  # TorchLoader only


class _IndexedLoader:
    """What both loaders share: sizes, the step count and the per-epoch generator."""

    def __init__(self, num_samples: int, opts: LoaderOptions) -> None:
        self.num_samples = num_samples
        self.opts = opts
        self.augment = opts.augment if opts.augment is not None and opts.augment.active else None

    def __len__(self) -> int:
        # a trailing batch of one sample is dropped: BatchNorm cannot train on it
        n, b = self.num_samples, self.opts.batch_size
        return n // b if n % b == 1 else math.ceil(n / b)

    def generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(epoch_seed(self.opts.seed, epoch))


class DeviceLoader(_IndexedLoader):
    """The data set as tensors on the device; batched shuffling and augmentation there."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, opts: LoaderOptions) -> None:
        super().__init__(int(y.shape[0]), opts)
        self.x = x.to(opts.device)
        self.y = y.to(opts.device)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        g = self.generator(epoch)
        n, b = self.num_samples, self.opts.batch_size
        order = torch.randperm(n, generator=g) if self.opts.shuffle else torch.arange(n)
        order = order.to(self.opts.device)
        for step in range(len(self)):
            idx = order[step * b : (step + 1) * b]
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


class TorchLoader(_IndexedLoader):
    """A DataLoader over CPU tensors with per-sample torchvision transforms, workers and pinned memory."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, opts: LoaderOptions) -> None:
        super().__init__(int(y.shape[0]), opts)
        self.dataset = _IndexedTensors(x, y, self.augment)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        o = self.opts
        loader = DataLoader(
            self.dataset,
            batch_size=o.batch_size,
            shuffle=o.shuffle,
            generator=self.generator(epoch),
            num_workers=o.num_workers,
            pin_memory=o.device.type == "cuda",
            drop_last=len(self) < math.ceil(self.num_samples / o.batch_size),
        )
        cuda = o.device.type == "cuda"
        for x, y, idx in loader:
            yield Batch(x, y, idx).to(o.device, non_blocking=cuda)
