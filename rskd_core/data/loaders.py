"""Two ways to feed the trainer, with one interface: ``loader.epoch(e)`` yields :class:`Batch` objects.

* :class:`DeviceLoader` keeps the whole data set on the training device as one tensor, shuffles with a per-epoch
  generator and augments each batch there (crop + flip in one gather). No workers, no host→device copies.
* :class:`TorchLoader` is the classic path for data that does not fit (or image folders): a
  ``torch.utils.data.DataLoader`` with workers, pinned memory and per-sample torchvision transforms.

Both draw their batches from :func:`index_batches` (the same order for the same seed, CS-KD partners included) and
derive their random numbers from (seed, epoch), so an epoch is reproducible on resume without generator state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rskd_core.data.augment import AugmentSpec, augment_batch, to_device
from rskd_core.data.batch import Batch
from rskd_core.data.samplers import ClassTable, IndexBatchSampler, index_batches, num_batches


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
    augment: AugmentSpec | None = None  # DeviceLoader only; TorchLoader takes a transform
    seed: int = 0
    num_workers: int = 0  # TorchLoader only
    pairs: bool = False  # CS-KD: B anchors then B same-class partners per batch
    two_views: bool = False  # DLB: a second augmented view of every image in ``batch.x2``


class _IndexedLoader:
    """What both loaders share: sizes, the step count, class partners and the per-epoch generator."""

    def __init__(self, labels: torch.Tensor, opts: LoaderOptions) -> None:
        self.num_samples = int(labels.shape[0])
        self.opts = opts
        self.table = ClassTable(labels) if opts.pairs else None

    def __len__(self) -> int:
        return num_batches(self.num_samples, self.opts.batch_size)

    def generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(epoch_seed(self.opts.seed, epoch))


class DeviceLoader(_IndexedLoader):
    """The data set as tensors on the device; batched shuffling and augmentation there."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, opts: LoaderOptions) -> None:
        super().__init__(y, opts)
        self.x = x.to(opts.device)
        self.y = y.to(opts.device)
        self.augment = opts.augment if opts.augment is not None and opts.augment.active else None

    def epoch(self, epoch: int) -> Iterator[Batch]:
        g = self.generator(epoch)
        o = self.opts
        for cpu_idx in index_batches(self.num_samples, o.batch_size, shuffle=o.shuffle, generator=g, pairs=self.table):
            idx = to_device(cpu_idx, o.device)
            raw = self.x[idx]
            x = raw if self.augment is None else augment_batch(raw, self.augment, g)
            x2 = None
            if o.two_views:
                x2 = raw if self.augment is None else augment_batch(raw, self.augment, g)
            yield Batch(x, self.y[idx], idx, x2)


class TensorPairs(Dataset[tuple[torch.Tensor, int]]):
    """(image, label) items of in-memory tensors."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


class _Indexed(Dataset[tuple[Any, ...]]):
    """Applies the transform (twice for two views) and adds the sample index."""

    def __init__(self, base: Dataset[tuple[Any, int]], transform: Callable[[Any], torch.Tensor], two_views: bool):
        self.base, self.transform, self.two_views = base, transform, two_views

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        image, label = self.base[i]
        x = self.transform(image)
        if self.two_views:
            return x, self.transform(image), label, i
        return x, label, i


def tensor_transform(augment: AugmentSpec | None, size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-sample torchvision ops equivalent to :func:`augment_batch` (zero-padded random crop, flip)."""
    if augment is None or not augment.active:
        return lambda t: t
    from torchvision.transforms import v2

    ops: list[torch.nn.Module] = []
    if augment.crop_padding:
        ops.append(v2.RandomCrop(size, padding=augment.crop_padding))
    if augment.flip:
        ops.append(v2.RandomHorizontalFlip())
    return v2.Compose(ops)


class TorchLoader(_IndexedLoader):
    """A DataLoader with workers and pinned memory over any (image, label) data set and a per-sample transform."""

    def __init__(
        self,
        base: Dataset[tuple[Any, int]],
        labels: torch.Tensor,
        transform: Callable[[Any], torch.Tensor],
        opts: LoaderOptions,
    ) -> None:
        super().__init__(labels, opts)
        self.dataset = _Indexed(base, transform, opts.two_views)

    @classmethod
    def from_tensors(cls, x: torch.Tensor, y: torch.Tensor, opts: LoaderOptions) -> TorchLoader:
        return cls(TensorPairs(x, y), y, tensor_transform(opts.augment, int(x.shape[-1])), opts)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        o = self.opts
        g = self.generator(epoch)
        sampler = IndexBatchSampler(self.num_samples, o.batch_size, o.shuffle, epoch_seed(o.seed, epoch, 1), self.table)
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=o.num_workers,
            pin_memory=o.device.type == "cuda",
            generator=g,
        )
        cuda = o.device.type == "cuda"
        for items in loader:
            if o.two_views:
                x, x2, y, idx = items
                yield Batch(x, y, idx, x2).to(o.device, non_blocking=cuda)
            else:
                x, y, idx = items
                yield Batch(x, y, idx).to(o.device, non_blocking=cuda)
