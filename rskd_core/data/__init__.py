"""Data: registered data sets, the device-resident loader and the DataLoader path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rskd_core.config import DataConfig
from rskd_core.data.augment import AugmentSpec
from rskd_core.data.batch import Batch
from rskd_core.data.datasets import DATASETS, ArrayDataset, DataError, load_dataset
from rskd_core.data.loaders import DeviceLoader, Loader, LoaderOptions, TorchLoader, epoch_seed

# Data sets below this size (bytes of the float32 training tensor) go to the device when data.loader=auto.
DEVICE_RESIDENT_LIMIT = 4 * 1024**3


@dataclass(frozen=True)
class DataBundle:
    dataset: ArrayDataset
    train: Loader
    test: Loader


def resolve_augment(cfg: DataConfig, default: AugmentSpec) -> AugmentSpec:
    a = cfg.augment
    return AugmentSpec(
        crop_padding=default.crop_padding if a.crop_padding is None else a.crop_padding,
        flip=default.flip if a.flip is None else a.flip,
    )


def build_data(
    cfg: DataConfig,
    *,
    device: torch.device,
    train_batch_size: int,
    eval_batch_size: int,
    seed: int,
    data_root: Path | None,
) -> DataBundle:
    ds = load_dataset(cfg, data_root)
    augment = resolve_augment(cfg, ds.default_augment)
    use_device = cfg.loader == "device" or (
        cfg.loader == "auto" and ds.x_train.numel() * ds.x_train.element_size() <= DEVICE_RESIDENT_LIMIT
    )
    cls: type[DeviceLoader] | type[TorchLoader] = DeviceLoader if use_device else TorchLoader
    train_opts = LoaderOptions(
        train_batch_size, device, shuffle=True, augment=augment, seed=seed, num_workers=cfg.num_workers
    )
    train = cls(ds.x_train, ds.y_train, train_opts)
    test = cls(ds.x_test, ds.y_test, LoaderOptions(eval_batch_size, device, shuffle=False))
    return DataBundle(ds, train, test)


__all__ = [
    "DATASETS",
    "ArrayDataset",
    "AugmentSpec",
    "Batch",
    "DataBundle",
    "DataError",
    "DeviceLoader",
    "Loader",
    "LoaderOptions",
    "TorchLoader",
    "build_data",
    "epoch_seed",
    "load_dataset",
    "resolve_augment",
]
