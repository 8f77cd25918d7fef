"""Data sets read from --data-root in torchvision's on-disk layouts, by our own readers.

torchvision's classes refuse any file whose MD5 differs from the official release, and then report the folder as
missing; ours check what matters instead — the layout, array shapes, dtypes and the label range — so a re-packed
or reduced copy (and the small stand-ins the tests write) reads, and a file that is there but wrong is reported
as `unreadable: <why>`. Nothing is downloaded unless `--download` is given; then torchvision fetches the official
files (checked by its MD5) and our reader reads them. CIFAR's files are Python pickles: they are read with an
unpickler that only rebuilds numpy arrays, lists, dicts and strings, never arbitrary objects.
"""

from __future__ import annotations

import gzip
import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustcollapse.data.base import Dataset, Split, to_uint8_nchw
from robustcollapse.errors import DataNotFoundError, UserError
from robustcollapse.registry import register


class UnreadableData(UserError):
    """A data file is where it should be but is not what it should be."""


def _unreadable(path: Path, why: str) -> UnreadableData:
    return UnreadableData(f"{path}: unreadable: {why}")


class _ArraysOnly(pickle.Unpickler):
    """Rebuilds what CIFAR's batches hold (numpy arrays, dicts, lists, strings, numbers) and nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, Any]:
    """A CIFAR batch or meta file as a dict with str keys."""
    try:
        obj = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise _unreadable(path, f"not a CIFAR pickle ({exc})") from None
    if not isinstance(obj, dict):
        raise _unreadable(path, f"a CIFAR batch is a dict, this is a {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _field(batch: dict[str, Any], key: str, path: Path) -> Any:
    if key not in batch:
        raise _unreadable(path, f"no {key!r} entry (has {', '.join(map(str, batch))})")
    return batch[key]


def _labels(values: Any, n: int, num_classes: int, path: Path) -> torch.Tensor:
    y = np.asarray(values)
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise _unreadable(path, f"labels must be {n} integers, found shape {y.shape} of {y.dtype}")
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise _unreadable(path, f"labels must lie in 0..{num_classes - 1}, found {y.min()}..{y.max()}")
    return torch.from_numpy(y.astype(np.int64))


def _cifar_images(data: Any, path: Path) -> torch.Tensor:
    x = np.asarray(data)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise _unreadable(path, f"images must be uint8 (N, 3072), found {x.dtype} {x.shape}")
    return torch.from_numpy(x.reshape(-1, 3, 32, 32).copy())


def _cifar_reader(folder: str, files: dict[bool, list[str]], label_key: str, meta: tuple[str, str]):
    def read(root: Path, train: bool) -> tuple[Split, list[str]]:
        base = root / folder
        meta_path = base / meta[0]
        names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in _field(_unpickle(meta_path), meta[1], meta_path)
        ]
        xs, ys = [], []
        for name in files[train]:
            path = base / name
            batch = _unpickle(path)
            x = _cifar_images(_field(batch, "data", path), path)
            xs.append(x)
            ys.append(_labels(_field(batch, label_key, path), len(x), len(names), path))
        return Split(torch.cat(xs), torch.cat(ys)), names

    return read


def _idx(path: Path) -> np.ndarray:
    """An MNIST idx file (optionally .gz): big-endian magic 0x0000 0x08 ndim, the dims, then uint8 data."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise _unreadable(path, "not an idx file of uint8 (magic 0x00 0x00 0x08 ndim)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(dims)):
        raise _unreadable(path, f"header says {dims} but the file has {len(raw) - header} data bytes")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _idx_file(raw: Path, stem: str) -> Path:
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return raw / stem


def _mnist_reader(folder: str, classes: list[str]):
    def read(root: Path, train: bool) -> tuple[Split, list[str]]:
        raw = root / folder / "raw"
        prefix = "train" if train else "t10k"
        images_path, labels_path = (
            _idx_file(raw, f"{prefix}-images-idx3-ubyte"),
            _idx_file(raw, f"{prefix}-labels-idx1-ubyte"),
        )
        images, labels = _idx(images_path), _idx(labels_path)
        if images.ndim != 3:
            raise _unreadable(images_path, f"images must be (N, H, W), found {images.shape}")
        y = _labels(labels, len(images), len(classes), labels_path)
        return Split(to_uint8_nchw(torch.from_numpy(images.copy())), y), list(classes)

    return read


def _svhn_reader(root: Path, train: bool) -> tuple[Split, list[str]]:
    from scipy.io import loadmat

    path = root / ("train_32x32.mat" if train else "test_32x32.mat")
    try:
        mat = loadmat(str(path))
    except (ValueError, TypeError, OSError, NotImplementedError) as exc:
        raise _unreadable(path, f"not a MATLAB file scipy reads ({exc})") from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise _unreadable(path, "needs X: uint8 (32, 32, 3, N) and y: (N, 1)")
    labels = np.asarray(y).reshape(-1).astype(np.int64) % 10  # SVHN writes digit 0 as label 10
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return Split(images, _labels(labels, len(images), 10, path)), [str(i) for i in range(10)]


def _download(torchvision_class: str, split_kw: Callable[[bool], dict[str, Any]]):
    def fetch(root: Path, train: bool) -> None:
        import torchvision.datasets as tvd

        getattr(tvd, torchvision_class)(str(root), download=True, **split_kw(train))

    return fetch


@dataclass(frozen=True)
class _Source:
    name: str
    torchvision_class: str
    expected: list[str]  # files under the root, for the missing-data message
    mean: tuple[float, ...]
    std: tuple[float, ...]
    read: Callable[[Path, bool], tuple[Split, list[str]]]
    split_kw: Callable[[bool], dict[str, Any]]


def _train_kw(train: bool) -> dict[str, Any]:
    return {"train": train}


def _svhn_kw(train: bool) -> dict[str, Any]:
    return {"split": "train" if train else "test"}


_CIFAR10_FILES = {True: [f"data_batch_{i}" for i in range(1, 6)], False: ["test_batch"]}
_MNIST_FILES = [f"{p}-{k}-idx{n}-ubyte" for p in ("train", "t10k") for k, n in (("images", 3), ("labels", 1))]
_FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

SOURCES = {
    s.name: s
    for s in [
        _Source(
            "cifar10",
            "CIFAR10",
            [f"cifar-10-batches-py/{f}" for f in ["batches.meta", *_CIFAR10_FILES[True], *_CIFAR10_FILES[False]]],
            (0.4914, 0.4822, 0.4465),
            (0.2470, 0.2435, 0.2616),
            _cifar_reader("cifar-10-batches-py", _CIFAR10_FILES, "labels", ("batches.meta", "label_names")),
            _train_kw,
        ),
        _Source(
            "cifar100",
            "CIFAR100",
            ["cifar-100-python/meta", "cifar-100-python/train", "cifar-100-python/test"],
            (0.5071, 0.4865, 0.4409),
            (0.2673, 0.2564, 0.2762),
            _cifar_reader(
                "cifar-100-python", {True: ["train"], False: ["test"]}, "fine_labels", ("meta", "fine_label_names")
            ),
            _train_kw,
        ),
        _Source(
            "svhn",
            "SVHN",
            ["train_32x32.mat", "test_32x32.mat"],
            (0.4377, 0.4438, 0.4728),
            (0.1980, 0.2010, 0.1970),
            _svhn_reader,
            _svhn_kw,
        ),
        _Source(
            "mnist",
            "MNIST",
            [f"MNIST/raw/{f}" for f in _MNIST_FILES],
            (0.1307,),
            (0.3081,),
            _mnist_reader("MNIST", [str(i) for i in range(10)]),
            _train_kw,
        ),
        _Source(
            "fashionmnist",
            "FashionMNIST",
            [f"FashionMNIST/raw/{f}" for f in _MNIST_FILES],
            (0.2860,),
            (0.3530,),
            _mnist_reader("FashionMNIST", _FASHION),
            _train_kw,
        ),
    ]
}


def fetch_command(source: _Source, root: Path | str) -> str:
    """The one command that puts a data set under `root` on a machine with network."""
    return f"python -c \"import torchvision; torchvision.datasets.{source.torchvision_class}('{root}', download=True)\""


def _missing(source: _Source, root: Path) -> list[str]:
    return [f for f in source.expected if not (root / f).is_file() and not (root / f"{f}.gz").is_file()]


def _make_loader(source: _Source) -> Callable[..., Dataset]:
    def load(data_root: Path | None = None, download: bool = False) -> Dataset:
        if data_root is None:
            raise DataNotFoundError(
                f"{source.name} is read from disk: pass --data-root DIR holding {', '.join(source.expected[:2])} …; "
                f"to fetch it there on a machine with network: {fetch_command(source, 'DIR')} (or add --download)"
            )
        root = Path(data_root)
        if download and _missing(source, root):
            for train in (True, False):
                _download(source.torchvision_class, source.split_kw)(root, train)
        missing = _missing(source, root)
        if missing:
            raise DataNotFoundError(
                f"{source.name}: not found under {root} (looked for {', '.join(missing[:3])}"
                f"{' …' if len(missing) > 3 else ''}); to fetch it on a machine with network: "
                f"{fetch_command(source, root)} (or add --download), then copy the folder here"
            )
        train, classes = source.read(root, True)
        test, _ = source.read(root, False)
        if train.x.shape[1:] != test.x.shape[1:]:
            raise UnreadableData(
                f"{source.name} under {root}: unreadable: train images {tuple(train.x.shape[1:])} and test images "
                f"{tuple(test.x.shape[1:])} differ in shape"
            )
        return Dataset(source.name, train, test, classes, source.mean, source.std)

    load.__doc__ = f"{source.name} from --data-root (torchvision's layout: {source.expected[0].split('/')[0]}/ …)."
    return load


for _name, _source in SOURCES.items():
    register("dataset", _name)(_make_loader(_source))
