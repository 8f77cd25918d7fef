"""Family blur: defocus (aliased disk), glass (blur, local pixel shuffle, blur), motion and zoom blur."""

from __future__ import annotations

import numpy as np
import torch

from robustcollapse.corruptions.filters import _depthwise, _truncate, clipped_zoom, gaussian_blur2d, motion_blur_batch
from robustcollapse.corruptions.rng import Rng
from robustcollapse.corruptions.table import declare


def disk_kernel(radius: float, alias_blur: float, device: torch.device | None = None) -> torch.Tensor:
    """Hendrycks' aliased disk: X²+Y² ≤ r² on a 17x17 grid (radius ≤ 8; else (2r+1)²), normalised, then a 3x3
    (radius ≤ 8; else 5x5) Gaussian of σ = alias_blur (cv2.GaussianBlur, reflect-101 border)."""
    half, smooth = (8, 1) if radius <= 8 else (int(radius), 2)
    grid = torch.arange(-half, half + 1, dtype=torch.float32, device=device)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2).float()
    disk = disk / disk.sum()
    taps = torch.arange(-smooth, smooth + 1, dtype=torch.float32, device=device)
    g = torch.exp(-(taps**2) / (2 * alias_blur**2))
    g = g / g.sum()
    kernel = _depthwise(disk[None, None], g[:, None] * g[None, :], "reflect")[0, 0]
    keep = int((kernel.abs().sum(0) > 0).nonzero().min())  # drop the all-zero border: same result, fewer MACs
    return kernel[keep : len(kernel) - keep, keep : len(kernel) - keep]


@declare(
    "defocus_blur",
    "blur",
    cifar=((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    imagenet=((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
)
def defocus_blur(x: torch.Tensor, p: tuple[float, float], rng: Rng) -> torch.Tensor:
    """Original: cv2.filter2D per channel with an aliased disk of the radius smoothed by a 3x3 Gaussian of σ =
    alias_blur (see `disk_kernel`), border reflect-101. Ours: the same kernel and border."""
    return _depthwise(x, disk_kernel(*p, device=x.device), "reflect").clamp(0, 1)


def glass_sources(offsets: torch.Tensor, h: int, w: int, delta: int) -> torch.Tensor:
    """Where each pixel's value comes from after one sweep of the original's pixel shuffle, (N, H·W) flat indices.

    `offsets` (N, T, 2) are the original's (dx, dy) draws, one per swept position in sweep order: rows, then
    columns, from H−δ and W−δ down to δ+1. The original's `x[h, w], x[h', w'] = x[h', w'], x[h, w]` acts on numpy
    views, so it copies x[h, w] <- x[h', w'] and leaves x[h', w'] alone. A pixel whose source was already written
    in the same sweep (possible from δ = 2: offsets reach δ−1 down and right) takes that source's new value, so
    values travel along chains; each pixel's final source is found by pointer jumping over the chain links."""
    n, device = len(offsets), offsets.device
    rows = torch.arange(h - delta, delta, -1, device=device)
    cols = torch.arange(w - delta, delta, -1, device=device)
    pos_h = rows.repeat_interleave(len(cols))
    pos_w = cols.repeat(len(rows))
    here = pos_h * w + pos_w
    there = (pos_h + offsets[..., 1]) * w + (pos_w + offsets[..., 0])
    when = torch.full((h * w,), len(here), device=device, dtype=torch.long)  # never written: after every write
    when[here] = torch.arange(len(here), device=device)
    identity = torch.arange(h * w, device=device).expand(n, h * w)
    source = identity.clone()
    source[:, here] = there
    link = identity.clone()
    link[:, here] = torch.where(when[there] < when[here], there, here)
    while True:
        jumped = torch.gather(link, 1, link)
        if torch.equal(jumped, link):
            break
        link = jumped
    return torch.gather(source, 1, link)


@declare(
    "glass_blur",
    "blur",
    cifar=((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    imagenet=((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
)
def glass_blur(x: torch.Tensor, p: tuple[float, int, int], rng: Rng) -> torch.Tensor:
    """Original: Gaussian blur σ, np.uint8 truncation, `iterations` sweeps of a local pixel shuffle, blur σ again.
    The shuffle is a copy, not a swap (see `glass_sources`); offsets are numpy randint(−δ, δ), upper bound
    exclusive. Ours: the same, each sweep one gather (no pixel loop); only the random numbers differ."""
    sigma, delta, iterations = p
    n, c, h, w = x.shape
    flat = _truncate(gaussian_blur2d(x, sigma)).reshape(n, c, h * w)
    count = len(range(h - delta, delta, -1)) * len(range(w - delta, delta, -1))
    draws = torch.floor(rng.uniform(0, iterations, count, 2) * (2 * delta)).long() - delta
    for sweep in range(iterations):
        index = glass_sources(draws[:, sweep], h, w, delta)
        flat = torch.gather(flat, 2, index[:, None, :].expand(n, c, h * w))
    return gaussian_blur2d(flat.reshape(n, c, h, w), sigma).clamp(0, 1)


@declare(
    "motion_blur",
    "blur",
    cifar=((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    imagenet=((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
)
def motion_blur(x: torch.Tensor, p: tuple[float, float], rng: Rng) -> torch.Tensor:
    """Original: ImageMagick's motion blur (radius, sigma) at an angle U(−45°, 45°), through Wand, read back as
    uint8. Ours: a port of its kernel (see `motion_blur_batch`, which says how close it is to ImageMagick)."""
    angle = rng.uniform(0, 1)[:, 0] * 90 - 45
    return motion_blur_batch(x, p[0], p[1], angle).clamp(0, 1)


def zoom_factors(stop: float, step: float) -> list[float]:
    """numpy.arange(1, stop, step), the original's factors to the last bit: numpy steps by (1 + step) − 1, so
    arange(1, 1.26, 0.01) ends at 1.2500000000000002, a factor that zooms a 26-pixel crop to 33 pixels, not 32."""
    return np.arange(1, stop, step).tolist()


@declare(
    "zoom_blur",
    "blur",
    cifar=((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)),
    imagenet=((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)),
)
def zoom_blur(x: torch.Tensor, p: tuple[float, float], rng: Rng) -> torch.Tensor:
    """Original: the mean of the image and its centre zooms (scipy order-1 zoom of a ceil(H/f) crop, trimmed to
    size) at each factor of np.arange(1, stop, step). Ours: the same factors and crops; bilinear zoom in float32."""
    factors = zoom_factors(*p)
    out = torch.zeros_like(x)
    for f in factors:
        out += clipped_zoom(x, f)
    return ((x + out) / (len(factors) + 1)).clamp(0, 1)
