"""Data: registered data sets, the device-resident loader and the DataLoader path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rskd_core.config import DataConfig
from rskd_core.data.augment import AugmentSpec
from rskd_core.data.batch import Batch
from rskd_core.data.datasets import DATASETS, ArrayDataset, DataError, FolderDataset, load_dataset
from rskd_core.data.loaders import DeviceLoader, Loader, LoaderOptions, TorchLoader, epoch_seed
from rskd_core.data.subsets import apply_train_options

# Data sets below this size (bytes of the float32 training tensor) go to the device when data.loader=auto.
DEVICE_RESIDENT_LIMIT = 4 * 1024**3
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DataInfo:
    num_classes: int
    channels: int
    train_labels: torch.Tensor
    test_size: int

    @property
    def train_size(self) -> int:
        return int(self.train_labels.shape[0])


@dataclass(frozen=True)
class DataBundle:
    info: DataInfo
    train: Loader
    test: Loader


@dataclass(frozen=True)
class LoaderNeeds:
    """What the method/teacher rule needs from the training loader besides plain batches."""

    batch_size: int
    pairs: bool = False
    two_views: bool = False


def resolve_augment(cfg: DataConfig, default: AugmentSpec) -> AugmentSpec:
    a = cfg.augment
    return AugmentSpec(
        crop_padding=default.crop_padding if a.crop_padding is None else a.crop_padding,
        flip=default.flip if a.flip is None else a.flip,
    )


def _array_bundle(
    ds: ArrayDataset, cfg: DataConfig, device: torch.device, needs: LoaderNeeds, eval_batch: int, seed: int
) -> DataBundle:
    augment = resolve_augment(cfg, ds.default_augment)
    use_device = cfg.loader == "device" or (
        cfg.loader == "auto" and ds.x_train.numel() * ds.x_train.element_size() <= DEVICE_RESIDENT_LIMIT
    )
    train_opts = LoaderOptions(
        needs.batch_size,
        device,
        shuffle=True,
        augment=augment,
        seed=seed,
        num_workers=cfg.num_workers,
        pairs=needs.pairs,
        two_views=needs.two_views,
    )
    test_opts = LoaderOptions(eval_batch, device, shuffle=False)
    if use_device:
        train: Loader = DeviceLoader(ds.x_train, ds.y_train, train_opts)
        test: Loader = DeviceLoader(ds.x_test, ds.y_test, test_opts)
    else:
        train = TorchLoader.from_tensors(ds.x_train, ds.y_train, train_opts)
        test = TorchLoader.from_tensors(ds.x_test, ds.y_test, test_opts)
    info = DataInfo(ds.num_classes, ds.channels, ds.y_train, int(ds.y_test.shape[0]))
    return DataBundle(info, train, test)


def folder_transforms(size: int, augment: AugmentSpec) -> tuple[Any, Any]:
    """Training: RandomResizedCrop + flip; evaluation: Resize(size·256/224) + CenterCrop; ImageNet mean/std."""
    from torchvision.transforms import v2

    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    train_ops: list[Any] = [v2.RandomResizedCrop(size)]
    if augment.flip:
        train_ops.append(v2.RandomHorizontalFlip())
    test_ops: list[Any] = [v2.Resize(round(size * 256 / 224)), v2.CenterCrop(size)]
    return v2.Compose([*train_ops, *tail]), v2.Compose([*test_ops, *tail])


def _folder_bundle(
    ds: FolderDataset, cfg: DataConfig, device: torch.device, needs: LoaderNeeds, eval_batch: int, seed: int
) -> DataBundle:
    if cfg.loader == "device":
        raise DataError("imagefolder data is read by DataLoader workers: use data.loader=auto or dataloader")
    train_tf, test_tf = folder_transforms(ds.image_size, resolve_augment(cfg, ds.default_augment))
    opts = LoaderOptions(
        needs.batch_size,
        device,
        shuffle=True,
        seed=seed,
        num_workers=cfg.num_workers,
        pairs=needs.pairs,
        two_views=needs.two_views,
    )
    train = TorchLoader(ds.train, ds.y_train, train_tf, opts)
    test = TorchLoader(
        ds.test, ds.y_test, test_tf, LoaderOptions(eval_batch, device, False, num_workers=cfg.num_workers)
    )
    info = DataInfo(ds.num_classes, 3, ds.y_train, len(ds.test))
    return DataBundle(info, train, test)


def build_data(
    cfg: DataConfig,
    *,
    device: torch.device,
    needs: LoaderNeeds,
    eval_batch_size: int,
    seed: int,
    data_root: Path | None,
) -> DataBundle:
    ds = apply_train_options(load_dataset(cfg, data_root), cfg)
    if isinstance(ds, FolderDataset):
        return _folder_bundle(ds, cfg, device, needs, eval_batch_size, seed)
    return _array_bundle(ds, cfg, device, needs, eval_batch_size, seed)


__all__ = [
    "DATASETS",
    "ArrayDataset",
    "AugmentSpec",
    "Batch",
    "DataBundle",
    "DataError",
    "DataInfo",
    "DeviceLoader",
    "FolderDataset",
    "Loader",
    "LoaderNeeds",
    "LoaderOptions",
    "TorchLoader",
    "build_data",
    "epoch_seed",
    "load_dataset",
    "resolve_augment",
]
