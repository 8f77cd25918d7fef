"""Writing corrupted images in the CIFAR-10-C layout, for `robustcollapse corrupt --export`.

DIR/<corruption>.npy holds uint8 (5·n, H, W, C) images, the n images at severity 1 first, then severity 2 …;
DIR/labels.npy the labels once per severity block; DIR/manifest.json the severities, seed, parameter set and n.
Reading these folders (and the distributed CIFAR-10-C/-100-C) is `robustcollapse.data.corrupted`: the data layer
reads, this package writes, so the data layer never imports the corruptions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from robustcollapse.corruptions.apply import corrupt
from robustcollapse.corruptions.table import parameter_set


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
