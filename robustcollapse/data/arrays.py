"""Images that are not a registered data set: a uint8 .npy array of images, or one image file.

What `robustcollapse corrupt` reads besides a data set name; bad files are one-line `UserError`s naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from robustcollapse.data.base import to_uint8_nchw
from robustcollapse.errors import UserError

MAX_SIDE = 4096  # pixels: ImageNet-C images are 224; larger inputs would only exhaust memory in the corruptions


def read_npy_images(path: Path, labels: Path | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A uint8 (N, H, W, C) .npy of images as uint8 NCHW, and the (N,) integer labels of `labels` (or None)."""
    try:
        arr = np.load(path, mmap_mode="r")
        y = None if labels is None else np.load(labels)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path if labels is None else labels}: not a .npy array numpy can read ({exc})") from None
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise UserError(f"{path}: expected uint8 images (N, H, W, C) with C 1 or 3, got {arr.dtype} {arr.shape}")
    if max(arr.shape[1:3]) > MAX_SIDE:
        raise UserError(f"{path}: images of {arr.shape[1]}x{arr.shape[2]}; allowed: sides up to {MAX_SIDE} pixels")
    if y is not None and (y.ndim != 1 or len(y) != len(arr) or y.dtype.kind not in "iu"):
        raise UserError(f"{labels}: expected ({len(arr)},) integer labels, got {y.dtype} {y.shape}")
    x = to_uint8_nchw(torch.from_numpy(np.array(arr)).permute(0, 3, 1, 2))
    return x, None if y is None else torch.from_numpy(y.astype(np.int64))


def read_image(path: Path, size: int) -> torch.Tensor:
    """An image file as a float (3, size, size) tensor in [0, 1] (Pillow, RGB, antialiased resize)."""
    try:
        with Image.open(path) as img:
            if max(img.size) > MAX_SIDE * 4:
                raise UserError(f"{path}: an image of {img.size[0]}x{img.size[1]}; allowed: sides up to {MAX_SIDE * 4}")
            pixels = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: not an image Pillow can read ({exc})") from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255
