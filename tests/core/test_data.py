"""Data sets and loaders: the fixed digits split, CIFAR from a pickle folder, batched augmentation, index coverage."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rskd_core.config import DataConfig
from rskd_core.data import (
    AugmentSpec,
    DataError,
    DeviceLoader,
    LoaderNeeds,
    LoaderOptions,
    TorchLoader,
    build_data,
    load_dataset,
)
from rskd_core.data.augment import augment_batch


def test_digits_is_a_fixed_stratified_split() -> None:
    a = load_dataset(DataConfig(name="digits"), None)
    b = load_dataset(DataConfig(name="digits"), None)
    assert a.x_train.shape == (1438, 1, 8, 8) and a.x_test.shape == (359, 1, 8, 8)
    assert torch.equal(a.y_test, b.y_test) and torch.equal(a.x_train, b.x_train)
    counts = torch.bincount(a.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 of each digit
    assert a.x_train.mean().abs() < 1e-4 and (a.x_train.std() - 1).abs() < 1e-2
    up = load_dataset(DataConfig(name="digits", image_size=16), None)
    assert up.x_train.shape == (1438, 1, 16, 16)
    assert a.default_augment == AugmentSpec(crop_padding=1, flip=False)  # no flips: a mirrored 2 is not a 2
    assert not set(a.y_train.tolist()) ^ set(range(10))


def test_digits_are_scikit_learns_digits() -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    ds = load_dataset(DataConfig(name="digits"), None)
    assert len(ds.y_train) + len(ds.y_test) == len(bunch.target) == 1797
    counts = torch.bincount(torch.cat([ds.y_train, ds.y_test]), minlength=10)
    assert counts.tolist() == np.bincount(bunch.target, minlength=10).tolist()


def _write_cifar(root: Path, name: str, n_train: int = 20, n_test: int = 10) -> None:
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for i in range(1, 6):
            data = {b"data": rng.integers(0, 256, (n_train, 3072), dtype=np.uint8), b"labels": [i % 10] * n_train}
            (folder / f"data_batch_{i}").write_bytes(pickle.dumps(data))
        test = {b"data": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8), b"labels": list(range(n_test))}
        (folder / "test_batch").write_bytes(pickle.dumps(test))
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        train = {b"data": rng.integers(0, 256, (n_train, 3072), dtype=np.uint8), b"fine_labels": [99] * n_train}
        (folder / "train").write_bytes(pickle.dumps(train))
        test = {b"data": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8), b"fine_labels": [5] * n_test}
        (folder / "test").write_bytes(pickle.dumps(test))


@pytest.mark.parametrize(("name", "classes", "n_train"), [("cifar10", 10, 100), ("cifar100", 100, 20)])
def test_cifar_reads_the_python_pickle_layout(tmp_path: Path, name: str, classes: int, n_train: int) -> None:
    _write_cifar(tmp_path, name)
    ds = load_dataset(DataConfig(name=name), tmp_path)  # type: ignore[arg-type]
    assert ds.num_classes == classes
    assert ds.x_train.shape == (n_train, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32)
    assert ds.default_augment == AugmentSpec(4, True)


def test_missing_cifar_names_the_expected_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar-100-python.*RSKD_DATA_ROOT"):
        load_dataset(DataConfig(name="cifar100"), tmp_path)
    with pytest.raises(DataError, match="set RSKD_DATA_ROOT"):
        load_dataset(DataConfig(name="cifar10"), None)


def test_augment_batch_is_a_padded_crop_and_a_flip() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(5)
    out = augment_batch(x, AugmentSpec(crop_padding=2, flip=True), g)
    # replay the same draws by hand: offsets (2, n) then flip coins
    g = torch.Generator().manual_seed(5)
    offsets = torch.randint(0, 5, (2, 2), generator=g)
    flips = torch.rand(2, generator=g) < 0.5
    padded = F.pad(x, (2, 2, 2, 2))
    for i in range(2):
        r, c = offsets[0, i].item(), offsets[1, i].item()
        ref = padded[i, :, r : r + 4, c : c + 4]
        if flips[i]:
            ref = ref.flip(2)
        assert torch.equal(out[i], ref)


def test_device_loader_visits_every_sample_once_per_epoch_reproducibly() -> None:
    x, y = torch.randn(50, 1, 4, 4), torch.arange(50) % 5
    opts = LoaderOptions(16, torch.device("cpu"), shuffle=True, augment=AugmentSpec(1, True), seed=3)
    loader = DeviceLoader(x, y, opts)
    assert len(loader) == 4
    batches = list(loader.epoch(0))
    idx = torch.cat([b.idx for b in batches])
    assert sorted(idx.tolist()) == list(range(50))
    for b in batches:
        assert torch.equal(b.y, y[b.idx])
    again = list(loader.epoch(0))
    assert all(torch.equal(a.x, b.x) for a, b in zip(batches, again, strict=True))
    other = torch.cat([b.idx for b in loader.epoch(1)])
    assert not torch.equal(idx, other)


def test_torch_loader_yields_indexed_batches() -> None:
    x, y = torch.randn(30, 3, 8, 8), torch.arange(30) % 3
    opts = LoaderOptions(8, torch.device("cpu"), shuffle=True, augment=AugmentSpec(2, True), seed=1)
    loader = TorchLoader.from_tensors(x, y, opts)
    batches = list(loader.epoch(0))
    assert len(batches) == len(loader) == 4
    idx = torch.cat([b.idx for b in batches])
    assert sorted(idx.tolist()) == list(range(30))
    assert all(torch.equal(b.y, y[b.idx]) for b in batches)


def test_build_data_picks_the_loader_and_the_augmentation() -> None:
    cfg = DataConfig(name="synthetic", image_size=8, train_size=32, test_size=16, loader="dataloader", num_workers=0)
    bundle = build_data(
        cfg, device=torch.device("cpu"), needs=LoaderNeeds(8), eval_batch_size=16, seed=0, data_root=None
    )
    assert isinstance(bundle.train, TorchLoader)
    auto = build_data(
        DataConfig(name="synthetic", image_size=8, train_size=32, test_size=16, augment={"flip": True}),  # type: ignore[arg-type]
        device=torch.device("cpu"),
        needs=LoaderNeeds(8),
        eval_batch_size=16,
        seed=0,
        data_root=None,
    )
    assert isinstance(auto.train, DeviceLoader)
    assert auto.train.augment == AugmentSpec(0, True)


def test_a_trailing_single_sample_batch_is_dropped() -> None:
    x, y = torch.randn(33, 1, 4, 4), torch.arange(33) % 3
    for cls in (DeviceLoader, TorchLoader):
        opts = LoaderOptions(16, torch.device("cpu"), shuffle=True)
        loader = DeviceLoader(x, y, opts) if cls is DeviceLoader else TorchLoader.from_tensors(x, y, opts)
        assert len(loader) == 2
        assert [len(b) for b in loader.epoch(0)] == [16, 16]


def make_image_folder(root: Path, classes: int = 3, per_class: int = 6, size: int = 40) -> Path:
    """train/ and val/ of class sub-folders with small PNGs whose colour depends on the class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 2)):
        for c in range(classes):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                base = np.zeros((size, size, 3), dtype=np.uint8)
                base[..., c % 3] = 180
                noise = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                Image.fromarray(base + noise).save(folder / f"{i}.png")
    return root


def test_image_folder_through_dataloader_workers(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "tiny")
    cfg = DataConfig(name="imagefolder", root="tiny", image_size=32, num_workers=2)
    bundle = build_data(
        cfg, device=torch.device("cpu"), needs=LoaderNeeds(4, pairs=True), eval_batch_size=4, seed=0, data_root=tmp_path
    )
    assert bundle.info.num_classes == 3 and bundle.info.train_size == 18 and bundle.info.test_size == 6
    assert isinstance(bundle.train, TorchLoader)
    batches = list(bundle.train.epoch(0))
    assert len(batches) == 5
    for b in batches:
        n = len(b) // 2
        assert b.x.shape[1:] == (3, 32, 32)
        assert torch.equal(b.y[:n], b.y[n:])  # CS-KD pairs through the DataLoader path too
    test = next(iter(bundle.test.epoch(0)))
    assert test.x.shape == (4, 3, 32, 32)
    with pytest.raises(DataError, match="train"):
        load_dataset(DataConfig(name="imagefolder", root="missing"), tmp_path)


def test_two_views_are_two_augmentations_of_the_same_images() -> None:
    x, y = torch.randn(12, 3, 8, 8), torch.arange(12) % 3
    opts = LoaderOptions(4, torch.device("cpu"), shuffle=True, augment=AugmentSpec(2, True), seed=0, two_views=True)
    for loader in (DeviceLoader(x, y, opts), TorchLoader.from_tensors(x, y, opts)):
        for b in loader.epoch(0):
            assert b.x2 is not None and b.x2.shape == b.x.shape
            assert not torch.equal(b.x, b.x2)
            # both views are crops of the same image: their centres overlap heavily
            assert torch.equal(b.y, y[b.idx])
