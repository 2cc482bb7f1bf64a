"""Data sets as tensors: digits (ships with scikit-learn), synthetic, and CIFAR-10/100 from the standard python-pickle
folders under the data root. Nothing is downloaded unless ``data.download`` is set.

Every builder returns normalised float32 (N, C, H, W) train and test tensors plus int64 labels; the same split for
every run (a fixed seed, independent of the run's seed), so that seeds vary the training only.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rskd_core.config import DataConfig
from rskd_core.data.augment import AugmentSpec
from rskd_core.registry import Registry

SPLIT_SEED = 20250317  # fixed: the train/test split of digits and the synthetic prototypes never depend on run seeds


class DataError(ValueError):
    """A data set that cannot be loaded, with the path or setting to fix."""


@dataclass(frozen=True)
class ArrayDataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    default_augment: AugmentSpec

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])


@dataclass(frozen=True)
class FolderDataset:
    """Images in class sub-folders (torchvision ``ImageFolder``), read by DataLoader workers."""

    name: str
    train: Any  # torchvision.datasets.ImageFolder
    test: Any
    num_classes: int
    image_size: int
    default_augment: AugmentSpec

    @property
    def y_train(self) -> torch.Tensor:
        return torch.tensor(self.train.targets, dtype=torch.int64)

    @property
    def y_test(self) -> torch.Tensor:
        return torch.tensor(self.test.targets, dtype=torch.int64)


DatasetBuilder = Callable[[DataConfig, Path | None], "ArrayDataset | FolderDataset"]
DATASETS: Registry[DatasetBuilder] = Registry("dataset")


def _normalize(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean/std of the training set, applied to both splits."""
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def _resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or size == x.shape[-1]:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _digits_file() -> Path:
    """scikit-learn's copy of the UCI digits (1,797 × 64 pixels + label), found without importing scikit-learn
    (which costs a second per process, paid by every sweep trial)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError("digits needs scikit-learn installed (it ships the data set)")
    return Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a fixed stratified split: round(test_fraction·n_c) samples of each class c go to the test set."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = round(test_fraction * len(idx))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@DATASETS.register("digits")
def load_digits_dataset(cfg: DataConfig, root: Path | None = None) -> ArrayDataset:
    """scikit-learn's 1,797 real 8×8 handwritten digits (values 0..16), a fixed stratified 80/20 split."""
    table = np.loadtxt(_digits_file(), delimiter=",", dtype=np.float32)
    images = table[:, :64].reshape(-1, 8, 8) / 16.0
    labels = table[:, 64].astype(np.int64)
    tr, te = stratified_split(labels, 0.2, SPLIT_SEED)
    x = torch.from_numpy(images).unsqueeze(1)
    x_tr, x_te = _normalize(_resize(x[tr], cfg.image_size), _resize(x[te], cfg.image_size))
    y = torch.from_numpy(labels)
    return ArrayDataset("digits", x_tr, y[tr], x_te, y[te], 10, AugmentSpec(crop_padding=1, flip=False))


@DATASETS.register("synthetic")
def load_synthetic_dataset(cfg: DataConfig, root: Path | None = None) -> ArrayDataset:
    """Gaussian images around one random prototype per class: learnable, any shape, for shape and speed tests."""
    g = torch.Generator().manual_seed(SPLIT_SEED)
    size = cfg.image_size or 32
    protos = torch.randn(cfg.num_classes, cfg.channels, size, size, generator=g)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % cfg.num_classes
        y = y[torch.randperm(n, generator=g)]
        return protos[y] + 1.5 * torch.randn(n, cfg.channels, size, size, generator=g), y

    x_tr, y_tr = draw(cfg.train_size)
    x_te, y_te = draw(cfg.test_size)
    x_tr, x_te = _normalize(x_tr, x_te)
    return ArrayDataset("synthetic", x_tr, y_tr, x_te, y_te, cfg.num_classes, AugmentSpec(crop_padding=0, flip=False))


_CIFAR = {
    # name: (folder, train files, test file, label key, classes)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], "test", b"fine_labels", 100),
}


def _read_cifar_file(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as f:
        entry = pickle.load(f, encoding="bytes")  # the standard CIFAR format; only read from the configured data root
    data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data, np.asarray(entry[label_key], dtype=np.int64)


def _load_cifar(name: str, cfg: DataConfig, root: Path | None) -> ArrayDataset:
    folder_name, train_files, test_file, label_key, classes = _CIFAR[name]
    folder = resolve_folder(cfg, root, folder_name)
    missing = [f for f in [*train_files, test_file] if not (folder / f).is_file()]
    if missing and cfg.download:
        _download_cifar(name, folder.parent)
        missing = [f for f in [*train_files, test_file] if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"{name} not found: expected the python-pickle files {missing} in {folder} "
            f"(the standard {folder_name} folder); put it under RSKD_DATA_ROOT or set data.root"
        )
    parts = [_read_cifar_file(folder / f, label_key) for f in train_files]
    x_tr = torch.from_numpy(np.concatenate([p[0] for p in parts])).float().div_(255)
    y_tr = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    x_te_np, y_te_np = _read_cifar_file(folder / test_file, label_key)
    x_te = torch.from_numpy(x_te_np).float().div_(255)
    x_tr, x_te = _normalize(_resize(x_tr, cfg.image_size), _resize(x_te, cfg.image_size))
    return ArrayDataset(name, x_tr, y_tr, x_te, torch.from_numpy(y_te_np), classes, AugmentSpec(4, True))


def _download_cifar(name: str, dest: Path) -> None:  # pragma: no cover - needs internet, never in tests
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    cls(str(dest), train=True, download=True)


@DATASETS.register("cifar10")
def load_cifar10(cfg: DataConfig, root: Path | None = None) -> ArrayDataset:
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` (data_batch_1..5, test_batch)."""
    return _load_cifar("cifar10", cfg, root)


@DATASETS.register("cifar100")
def load_cifar100(cfg: DataConfig, root: Path | None = None) -> ArrayDataset:
    """CIFAR-100 from ``<root>/cifar-100-python`` (train, test; fine labels)."""
    return _load_cifar("cifar100", cfg, root)


def resolve_folder(cfg: DataConfig, root: Path | None, default_name: str) -> Path:
    """``data.root`` (relative to the data root, or absolute when no data root is set) or ``<data root>/<name>``.

    With a data root (RSKD_DATA_ROOT), the folder must resolve inside it: ``..``, absolute paths elsewhere and
    symlinks that lead out are refused.
    """
    if root is None:
        if cfg.root is not None and Path(cfg.root).is_absolute():
            return Path(cfg.root)
        raise DataError(
            f"{cfg.name} needs a data root: set RSKD_DATA_ROOT (expected <root>/{cfg.root or default_name}) "
            "or an absolute data.root"
        )
    folder = root / (cfg.root or default_name)
    if not folder.resolve().is_relative_to(root.resolve()):
        raise DataError(
            f"data.root {cfg.root!r} leads outside RSKD_DATA_ROOT ({root}); give a folder inside it, relative to it"
        )
    return folder


@DATASETS.register("imagefolder")
def load_image_folder(cfg: DataConfig, root: Path | None = None) -> FolderDataset:
    """``train/`` and ``val/`` folders of class sub-folders (TinyImageNet, CUB-200, Stanford Dogs, MIT67 layouts),
    under ``data.root``. ``data.image_size`` sets the crop (224 by default; 32 for TinyImageNet as in CS-KD, FRSKD
    and DLB)."""
    from torchvision.datasets import ImageFolder

    folder = resolve_folder(cfg, root, "imagefolder")
    missing = [d for d in ("train", "val") if not (folder / d).is_dir()]
    if missing:
        raise DataError(
            f"imagefolder: expected {', '.join(str(folder / d) for d in missing)} with one sub-folder per class"
        )
    train, test = ImageFolder(str(folder / "train")), ImageFolder(str(folder / "val"))
    if train.classes != test.classes:
        raise DataError(f"imagefolder: train/ and val/ in {folder} must have the same class folders")
    return FolderDataset("imagefolder", train, test, len(train.classes), cfg.image_size or 224, AugmentSpec(0, True))


def load_dataset(cfg: DataConfig, root: Path | None) -> ArrayDataset | FolderDataset:
    return DATASETS.get(cfg.name)(cfg, root)
