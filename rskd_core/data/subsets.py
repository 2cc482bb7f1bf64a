"""Harder tasks from the same real data: a stratified training subset and symmetric label noise.

Both are drawn from ``data.subset_seed`` (mixed with a fixed constant), never from the run's seed: every trial of a
sweep trains on the same images with the same noisy labels, so seeds vary the training only and stay pairable. The
test set is never touched. Normalisation statistics stay those of the full training split.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from rskd_core.config import DataConfig
from rskd_core.data.datasets import ArrayDataset, DataError, FolderDataset

SUBSET_SEED_BASE = 0x5EED5  # mixed with data.subset_seed so the subset is not the digits split's permutation


def has_train_options(cfg: DataConfig) -> bool:
    return cfg.train_per_class is not None or cfg.train_fraction is not None or cfg.label_noise > 0


def stratified_subset(labels: np.ndarray, cfg: DataConfig, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``train_per_class`` images (or ``train_fraction`` of the images, at least 1) per class."""
    keep = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if cfg.train_per_class is not None:
            if cfg.train_per_class > len(idx):
                raise DataError(
                    f"data.train_per_class={cfg.train_per_class} but class {int(c)} has only {len(idx)} training "
                    f"images; lower it to at most {int(np.bincount(labels).min())}"
                )
            n = cfg.train_per_class
        else:
            n = max(1, round((cfg.train_fraction or 1.0) * len(idx)))
        keep.append(idx[:n])
    return np.sort(np.concatenate(keep))


def symmetric_noise(labels: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Each label, with probability ``rate``, replaced by one of the other K−1 classes drawn uniformly."""
    flip = rng.random(labels.shape[0]) < rate
    shift = rng.integers(1, num_classes, size=labels.shape[0])
    return np.where(flip, (labels + shift) % num_classes, labels)


def apply_train_options(ds: ArrayDataset | FolderDataset, cfg: DataConfig) -> ArrayDataset | FolderDataset:
    """The data set with its training split subsampled and/or its training labels noised, as ``cfg`` asks."""
    if not has_train_options(cfg):
        return ds
    if not isinstance(ds, ArrayDataset):
        raise DataError(
            "data.train_per_class, data.train_fraction and data.label_noise work on tensor data sets (digits, "
            "synthetic, cifar10, cifar100), not on imagefolder; remove them or use one of those"
        )
    rng = np.random.default_rng([SUBSET_SEED_BASE, cfg.subset_seed])
    labels = ds.y_train.numpy()
    keep = stratified_subset(labels, cfg, rng)
    noisy = symmetric_noise(labels[keep], cfg.label_noise, ds.num_classes, rng) if cfg.label_noise > 0 else labels[keep]
    index = torch.from_numpy(keep)
    return dataclasses.replace(ds, x_train=ds.x_train[index], y_train=torch.from_numpy(noisy).to(torch.int64))
