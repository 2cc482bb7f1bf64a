"""Index batches for both loaders: a shuffled pass over the data, optionally with CS-KD's class partners.

CS-KD (Yun et al., CVPR 2020) draws, for each of the B anchors of a batch, a partner uniformly among the training
samples of the anchor's class (possibly the anchor itself); the batch is the B anchors followed by their B partners.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


class ClassTable:
    """For each class, the training indices of that class, so that partners are drawn with one gather."""

    def __init__(self, labels: torch.Tensor) -> None:
        labels = labels.cpu()
        self.sorted_idx = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels)
        self.count = counts
        self.start = torch.cumsum(counts, 0) - counts
        self.labels = labels

    def partners(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One same-class partner per anchor, uniform over the class (the anchor itself included)."""
        cls = self.labels[anchors]
        offset = (torch.rand(len(anchors), generator=generator) * self.count[cls]).long()
        offset = torch.minimum(offset, self.count[cls] - 1)
        return self.sorted_idx[self.start[cls] + offset]


def num_batches(num_samples: int, batch_size: int) -> int:
    """Batches per epoch; a trailing batch of one sample is dropped (BatchNorm cannot train on it)."""
    return num_samples // batch_size if num_samples % batch_size == 1 else math.ceil(num_samples / batch_size)


def index_batches(
    num_samples: int,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator,
    pairs: ClassTable | None = None,
) -> Iterator[torch.Tensor]:
    """CPU index tensors, one per batch: B anchors, followed by their B class partners when ``pairs`` is given."""
    order = torch.randperm(num_samples, generator=generator) if shuffle else torch.arange(num_samples)
    for step in range(num_batches(num_samples, batch_size)):
        idx = order[step * batch_size : (step + 1) * batch_size]
        if pairs is not None:
            idx = torch.cat([idx, pairs.partners(idx, generator)])
        yield idx


class IndexBatchSampler:
    """``index_batches`` as a DataLoader ``batch_sampler``, a fresh generator per epoch."""

    def __init__(
        self, num_samples: int, batch_size: int, shuffle: bool, seed: int, pairs: ClassTable | None = None
    ) -> None:
        self.num_samples, self.batch_size, self.shuffle, self.seed, self.pairs = (
            num_samples,
            batch_size,
            shuffle,
            seed,
            pairs,
        )

    def __len__(self) -> int:
        return num_batches(self.num_samples, self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed)
        for idx in index_batches(
            self.num_samples, self.batch_size, shuffle=self.shuffle, generator=g, pairs=self.pairs
        ):
            yield idx.tolist()
