"""torchvision data sets read from --data-root in torchvision's own on-disk format; no download unless asked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.datasets as tvd

from robustcollapse.data.base import Dataset, Split, to_uint8_nchw
from robustcollapse.errors import DataNotFoundError
from robustcollapse.registry import register


@dataclass(frozen=True)
class _Source:
    name: str
    cls: Callable[..., Any]
    expected: str  # what torchvision looks for under the root, for the error message
    mean: tuple[float, ...]
    std: tuple[float, ...]
    split_kw: Callable[[bool], dict[str, Any]]


def _train_kw(train: bool) -> dict[str, Any]:
    return {"train": train}


def _svhn_kw(train: bool) -> dict[str, Any]:
    return {"split": "train" if train else "test"}


SOURCES = {
    s.name: s
    for s in [
        _Source(
            "cifar10",
            tvd.CIFAR10,
            "cifar-10-batches-py/",
            (0.4914, 0.4822, 0.4465),
            (0.2470, 0.2435, 0.2616),
            _train_kw,
        ),
        _Source(
            "cifar100",
            tvd.CIFAR100,
            "cifar-100-python/",
            (0.5071, 0.4865, 0.4409),
            (0.2673, 0.2564, 0.2762),
            _train_kw,
        ),
        _Source(
            "svhn",
            tvd.SVHN,
            "train_32x32.mat and test_32x32.mat",
            (0.4377, 0.4438, 0.4728),
            (0.1980, 0.2010, 0.1970),
            _svhn_kw,
        ),
        _Source("mnist", tvd.MNIST, "MNIST/raw/*-ubyte", (0.1307,), (0.3081,), _train_kw),
        _Source("fashionmnist", tvd.FashionMNIST, "FashionMNIST/raw/*-ubyte", (0.2860,), (0.3530,), _train_kw),
    ]
}


def _split(source: _Source, root: Path, train: bool, download: bool) -> tuple[Split, list[str]]:
    try:
        ds = source.cls(str(root), download=download, **source.split_kw(train))
    except RuntimeError as exc:
        raise DataNotFoundError(
            f"{source.name}: not found under {root} (looked for {source.expected}: {exc}); "
            f"run once with --download on a machine with network, or copy torchvision's "
            f"{source.name} files there and pass --data-root"
        ) from None
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = ds.labels
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    classes = list(getattr(ds, "classes", None) or [str(i) for i in range(int(y.max()) + 1)])
    return Split(to_uint8_nchw(data), y), classes


def _make_loader(source: _Source) -> Callable[..., Dataset]:
    def load(data_root: Path | None = None, download: bool = False) -> Dataset:
        if data_root is None:
            raise DataNotFoundError(
                f"{source.name} is read from disk: pass --data-root DIR (torchvision's layout, "
                f"{source.expected}); add --download to fetch it there once"
            )
        train, classes = _split(source, data_root, True, download)
        test, _ = _split(source, data_root, False, download)
        return Dataset(source.name, train, test, classes, source.mean, source.std)

    load.__doc__ = f"torchvision {source.name} from --data-root ({source.expected})."
    return load


for _name, _source in SOURCES.items():
    register("dataset", _name)(_make_loader(_source))
