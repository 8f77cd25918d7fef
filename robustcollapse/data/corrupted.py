"""Precomputed corruptions in the CIFAR-10-C layout, read from --data-root (memory-mapped).

Layout as distributed (Hendrycks & Dietterich, Zenodo records 2535967 and 3555552): DIR/CIFAR-10-C/<corruption>.npy
holds uint8 (5·n, 32, 32, 3) images, the n test images at severity 1 first, then severity 2 …; labels.npy the
(5·n,) labels. Only the slice a severity needs is read from disk. `robustcollapse corrupt --export`
(robustcollapse.corruptions.export) writes the same layout for any images (DIR/<DATASET>-C for the other data sets)
plus DIR/manifest.json (severities, seed, parameter set, n); the reader follows the manifest's severities where
there is one, so an export of fewer than five severities reads back. Reading only: the data layer does not import
the corruptions.
"""

from __future__ import annotations

import json
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
    """DIR/CIFAR-10-C (or -100-C, or <dataset>-C for the others) for a data set, or a clear error saying where to
    get it."""
    name = FOLDERS.get(dataset, f"{dataset}-C")
    folder = Path(data_root or ".") / name
    if not (folder / "labels.npy").is_file():
        where = (
            f"download {SOURCES[dataset]}, extract it under --data-root (giving {name}/<corruption>.npy), or "
            if dataset in SOURCES
            else ""
        )
        raise DataNotFoundError(
            f"{name}: {folder / 'labels.npy'} not found; {where}make it with "
            f"`robustcollapse corrupt {dataset} --export {folder}` and pass --data-root {folder.parent}"
        )
    return folder


def _severities(folder: Path) -> list[int]:
    """The severity blocks of a folder: its manifest's (an export) or all five (CIFAR-10-C as distributed). An
    export whose manifest says it is not complete (`corrupt --export` killed midway) is refused."""
    path = folder / "manifest.json"
    if not path.is_file():
        return [1, 2, 3, 4, 5]
    try:
        manifest = json.loads(path.read_text())
        severities = [int(s) for s in manifest["severities"]]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise UserError(f"{path}: unreadable export manifest; rerun `robustcollapse corrupt --export`") from None
    if manifest.get("complete") is False:
        raise UserError(
            f"{folder}: a half-made export (its {path.name} says not complete: `corrupt --export` was stopped); "
            "rerun the export"
        )
    return severities


def read_corrupted(folder: Path, corruption: str, severity: int, n: int | None = None) -> Split:
    """The first n images (all when None) of one corruption at one severity, uint8 NCHW, and their labels."""
    path = folder / f"{corruption}.npy"
    if not path.is_file():
        raise DataNotFoundError(f"{path}: not found (the {folder.name} archive has one .npy per corruption)")
    blocks = _severities(folder)
    if severity not in blocks:
        raise DataNotFoundError(f"{folder}: holds severities {blocks}, not {severity} (see its manifest.json)")
    images = np.load(path, mmap_mode="r")
    labels = np.load(folder / "labels.npy", mmap_mode="r")
    if images.ndim != 4 or images.shape[0] % len(blocks) or images.shape[0] != labels.shape[0]:
        raise UserError(
            f"{path}: expected ({len(blocks)}·n, H, W, C) uint8 images matching labels.npy, got {images.shape} "
            f"and {labels.shape}"
        )
    per = images.shape[0] // len(blocks)
    count = per if n is None else min(n, per)
    start = blocks.index(severity) * per
    x = torch.from_numpy(np.array(images[start : start + count]))  # reads this slice only
    y = torch.from_numpy(np.array(labels[start : start + count], dtype=np.int64))
    return Split(to_uint8_nchw(x), y)
