"""On-disk torchvision sets, read from a tiny data set written here in torchvision's real (idx) format."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from robustcollapse.data import load_dataset
from robustcollapse.errors import DataNotFoundError


def write_idx(path: Path, array: np.ndarray) -> None:
    """The MNIST idx format: big-endian magic (0x08 = uint8, ndim), dims, then the bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist_like(root: Path, folder: str, n_train: int = 40, n_test: int = 20) -> tuple[np.ndarray, np.ndarray]:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (n_train, 28, 28))
    y_train = np.arange(n_train) % 10
    write_idx(raw / "train-images-idx3-ubyte", x_train)
    write_idx(raw / "train-labels-idx1-ubyte", y_train)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10)
    return x_train, y_train


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashionmnist", "FashionMNIST")])
def test_reads_torchvision_layout(tmp_path, name, folder):
    x_train, y_train = make_mnist_like(tmp_path, folder)
    data = load_dataset(name, tmp_path)
    assert data.image_shape == (1, 28, 28)
    assert len(data.train) == 40 and len(data.test) == 20
    assert data.train.x.dtype == torch.uint8
    assert torch.equal(data.train.x[:, 0], torch.from_numpy(x_train.astype(np.uint8)))
    assert torch.equal(data.train.y, torch.from_numpy(y_train).long())
    assert data.num_classes == 10


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "mnist", "fashionmnist"])
def test_missing_set_is_a_clear_error_naming_the_path(tmp_path, name):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset(name, tmp_path / "empty")
    message = str(info.value)
    assert str(tmp_path / "empty") in message and "--download" in message and "\n" not in message


def test_embedded_sets_are_fixed_stratified_splits():
    data = load_dataset("mnist5k")
    assert (len(data.train), len(data.test)) == (4000, 1000)
    assert torch.bincount(data.test.y).tolist() == [100] * 10
    again = load_dataset("mnist5k")
    assert torch.equal(data.test.x, again.test.x)
    digits = load_dataset("digits")
    assert digits.image_shape == (1, 8, 8) and int(digits.train.x.max()) == 255
