"""Harder real tasks: a stratified training subset and symmetric label noise, fixed by data.subset_seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from rskd_core.config import DataConfig
from rskd_core.data import build_data
from rskd_core.data.datasets import DataError, load_dataset
from rskd_core.data.subsets import apply_train_options, symmetric_noise

CPU = torch.device("cpu")


def _digits(**kw: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    cfg = DataConfig(name="digits", **kw)  # type: ignore[arg-type]
    ds = apply_train_options(load_dataset(cfg, None), cfg)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test  # type: ignore[union-attr]


def test_train_per_class_keeps_that_many_real_images_of_each_class_and_the_test_set() -> None:
    x_full, y_full, xt_full, yt_full = _digits()
    x, y, xt, yt = _digits(train_per_class=20)
    assert np.bincount(y.numpy()).tolist() == [20] * 10
    torch.testing.assert_close(xt, xt_full)
    torch.testing.assert_close(yt, yt_full)
    # every kept image is one of the training images, with its own label
    rows = {tuple(r.tolist()): int(label) for r, label in zip(x_full.flatten(1), y_full, strict=True)}
    assert all(rows[tuple(r.tolist())] == int(label) for r, label in zip(x.flatten(1), y, strict=True))


def test_train_fraction_is_stratified() -> None:
    _, y_full, _, _ = _digits()
    _, y, _, _ = _digits(train_fraction=0.25)
    full, part = np.bincount(y_full.numpy()), np.bincount(y.numpy())
    assert np.all(np.abs(part - 0.25 * full) <= 0.5 + 1e-9)


def test_label_noise_flips_that_fraction_to_other_classes_on_the_training_split_only() -> None:
    x_full, y_full, _, yt_full = _digits()
    x, y, _, yt = _digits(label_noise=0.4)
    torch.testing.assert_close(x, x_full)  # same images, same order
    torch.testing.assert_close(yt, yt_full)  # the test set stays clean
    flipped = (y != y_full).float().mean().item()
    n = y.shape[0]
    assert abs(flipped - 0.4) < 3 * (0.4 * 0.6 / n) ** 0.5  # binomial, 3 standard errors
    assert int(y.min()) >= 0 and int(y.max()) <= 9


def test_noise_never_keeps_the_label_when_it_flips() -> None:
    labels = np.zeros(1000, dtype=np.int64)
    noisy = symmetric_noise(labels, 1.0 - 1e-12, 10, np.random.default_rng(0))
    assert np.all(noisy != 0)
    assert set(np.unique(noisy)) == set(range(1, 10))


def test_the_subset_and_noise_depend_on_subset_seed_not_on_the_run_seed() -> None:
    def labels(seed: int, subset_seed: int) -> torch.Tensor:
        cfg = DataConfig(name="digits", train_per_class=30, label_noise=0.3, subset_seed=subset_seed)
        bundle = build_data(cfg, device=CPU, needs=_needs(), eval_batch_size=64, seed=seed, data_root=None)
        return bundle.info.train_labels

    torch.testing.assert_close(labels(0, 0), labels(7, 0))
    assert not torch.equal(labels(0, 0), labels(0, 1))


def _needs():  # type: ignore[no-untyped-def]
    from rskd_core.data import LoaderNeeds

    return LoaderNeeds(batch_size=32)


def test_bad_subset_settings_say_what_to_change() -> None:
    with pytest.raises(ValidationError, match="not both"):
        DataConfig(name="digits", train_per_class=10, train_fraction=0.5)
    with pytest.raises(ValidationError):
        DataConfig(name="digits", label_noise=1.0)
    with pytest.raises(DataError, match="lower it to at most"):
        _digits(train_per_class=1000)
