"""Writing corrupted images in the CIFAR-10-C layout, for `robustcollapse corrupt --export`: `export_corrupted`
writes given images, `export_source` those of a data set's split or of a .npy array.

DIR/<corruption>.npy holds uint8 (5·n, H, W, C) images, the n images at severity 1 first, then severity 2 …;
DIR/labels.npy the labels once per severity block; DIR/manifest.json the severities, seed, parameter set and n.
Reading these folders (and the distributed CIFAR-10-C/-100-C) is `robustcollapse.data.corrupted`: the data layer
reads, this package writes, so the data layer never imports the corruptions.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from robustcollapse.corruptions.apply import corrupt
from robustcollapse.corruptions.table import parameter_set
from robustcollapse.data import load_dataset
from robustcollapse.data.arrays import read_npy_images
from robustcollapse.devices import resolve_device
from robustcollapse.errors import UserError
from robustcollapse.io import atomic_write_bytes, atomic_write_text, check_output

if TYPE_CHECKING:
    from rich.console import Console

MANIFEST = "manifest.json"


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
    check_export_folder(folder)
    n, c, h, w = images.shape
    parameters = parameter_set(h, w, parameters)
    severities = sorted(set(severities))
    manifest = {"corruptions": names, "severities": severities, "n": n, "seed": seed, "parameters": parameters}
    _write_manifest(folder, manifest, complete=False)  # from here until the end, readers refuse the folder
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
        written.append(_save_npy(folder / f"{name}.npy", out))
    if labels is not None:
        dtype = np.uint8 if int(labels.min()) >= 0 and int(labels.max()) < 256 else np.int64
        tiled = np.tile(labels.cpu().numpy().astype(dtype), len(severities))
        written.append(_save_npy(folder / "labels.npy", tiled))
    _write_manifest(folder, manifest, complete=True)
    return [*written, folder / "manifest.json"]


def check_export_folder(folder: Path) -> None:
    """Before any work: the export folder is a folder (or absent) that can be written and holds no data set this
    tool did not export (CIFAR-10-C as distributed has no manifest.json: it is an input, never overwritten)."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--export {folder}: is a file; give a folder for the .npy files")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
        raise UserError(
            f"--export {folder}: holds files not written by `corrupt --export` (no {MANIFEST}); give an empty "
            "folder or an earlier export"
        )
    check_output(folder / MANIFEST, "--export", {}, "export manifest")


def _write_manifest(folder: Path, manifest: dict[str, object], complete: bool) -> None:
    """The manifest, invalidated (`complete: false`) before the first array is written and completed after the
    last: a folder killed in between is refused when read, whatever mix of old and new arrays it holds."""
    atomic_write_text(folder / MANIFEST, json.dumps({**manifest, "complete": complete}, indent=1) + "\n")


def _save_npy(path: Path, array: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())
    return path


@dataclass(frozen=True)
class Exported:
    """What `export_source` wrote: its files and how many corruptions, severities and images they hold."""

    folder: Path
    files: list[Path]
    corruptions: int
    severities: int
    images: int
    parameters: str
    seed: int
    labelled: bool

    def summary(self) -> str:
        """One line: counts, parameter set, seed, folder and files (and a hint when no labels were written)."""
        return (
            f"{self.corruptions} corruptions x {self.severities} severities x {self.images} images ({self.parameters} "
            f"parameters, seed {self.seed}) -> {self.folder}/ ({len(self.files)} files"
            f"{'' if self.labelled else '; no labels.npy: pass --labels'})"
        )


def export_source(
    source: str,
    folder: Path,
    names: list[str],
    severities: list[int],
    seed: int = 0,
    parameters: str = "auto",
    split: str = "test",
    limit: int | None = None,
    labels: Path | None = None,
    device: str = "auto",
    data_root: Path | None = None,
    progress: Console | None = None,
) -> Exported:
    """`export_corrupted` of a data set's `split` (or of a uint8 (N, H, W, C) .npy array with its `labels`), the
    first `limit` images, corrupted on `device`; a progress bar goes to `progress` when given."""
    x, y = _source_images(source, split, labels, data_root)
    x, y = x[:limit], None if y is None else y[:limit]
    target = resolve_device(device)
    chosen = parameter_set(*x.shape[-2:], parameters)
    total = len(names) * len(set(severities)) * len(x)
    with _progress(progress, f"corrupting {len(x)} images", total) as advance:
        written = export_corrupted(
            x.to(target), y, folder, names, severities, seed=seed, parameters=parameters, advance=advance
        )
    return Exported(folder, written, len(names), len(set(severities)), len(x), chosen, seed, y is not None)


def _source_images(
    source: str, split: str, labels: Path | None, data_root: Path | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 NCHW images and their labels (None for a .npy without `labels`) of a .npy path or a data set's split."""
    if source.endswith(".npy"):
        if not Path(source).is_file():
            raise UserError(f"{source}: no such .npy file")
        return read_npy_images(Path(source), labels)
    data = load_dataset(source, data_root)
    part = data.test if split == "test" else data.train
    return part.x, part.y


@contextmanager
def _progress(console: Console | None, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """An `advance(count)` callback: a transient rich progress bar on `console`, or nothing without one."""
    if console is None:
        yield lambda count: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda count: bar.advance(task, count)
