"""Precomputed corruptions in the CIFAR-10-C layout: read from --data-root (memory-mapped), or written by `export`.

Layout as distributed (Hendrycks & Dietterich, Zenodo records 2535967 and 3555552): DIR/CIFAR-10-C/<corruption>.npy
holds uint8 (5·n, 32, 32, 3) images, the n test images at severity 1 first, then severity 2 …; labels.npy the
(5·n,) labels. Only the slice a severity needs is read from disk. `export` writes the same layout for any images
(DIR/<DATASET>-C for the other data sets) plus DIR/manifest.json (severities, seed, parameter set, n); the reader
follows the manifest's severities where there is one, so an export of fewer than five severities reads back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
    manifest = folder / "manifest.json"
    return json.loads(manifest.read_text())["severities"] if manifest.is_file() else [1, 2, 3, 4, 5]


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


def export_corrupted(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    folder: Path,
    names: list[str],
    severities: list[int],
    seed: int = 0,
    parameters: str = "auto",
    batch_size: int = 1000,
    advance: Callable[[int], None] = lambda count: None,
) -> list[Path]:
    """Write uint8 NCHW `images` corrupted as `source: generate` corrupts them (image i uses index i and `seed`) in
    the CIFAR-10-C layout: folder/<name>.npy uint8 (len(severities)·n, H, W, C), severity blocks in ascending order,
    and folder/labels.npy, the labels once per block (uint8 when they fit, as CIFAR-10-C's). `advance` is told how
    many images each batch finished. Returns the files written (and manifest.json)."""
    from robustcollapse.corruptions import corrupt, parameter_set

    folder.mkdir(parents=True, exist_ok=True)
    n, c, h, w = images.shape
    parameters = parameter_set(h, w, parameters)
    severities = sorted(set(severities))
    written = []
    for name in names:
        out = np.empty((len(severities) * n, h, w, c), dtype=np.uint8)
        for b, s in enumerate(severities):
            for i in range(0, n, batch_size):
                batch = images[i : i + batch_size].float().div_(255.0)
                index = torch.arange(i, i + len(batch), device=images.device)
                y = corrupt(batch, name, s, seed=seed, index=index, parameters=parameters)
                pixels = torch.round(y * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                out[b * n + i : b * n + i + len(batch)] = pixels
                advance(len(batch))
        np.save(folder / f"{name}.npy", out)
        written.append(folder / f"{name}.npy")
    if labels is not None:
        dtype = np.uint8 if int(labels.min()) >= 0 and int(labels.max()) < 256 else np.int64
        np.save(folder / "labels.npy", np.tile(labels.cpu().numpy().astype(dtype), len(severities)))
        written.append(folder / "labels.npy")
    manifest = {"corruptions": names, "severities": severities, "n": n, "seed": seed, "parameters": parameters}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return [*written, folder / "manifest.json"]
