"""The precomputed CIFAR-10-C / CIFAR-100-C corruptions read from --data-root, memory-mapped.

Layout as distributed (Hendrycks & Dietterich, Zenodo records 2535967 and 3555552): DIR/CIFAR-10-C/<corruption>.npy
holds uint8 (5·n, 32, 32, 3) images, the n test images at severity 1 first, then severity 2 …; labels.npy the
(5·n,) labels. Only the slice a severity needs is read from disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robustcollapse.data.base import Split, to_uint8_nchw
from robustcollapse.errors import DataNotFoundError, UserError

FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}
SOURCES = {
    "cifar10": "https://zenodo.org/record/2535967 (CIFAR-10-C.tar)",
    "cifar100": "https://zenodo.org/record/3555552 (CIFAR-100-C.tar)",
}


def corrupted_folder(dataset: str, data_root: Path | None) -> Path:
    """DIR/CIFAR-10-C (or -100-C) for a data set, or a clear error saying where to get it."""
    if dataset not in FOLDERS:
        raise UserError(
            f"corruption source 'npy' exists for {', '.join(FOLDERS)} only, not {dataset!r}; use source: generate"
        )
    folder = Path(data_root or ".") / FOLDERS[dataset]
    if not (folder / "labels.npy").is_file():
        raise DataNotFoundError(
            f"{FOLDERS[dataset]}: {folder / 'labels.npy'} not found; download {SOURCES[dataset]}, "
            f"extract it under --data-root (giving {FOLDERS[dataset]}/<corruption>.npy) and pass --data-root"
        )
    return folder


def read_corrupted(folder: Path, corruption: str, severity: int, n: int | None = None) -> Split:
    """The first n images (all when None) of one corruption at one severity, uint8 NCHW, and their labels."""
    path = folder / f"{corruption}.npy"
    if not path.is_file():
        raise DataNotFoundError(f"{path}: not found (the {folder.name} archive has one .npy per corruption)")
    images = np.load(path, mmap_mode="r")
    labels = np.load(folder / "labels.npy", mmap_mode="r")
    if images.ndim != 4 or images.shape[0] % 5 or images.shape[0] != labels.shape[0]:
        raise UserError(
            f"{path}: expected (5·n, H, W, C) uint8 images matching labels.npy, got {images.shape} and {labels.shape}"
        )
    per = images.shape[0] // 5
    count = per if n is None else min(n, per)
    start = (severity - 1) * per
    x = torch.from_numpy(np.array(images[start : start + count]))  # reads this slice only
    y = torch.from_numpy(np.array(labels[start : start + count], dtype=np.int64))
    return Split(to_uint8_nchw(x), y)
