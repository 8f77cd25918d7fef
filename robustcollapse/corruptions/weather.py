"""Family weather: snow, frost (Hendrycks' photographs, package data in robustcollapse/frost/), fog (a plasma
fractal) and brightness."""

from __future__ import annotations

import functools
import math
from importlib.resources import files

import numpy as np
import torch
import torch.nn.functional as F

from robustcollapse.corruptions.filters import _grey, _truncate, clipped_zoom, motion_blur_batch
from robustcollapse.corruptions.rng import Rng
from robustcollapse.corruptions.table import declare


@declare(
    "snow",
    "weather",
    cifar=(
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    imagenet=(
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
)
def snow(x: torch.Tensor, p: tuple[float, ...], rng: Rng) -> torch.Tensor:
    """Original: a layer N(loc, scale) per pixel, zoomed, zeroed below the threshold, saved as uint8 (truncated),
    ImageMagick motion blur along U(−135°, −45°) (read back as uint8, truncated); the image is pulled towards
    max(x, 1.5·grey + 0.5) and the layer and its 180° rotation are added. Ours: the same steps, our port of
    ImageMagick's kernel (see `motion_blur_batch`)."""
    loc, scale, zoom, threshold, radius, sigma, mix = p
    n, c, h, w = x.shape
    layer = loc + scale * rng.normal(0, 1, h, w)
    layer = clipped_zoom(layer, zoom)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer)
    layer = _truncate(layer.clamp(0, 1))
    angle = rng.uniform(1, 1)[:, 0] * 90 - 135
    layer = _truncate(motion_blur_batch(layer, radius, sigma, angle))
    grey = x if c == 1 else _grey(x)
    x = mix * x + (1 - mix) * torch.maximum(x, grey * 1.5 + 0.5)
    return (x + layer + torch.rot90(layer, 2, dims=(-2, -1))).clamp(0, 1)


FROST_PHOTOS = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")  # frost6 is never drawn


@functools.lru_cache(maxsize=4)
def frost_photos(scale: float) -> tuple[torch.Tensor, ...]:
    """Hendrycks' five frost photographs (package data, Apache-2.0, see robustcollapse/frost/NOTICE) as float
    (3, H, W) RGB in 0..255, resized by `scale` as cv2.resize(fx=fy=scale, INTER_LINEAR) does (half-pixel centres,
    no antialiasing; at 0.2 every output pixel is input pixel 5i+2) and rounded to integers."""
    from PIL import Image

    out = []
    for name in FROST_PHOTOS:
        with Image.open(files("robustcollapse") / "frost" / name) as img:
            rgb = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1).float()
        if scale != 1.0:
            rgb = F.interpolate(
                rgb[None], scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False
            )[0].round()
        out.append(rgb)
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _frost_bank(scale: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The photos at `scale` zero-padded into one (5, 3, H, W) tensor on `device`, and their (5, 2) sizes."""
    photos = frost_photos(scale)
    bank = torch.zeros(len(photos), 3, max(ph.shape[1] for ph in photos), max(ph.shape[2] for ph in photos))
    for k, ph in enumerate(photos):
        bank[k, :, : ph.shape[1], : ph.shape[2]] = ph
    return bank.to(device), torch.tensor([ph.shape[1:] for ph in photos], device=device)


@declare(
    "frost",
    "weather",
    cifar=((1, 0.2, 0.2), (1, 0.3, 0.2), (0.9, 0.4, 0.2), (0.85, 0.4, 0.2), (0.75, 0.45, 0.2)),
    imagenet=((1, 0.4, 1.0), (0.8, 0.6, 1.0), (0.7, 0.7, 1.0), (0.65, 0.7, 1.0), (0.6, 0.75, 1.0)),
    colour=True,
)
def frost(x: torch.Tensor, p: tuple[float, float, float], rng: Rng) -> torch.Tensor:
    """Original: a·x + b·frost, the frost a random H x W crop of one of frost1..frost5 (np.random.randint(5): the
    sixth photo is never used), shrunk by 0.2 for CIFAR (`scale`, the third parameter), as is for ImageNet. Ours:
    the same photographs, crops and sums; where a shrunk photo is smaller than the image (above 62 px with the
    CIFAR values) all are shrunk less, just enough to fit."""
    a, b, scale = p
    n, c, h, w = x.shape
    full = frost_photos(1.0)
    need = max(max((h + 1.5) / ph.shape[1], (w + 1.5) / ph.shape[2]) for ph in full)
    bank, sizes = _frost_bank(max(scale, need), x.device)
    u = rng.uniform(0, 3)
    which = (u[:, 0] * len(bank)).long()
    top = (u[:, 1] * (sizes[which, 0] - h)).long()
    left = (u[:, 2] * (sizes[which, 1] - w)).long()
    rows = top[:, None] + torch.arange(h, device=x.device)[None, :]
    cols = left[:, None] + torch.arange(w, device=x.device)[None, :]
    crop = bank[
        which[:, None, None, None],
        torch.arange(3, device=x.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
    return (a * x + b * crop / 255).clamp(0, 1)


def plasma_fractal(rng: Rng, stream: int, mapsize: int, wibble_decay: float) -> torch.Tensor:
    """Diamond-square plasma (N, mapsize, mapsize) in [0, 1], one per image, as `make_cifar_c.py` draws it."""
    n = len(rng.keys)
    m = torch.zeros(n, mapsize, mapsize, device=rng.keys.device)
    step, wibble, draw = mapsize, 100.0, 0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        nonlocal draw
        draw += 1
        u = rng.uniform(stream * 64 + draw, *total.shape[1:])
        return total / 4 + wibble * (2 * u - 1) * wibble

    while step >= 2:
        half = step // 2
        corners = m[:, 0::step, 0::step]
        square = corners + torch.roll(corners, -1, dims=1)
        square = square + torch.roll(square, -1, dims=2)
        m[:, half::step, half::step] = wibbled_mean(square)
        dr = m[:, half::step, half::step]
        ul = m[:, 0::step, 0::step]
        m[:, 0::step, half::step] = wibbled_mean(dr + torch.roll(dr, 1, dims=1) + ul + torch.roll(ul, -1, dims=2))
        m[:, half::step, 0::step] = wibbled_mean(dr + torch.roll(dr, 1, dims=2) + ul + torch.roll(ul, -1, dims=1))
        step //= 2
        wibble /= wibble_decay
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)


@declare(
    "fog",
    "weather",
    cifar=((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    imagenet=((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
)
def fog(x: torch.Tensor, p: tuple[float, float], rng: Rng) -> torch.Tensor:
    """Original: x + strength · a diamond-square plasma fractal (wibble decay per severity), then scaled by
    max(x)/(max(x) + strength), clipped. Ours: the same fractal, drawn per image (mapsize: next power of two)."""
    strength, decay = p
    h, w = x.shape[-2:]
    mapsize = 1 << max(math.ceil(math.log2(max(h, w))), 1)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    x = x + strength * plasma_fractal(rng, 0, mapsize, decay)[:, None, :h, :w]
    return (x * peak / (peak + strength)).clamp(0, 1)


def _hsv_value_shift(x: torch.Tensor, c: float) -> torch.Tensor:
    """HSV V + c with H and S kept: RGB scales with V (black becomes the grey c)."""
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + c).clamp(0, 1)
    return torch.where(v > 0, x * v_new / v.clamp_min(1e-12), v_new.expand_as(x))


@declare("brightness", "weather", cifar=(0.05, 0.1, 0.15, 0.2, 0.3), imagenet=(0.1, 0.2, 0.3, 0.4, 0.5))
def brightness(x: torch.Tensor, c: float, rng: Rng) -> torch.Tensor:
    """Original: scikit-image HSV, V + c clipped, back to RGB. Ours: the same in closed form (RGB scales with V)."""
    return _hsv_value_shift(x, c).clamp(0, 1)
