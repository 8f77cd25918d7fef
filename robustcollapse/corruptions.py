"""The 19 CIFAR-10-C / ImageNet-C common corruptions as batched torch ops, on any device, with Hendrycks' parameters.

Every function takes float images (N, C, H, W) in [0, 1] with C = 1 or 3 and returns the same shape in [0, 1].
Each corruption has two parameter tables, one value per severity 1..5 (hendrycks/robustness): `params`, from
`make_cifar_c.py` (32x32 images), and `imagenet`, from `make_imagenet_c.py` (224x224 images). `corrupt` picks the
ImageNet-C table for images whose shorter side is at least 128 pixels and the CIFAR one below (`parameters="auto"`),
or the one it is told. Parameters in pixels (blur radii, elastic displacements) are used as they are, not rescaled
to the image size: a 64x64 image gets the CIFAR values, a 512x512 one the ImageNet ones.

Randomness is counter-based: every random number is a hash of (seed, corruption, severity, image index, stream,
element), so an image is corrupted the same way whatever the batch it arrives in, and the same on CPU and GPU.

Grey-scale input: noise, blur, weather, contrast, elastic, pixelate and JPEG act on the single channel directly
(snow's grey conversion is the identity there; brightness on the HSV value of a grey pixel is `x + c`). The
colour-only steps — saturate, spatter's coloured water and mud, frost's photographs — run on the channel replicated
three times and are converted back with the ITU-R 601 luma weights, so a grey image stays grey.
"""

from __future__ import annotations

import functools
import math
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files

import numpy as np
import torch
import torch.nn.functional as F

MASK32 = 0xFFFFFFFF
LUMA = (0.299, 0.587, 0.114)
NORMAL_STREAMS, POISSON_STREAMS = 1 << 16, 1 << 17  # stream offsets so derived draws never reuse a plain stream


# ---------------------------------------------------------------------------------------------------------------
# Counter-based random numbers


def _mix32(v: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash with good avalanche (xor-shift-multiply), on int64 tensors holding 32-bit values.

    One copy, then in place: the hash runs over every random number, and memory traffic is most of its cost."""
    v = v & MASK32
    v ^= v >> 16
    v *= 0x7FEB352D
    v &= MASK32
    v ^= v >> 15
    v *= 0x846CA68B
    v &= MASK32
    v ^= v >> 16
    return v


@functools.lru_cache(maxsize=64)
def _counters(numel: int, stream: int, device: torch.device) -> torch.Tensor:
    """Hashed element counters of one stream: the image-independent half of every draw, reused across batches."""
    return _mix32(torch.arange(numel, device=device, dtype=torch.int64) + (stream * 0x9E3779B9 & MASK32))


@dataclass(frozen=True)
class Rng:
    """Random numbers for a batch of images, a pure function of (key, image index, stream, element)."""

    keys: torch.Tensor  # (N,) int64: one 32-bit key per image

    @classmethod
    def for_images(cls, seed: int, name: str, severity: int, index: torch.Tensor) -> Rng:
        base = zlib.crc32(f"{seed}/{name}/{severity}".encode())
        return cls(_mix32(_mix32(index.long()) ^ base))

    def uniform(self, stream: int, *shape: int) -> torch.Tensor:
        """(N, *shape) float32 strictly inside (0, 1): (k + 0.5)/2^23 from 23 hash bits, every value exact in
        float32 (24 bits would round the top one, 1 − 2^−25, up to 1.0)."""
        counters = _counters(math.prod(shape), stream, self.keys.device)
        bits = _mix32(counters[None, :] ^ self.keys[:, None])
        bits >>= 9
        return bits.float().add_(0.5).mul_(1.0 / (1 << 23)).reshape(len(self.keys), *shape)

    def normal(self, stream: int, *shape: int) -> torch.Tensor:
        """(N, *shape) standard normal: Box-Muller on two uniform streams, both its outputs (cos and sin) used."""
        numel = math.prod(shape)
        half = (numel + 1) // 2
        radius = self.uniform(NORMAL_STREAMS + 2 * stream, half).log_().mul_(-2.0).sqrt_()
        angle = self.uniform(NORMAL_STREAMS + 2 * stream + 1, half).mul_(2.0 * math.pi)
        pair = torch.cat([radius * torch.cos(angle), radius.mul_(torch.sin(angle))], dim=1)
        return pair[:, :numel].reshape(len(self.keys), *shape)

    def poisson(self, stream: int, mean: torch.Tensor) -> torch.Tensor:
        """Poisson samples of `mean` (N, ...): exact inverse-CDF below mean 25, N(m, m) rounded above.

        The inverse-CDF walk drops the values already at their CDF whenever more than half of those left are, so
        its cost falls with the Poisson tail instead of running every element to the slowest one."""
        mean = mean.contiguous()  # the samples are written through flat views of `out`, which follows mean's layout
        shape = mean.shape[1:]
        small = mean < 25
        out = torch.zeros_like(mean)
        if not small.all():
            approx = mean + mean.sqrt() * self.normal(POISSON_STREAMS + stream, *shape)
            out = torch.where(small, out, torch.clamp(torch.round(approx), min=0))
        if small.any():
            flat_u = self.uniform(POISSON_STREAMS + stream, *shape).reshape(-1)
            where = None if small.all() else small.reshape(-1).nonzero().squeeze(1)
            # float64: a float32 CDF can stall just below a uniform near 1 and walk on to the cap
            m = (mean.reshape(-1) if where is None else mean.reshape(-1)[where]).double()
            u = (flat_u if where is None else flat_u[where]).double()
            p = torch.exp(-m)
            k = torch.zeros_like(m)
            cdf, steps, alive = p.clone(), torch.zeros_like(m), torch.arange(len(m), device=m.device)
            for i in range(1, 80):
                keep = u > cdf
                kept = int(keep.sum())
                if kept == 0:
                    break
                steps += keep
                if kept < len(keep) // 2:  # compacting costs a gather per array: only once half are done
                    done = (~keep).nonzero().squeeze(1)
                    k[alive[done]] = steps[done]
                    idx = keep.nonzero().squeeze(1)
                    m, u, p, cdf, steps, alive = (t[idx] for t in (m, u, p, cdf, steps, alive))
                p = p * m / i
                cdf = cdf + p
            k[alive] = steps
            k = k.to(out.dtype)
            flat = out.reshape(-1)
            if where is None:
                flat.copy_(k)
            else:
                flat[where] = k
        return out


# ---------------------------------------------------------------------------------------------------------------
# Filters and resampling shared by several corruptions


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, device: torch.device | None = None) -> torch.Tensor:
    """scipy.ndimage's Gaussian: radius int(truncate * sigma + 0.5), normalised."""
    radius = max(int(truncate * sigma + 0.5), 0)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2) if sigma > 0 else (t == 0).float()
    return k / k.sum()


def _border_index(i: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Where scipy.ndimage reads outside 0..n−1: 'nearest' repeats the edge, 'reflect' is half-sample symmetric."""
    return i.clamp(0, n - 1) if mode == "nearest" else _reflect_index(i, n)


def _blur_matrix(k: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """(n, n) matrix B with B @ v = the 1-D correlation of v with k, borders included (folded into B)."""
    r = len(k) // 2
    taps = torch.arange(n, device=k.device)[:, None] + torch.arange(-r, r + 1, device=k.device)[None, :]
    return torch.zeros(n, n, device=k.device).scatter_add_(1, _border_index(taps, n, mode), k.expand(n, -1))


MATRIX_BLUR_UP_TO = 128  # pixels: up to this side a separable blur runs as two matrix products


def gaussian_blur2d(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian per channel (scikit-image `gaussian`, default border 'nearest').

    Small images (sides up to 128 px) and kernels wider than the image (ImageNet-C's elastic field: σ = 171 px,
    1,025 taps) go through one (side x side) matrix per axis, borders folded in — the same sums, h + w
    multiply-adds per pixel instead of 2 x taps, but as batched matrix products, which on a CPU run 12x faster
    than single-channel convolutions at 32 px."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma, truncate, x.device)
    r = len(k) // 2
    n, c, h, w = x.shape
    if max(h, w) <= MATRIX_BLUR_UP_TO or h + w < 2 * len(k):
        return _blur_matrix(k, h, mode) @ x @ _blur_matrix(k, w, mode).T
    rows = _border_index(torch.arange(-r, h + r, device=x.device), h, mode)
    cols = _border_index(torch.arange(-r, w + r, device=x.device), w, mode)
    flat = x.reshape(n * c, 1, h, w)[..., rows, :][..., cols]
    flat = F.conv2d(flat, k.view(1, 1, 1, -1))
    flat = F.conv2d(flat, k.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def _reflect_index(i: torch.Tensor, n: int) -> torch.Tensor:
    """Half-sample symmetric (abc|cba) reflection of indices, any distance outside."""
    period = 2 * n
    i = torch.remainder(i, period)
    return torch.where(i < n, i, period - 1 - i)


def _depthwise(x: torch.Tensor, kernel: torch.Tensor, pad_mode: str) -> torch.Tensor:
    """Convolve every channel of every image with one 2-D kernel (cv2.filter2D, correlation)."""
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    flat = x.reshape(n * c, 1, h, w)
    if pad_mode == "reflect":  # cv2's reflect-101 (dcb|abcd|cba), for kernels of any size
        rows = _reflect101_index(torch.arange(-(kh // 2), h + kh // 2, device=x.device), h)
        cols = _reflect101_index(torch.arange(-(kw // 2), w + kw // 2, device=x.device), w)
        flat = flat[..., rows, :][..., cols]
    else:
        flat = F.pad(flat, (kw // 2, kw // 2, kh // 2, kh // 2), mode=pad_mode)
    return F.conv2d(flat, kernel[None, None]).reshape(n, c, h, w)


def _reflect101_index(i: torch.Tensor, n: int) -> torch.Tensor:
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i < n, i, period - i)


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom into the centre by `factor` (bilinear, corner-aligned like scipy's order-1 zoom) and crop to size."""
    h, w = x.shape[-2:]
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top : top + ch, left : left + cw]
    zh, zw = round(ch * factor), round(cw * factor)
    zoomed = F.interpolate(crop, size=(zh, zw), mode="bilinear", align_corners=True)
    th, tw = (zh - h) // 2, (zw - w) // 2
    return zoomed[..., th : th + h, tw : tw + w]


def pil_box_matrix(n_in: int, n_out: int, device: torch.device | None = None) -> torch.Tensor:
    """(n_out, n_in) weights of PIL's BOX resampling along one axis: each output pixel averages the input pixels
    whose centres fall inside its footprint (support scaled by the downsampling factor, at least one pixel)."""
    scale = n_in / n_out
    support = 0.5 * max(scale, 1.0)
    centres = (torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * scale
    pix = torch.arange(n_in, dtype=torch.float64, device=device) + 0.5
    ss = max(scale, 1.0)
    t = (pix[None, :] - centres[:, None]) / ss
    weight = ((t > -0.5) & (t <= 0.5)).double()
    lo = torch.clamp(torch.floor(centres - support + 0.5), min=0)
    hi = torch.clamp(torch.floor(centres + support + 0.5), max=n_in)
    inside = (pix[None, :] - 0.5 >= lo[:, None]) & (pix[None, :] - 0.5 < hi[:, None])
    weight = weight * inside
    return (weight / weight.sum(1, keepdim=True)).float()


TRUNCATE_SLACK = 1e-4  # grey levels: float32 round-off must not drop a value the float64 original has as k to k−1


def _truncate(x: torch.Tensor) -> torch.Tensor:
    """np.uint8(x·255)/255 for x in [0, 1]: the original's truncation to whole grey levels."""
    return torch.floor(x * 255 + TRUNCATE_SLACK) / 255


def _round(x: torch.Tensor) -> torch.Tensor:
    """Rounding half up to whole grey levels, as PIL rounds what it returns as uint8."""
    return torch.floor(x * 255 + (0.5 + TRUNCATE_SLACK)) / 255


def _rgb(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, (N, 1, H, W)."""
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _gather_shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """x[n, :, clamp(h + dy[n]), clamp(w + dx[n])] with per-image integer offsets (edge pixels repeat)."""
    n, c, h, w = x.shape
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None]).clamp(0, h - 1)
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None]).clamp(0, w - 1)
    idx = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    return torch.gather(x.reshape(n, c, h * w), 2, idx).reshape(n, c, h, w)


def motion_blur_batch(x: torch.Tensor, radius: float, sigma: float, angle_deg: torch.Tensor) -> torch.Tensor:
    """ImageMagick's `-motion-blur radius x sigma + angle`, per image angle.

    Same kernel construction as MotionBlurImage: width 2·ceil(radius)+1 taps with one-sided Gaussian weights
    exp(−i²/2σ²) (normalised) at integer offsets round(i·(cos a, sin a)) along the angle, edge pixels repeated.
    Differences from ImageMagick: we work in float, not its 16-bit quantum, and repeat edges instead of its
    configurable virtual-pixel method (edge is its default). Measured against `convert -motion-blur` of
    ImageMagick 6.9.11 Q16 on 60 natural 32x32 photographs at every CIFAR severity, both truncated to uint8 (as that
    ImageMagick writes it): mean difference 0.001-0.003 grey levels, never more than 1
    (benchmarks/imagemagick_motion_blur.py)."""
    width = int(2 * math.ceil(radius) + 1)
    taps = torch.arange(width, device=x.device, dtype=torch.float32)
    weights = torch.exp(-(taps**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    a = torch.deg2rad(angle_deg.float())
    off_x = torch.ceil(taps[None, :] * torch.cos(a)[:, None] - 0.5).long()
    off_y = torch.ceil(taps[None, :] * torch.sin(a)[:, None] - 0.5).long()
    out = torch.zeros_like(x)
    for i in range(width):
        out += weights[i] * _gather_shift(x, off_y[:, i], off_x[:, i])
    return out


# ---------------------------------------------------------------------------------------------------------------
# The corruptions. Each: (x, severity params, rng) -> x


def gaussian_noise(x: torch.Tensor, sigma: float, rng: Rng) -> torch.Tensor:
    """Original: x + N(0, σ²) per value, clipped. Ours: the same (counter-based normal draws)."""
    return (x + sigma * rng.normal(0, *x.shape[1:])).clamp(0, 1)


def shot_noise(x: torch.Tensor, lam: float, rng: Rng) -> torch.Tensor:
    """Original: Poisson(x·λ)/λ per value, clipped. Ours: the same; exact Poisson below mean 25, N(m, m) rounded
    above (there x·λ is at least 25 counts)."""
    return (rng.poisson(0, x * lam) / lam).clamp(0, 1)


def impulse_noise(x: torch.Tensor, amount: float, rng: Rng) -> torch.Tensor:
    """Original: scikit-image random_noise 's&p': each value (per channel) replaced with probability `amount`,
    half by 1, half by 0. Ours: the same."""
    flip = rng.uniform(0, *x.shape[1:]) < amount
    salt = rng.uniform(1, *x.shape[1:]) < 0.5
    return torch.where(flip, salt.float(), x)


def speckle_noise(x: torch.Tensor, sigma: float, rng: Rng) -> torch.Tensor:
    """Original: x + x·N(0, σ²) per value, clipped. Ours: the same."""
    return (x + x * sigma * rng.normal(0, *x.shape[1:])).clamp(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: float, rng: Rng) -> torch.Tensor:
    """Original: scikit-image gaussian per channel (truncate 4, border 'nearest'). Ours: the same separable filter."""
    return gaussian_blur2d(x, sigma).clamp(0, 1)


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


def motion_blur(x: torch.Tensor, p: tuple[float, float], rng: Rng) -> torch.Tensor:
    """Original: ImageMagick's motion blur (radius, sigma) at an angle U(−45°, 45°), through Wand, read back as
    uint8. Ours: a port of its kernel (see `motion_blur_batch`, which says how close it is to ImageMagick)."""
    angle = rng.uniform(0, 1)[:, 0] * 90 - 45
    return motion_blur_batch(x, p[0], p[1], angle).clamp(0, 1)


def zoom_factors(stop: float, step: float) -> list[float]:
    """numpy.arange(1, stop, step), the original's factors to the last bit: numpy steps by (1 + step) − 1, so
    arange(1, 1.26, 0.01) ends at 1.2500000000000002, a factor that zooms a 26-pixel crop to 33 pixels, not 32."""
    return np.arange(1, stop, step).tolist()


def zoom_blur(x: torch.Tensor, p: tuple[float, float], rng: Rng) -> torch.Tensor:
    """Original: the mean of the image and its centre zooms (scipy order-1 zoom of a ceil(H/f) crop, trimmed to
    size) at each factor of np.arange(1, stop, step). Ours: the same factors and crops; bilinear zoom in float32."""
    factors = zoom_factors(*p)
    out = torch.zeros_like(x)
    for f in factors:
        out += clipped_zoom(x, f)
    return ((x + out) / (len(factors) + 1)).clamp(0, 1)


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


def brightness(x: torch.Tensor, c: float, rng: Rng) -> torch.Tensor:
    """Original: scikit-image HSV, V + c clipped, back to RGB. Ours: the same in closed form (RGB scales with V)."""
    return _hsv_value_shift(x, c).clamp(0, 1)


def contrast(x: torch.Tensor, c: float, rng: Rng) -> torch.Tensor:
    """Original: (x − per-channel mean)·c + mean, clipped. Ours: the same."""
    means = x.mean(dim=(2, 3), keepdim=True)
    return ((x - means) * c + means).clamp(0, 1)


def saturate(x: torch.Tensor, p: tuple[float, float], rng: Rng) -> torch.Tensor:
    """Original: scikit-image HSV, S·mul + add clipped, back to RGB. Ours: the same in closed form; a grey pixel has
    hue 0 in scikit-image's conversion, so a positive `add` tints it red as there."""
    mul, add = p
    v = x.amax(dim=1, keepdim=True)
    mn = x.amin(dim=1, keepdim=True)
    s = torch.where(v > 0, (v - mn) / v.clamp_min(1e-12), torch.zeros_like(v))
    s_new = (s * mul + add).clamp(0, 1)
    scaled = v - (v - x) * s_new / s.clamp_min(1e-12)
    red = torch.cat([v, v * (1 - s_new), v * (1 - s_new)], dim=1)
    return torch.where(s > 0, scaled, red).clamp(0, 1)


def jpeg_compression(x: torch.Tensor, quality: int, rng: Rng) -> torch.Tensor:
    """Original: PIL JPEG save at `quality` and decode. Ours: libjpeg through torchvision.io (on the CPU whatever
    the device), 4:2:0 chroma as PIL's default: the same bytes on our test photographs."""
    from torchvision.io import decode_jpeg, encode_jpeg

    device = x.device
    images = list(torch.round(x * 255).to(torch.uint8).cpu())
    with warnings.catch_warnings():  # torchvision 0.29 announces a move of its codecs to torchcodec
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = decode_jpeg(encode_jpeg(images, quality=quality))
    return (torch.stack(decoded).float() / 255).to(device)


def pixelate(x: torch.Tensor, factor: float, rng: Rng) -> torch.Tensor:
    """Original: PIL BOX resize to int(32·factor) and back, on uint8 images (each resize rounds to whole levels).
    Ours: the same box filters, rounded as PIL rounds them."""
    h, w = x.shape[-2:]
    return _pil_box_resize(_pil_box_resize(x, (int(h * factor), int(w * factor))), (h, w))


def _pil_box_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL's BOX resize of a uint8 image: the horizontal pass, rounded to uint8, then the vertical one, rounded."""
    across = _round((x @ pil_box_matrix(x.shape[-1], size[1], x.device).T).clamp(0, 1))
    return _round((pil_box_matrix(x.shape[-2], size[0], x.device) @ across).clamp(0, 1))


def _affine_from_points(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) affine maps sending the 3 src points to the 3 dst points (cv2.getAffineTransform), batched."""
    ones = torch.ones(*src.shape[:2], 1, device=src.device)
    a = torch.cat([src, ones], dim=2)  # (N, 3, 3)
    return torch.linalg.solve(a, dst).transpose(1, 2)


def _sample(x: torch.Tensor, px: torch.Tensor, py: torch.Tensor, padding: str) -> torch.Tensor:
    """Bilinear sample of x at pixel coordinates (px, py) of shape (N, H, W)."""
    h, w = x.shape[-2:]
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _reflect101_coord(c: torch.Tensor, n: int) -> torch.Tensor:
    """Continuous coordinates folded into [0, n−1] by reflection about the edge pixels' centres (cv2's
    BORDER_REFLECT_101); bilinear interpolation of the folded point equals cv2's index-wise reflected taps."""
    if n == 1:
        return torch.zeros_like(c)
    period = 2 * (n - 1)
    c = torch.remainder(c, period)
    return torch.where(c > n - 1, period - c, c)


def warp_affine(x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """cv2.warpAffine(x, cv2.getAffineTransform(src, dst), borderMode=BORDER_REFLECT_101), bilinear, per image:
    the affine map sending the three (x, y) points src (N, 3, 2) to dst, each output pixel sampled at its preimage."""
    n, c, h, w = x.shape
    inverse = _affine_from_points(dst, src)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=x.device),
        torch.arange(w, dtype=torch.float32, device=x.device),
        indexing="ij",
    )
    coords = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, h * w, 3)
    mapped = (coords @ inverse.transpose(1, 2)).reshape(n, h, w, 2)
    return _sample(x, _reflect101_coord(mapped[..., 0], w), _reflect101_coord(mapped[..., 1], h), "border")


def elastic_transform(x: torch.Tensor, p: tuple[float, float, float], rng: Rng) -> torch.Tensor:
    """Original: cv2.warpAffine by a random affine (3 points at centre ± size//3 jittered by U(±affine)), border
    reflect-101, then scipy map_coordinates (order 1, mode 'reflect') along a displacement field of U(−1, 1) noise
    blurred with σ (truncate 3, reflect) times alpha. Ours: the same steps and borders, bilinear sampling in float32
    (the affine step equals cv2's to 1e-4 grey levels for the same points)."""
    alpha, sigma, jitter = p
    n, c, h, w = x.shape
    centre = torch.tensor([w // 2, h // 2], dtype=torch.float32, device=x.device)
    sq = min(h, w) // 3
    src = torch.stack([centre + sq, centre + torch.tensor([sq, -sq], device=x.device), centre - sq])
    src = src[None].expand(n, 3, 2)
    x = warp_affine(x, src, src + (2 * rng.uniform(0, 3, 2) - 1) * jitter)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=x.device),
        torch.arange(w, dtype=torch.float32, device=x.device),
        indexing="ij",
    )
    if alpha > 0:
        field = 2 * rng.uniform(1, 2, h, w) - 1
        field = gaussian_blur2d(field, sigma, mode="reflect", truncate=3.0) * alpha
        x = _sample(x, xs + field[:, 0], ys + field[:, 1], "reflection")
    return x.clamp(0, 1)


def equalize_hist(x: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist per image on integer values 0..255 held in float (N, 1, H, W): lut[v] =
    round((cdf[v] − count of the lowest value) · 255/(pixels − that count)) in float32; one value only: kept."""
    n = len(x)
    vals = x.reshape(n, -1).long().clamp(0, 255)
    hist = torch.zeros(n, 256, device=x.device).scatter_add_(1, vals, torch.ones_like(vals, dtype=torch.float32))
    cdf = hist.cumsum(1)
    lowest = (hist > 0).float().argmax(1, keepdim=True)
    first = torch.gather(hist, 1, lowest)
    scale = 255.0 / (vals.shape[1] - first).clamp_min(1)
    lut = torch.round((cdf - first) * scale).clamp(0, 255)
    lut = torch.where(first == vals.shape[1], lowest.float().expand_as(lut), lut)
    return torch.gather(lut, 1, vals).reshape(x.shape)


TG22 = 13573  # cv2 Canny's tan(22.5°)·2^15, rounded


def canny(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """cv2.Canny(x, low, high) on integer images 0..255 held in float (N, 1, H, W), as a 0/1 float mask.

    3x3 Sobel (edges replicated), L1 magnitude |gx| + |gy|; non-maximum suppression along the gradient direction
    quantised as cv2 does (integer tan 22.5° test; the neighbour behind must be exceeded, the one ahead matched,
    both exceeded on diagonals; zero magnitude outside the image); hysteresis: pixels above `high` grow through
    8-connected candidates above `low`."""
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1), mode="replicate").long()
    smooth_rows = p[..., :-2, :] + 2 * p[..., 1:-1, :] + p[..., 2:, :]  # Sobel, separable: [1 2 1] x [-1 0 1]
    smooth_cols = p[..., :, :-2] + 2 * p[..., :, 1:-1] + p[..., :, 2:]
    gx = smooth_rows[..., :, 2:] - smooth_rows[..., :, :-2]
    gy = smooth_cols[..., 2:, :] - smooth_cols[..., :-2, :]
    mag = gx.abs() + gy.abs()
    m = F.pad(mag, (1, 1, 1, 1))

    def at(dy: int, dx: int) -> torch.Tensor:
        return m[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    ax, ay = gx.abs(), gy.abs() << 15
    tg22x = ax * TG22
    horizontal = ay < tg22x
    vertical = ~horizontal & (ay > tg22x + (ax << 16))
    diagonal = ~horizontal & ~vertical
    same_sign = (gx < 0) == (gy < 0)
    peak = (
        (horizontal & (mag > at(0, -1)) & (mag >= at(0, 1)))
        | (vertical & (mag > at(-1, 0)) & (mag >= at(1, 0)))
        | (diagonal & same_sign & (mag > at(-1, -1)) & (mag > at(1, 1)))
        | (diagonal & ~same_sign & (mag > at(-1, 1)) & (mag > at(1, -1)))
    )
    candidate = (peak & (mag > low)).float()
    edges = candidate * (mag > high).float()
    while True:
        grown = F.max_pool2d(edges, 3, stride=1, padding=1) * candidate
        if torch.equal(grown, edges):
            return edges
        edges = grown


CHAMFER_MOVES = tuple(
    (dy, dx, cost)
    for dy in range(-2, 3)
    for dx in range(-2, 3)
    for cost in [{1: 1.0, 2: 1.4, 5: 2.1969}.get(dy * dy + dx * dx)]
    if cost is not None
)  # cv2's 5x5 DIST_L2 mask: orthogonal, diagonal and knight's-move steps


def distance_to_edges(edges: torch.Tensor, cap: float) -> torch.Tensor:
    """cv2.distanceTransform(255 − edges, DIST_L2, 5) truncated at `cap` (cv2.threshold TRUNC), float32.

    For mask size 5 cv2 computes the chamfer distance with steps 1 (orthogonal), 1.4 (diagonal) and 2.1969
    (knight's move), not the exact Euclidean one; ours relaxes the same steps in float32 (min-plus; at most `cap`
    rounds, each step costing at least 1). Equal to OpenCV 5's to float round-off (older releases used 16-bit fixed
    point, at most 3e-5 apart)."""
    h, w = edges.shape[-2:]
    d = torch.where(edges > 0, 0.0, cap).float()
    for _ in range(int(cap) + 1):
        padded = F.pad(d, (2, 2, 2, 2), value=cap)
        best = d
        for dy, dx, cost in CHAMFER_MOVES:
            best = torch.minimum(best, padded[..., 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] + cost)
        best = best.clamp(max=cap)
        if torch.equal(best, d):
            break
        d = best
    return d


def _box3(x: torch.Tensor) -> torch.Tensor:
    """3x3 sum per image, cv2's reflect-101 border (exact for integer-valued tensors of any dtype)."""
    h, w = x.shape[-2:]
    rows = _reflect101_index(torch.arange(-1, h + 1, device=x.device), h)
    cols = _reflect101_index(torch.arange(-1, w + 1, device=x.device), w)
    p = x[..., rows, :][..., cols]
    return sum(p[..., i : i + h, j : j + w] for i in range(3) for j in range(3))


def spatter(x: torch.Tensor, p: tuple[float, ...], rng: Rng) -> torch.Tensor:
    """Original: a liquid layer N(loc, scale) blurred with σ, zeroed below the threshold. Water (mode 0): on the
    layer as uint8, cv2.Canny(50, 150), distanceTransform (L2, mask 5) truncated at 20, 3x3 box blur to uint8,
    equalizeHist, an emboss filter to uint8, box blur; pale turquoise added in proportion to layer x shading.
    Mud (mode 1): the layer above the threshold blurred with σ = intensity, kept from 0.8, brown mixed in.
    Ours: the same steps and integer arithmetic (see `canny`, `distance_to_edges`); the layer's uint8 cast wraps
    above 1 as numpy's does."""
    loc, scale, sigma, threshold, intensity, mode = p
    n, c, h, w = x.shape
    liquid = gaussian_blur2d(loc + scale * rng.normal(0, 1, h, w), sigma)
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if mode == 0:
        layer = torch.remainder(torch.floor(liquid * 255 + 1e-3), 256)
        dist = distance_to_edges(canny(layer, 50, 150), 20)
        dist = torch.floor((_box3(dist.double()) * (1.0 / 9)).float())  # cv2.blur sums float32 in double
        dist = equalize_hist(dist)
        emboss = torch.tensor([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]], device=x.device)
        dist = _depthwise(dist, emboss, "reflect").clamp(0, 255)
        dist = torch.round(_box3(dist) / 9)  # cv2.blur on uint8 rounds to uint8
        m = layer * dist
        m = m / m.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12) * intensity
        colour = torch.tensor([175, 238, 238], device=x.device).view(1, 3, 1, 1) / 255
        return (x + m * colour).clamp(0, 1)
    m = gaussian_blur2d((liquid > threshold).float(), intensity)
    m = torch.where(m < 0.8, torch.zeros_like(m), m)
    colour = torch.tensor([63, 42, 20], device=x.device).view(1, 3, 1, 1) / 255
    return (x * (1 - m) + colour * m).clamp(0, 1)


# ---------------------------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Corruption:
    name: str
    family: str
    fn: Callable[..., torch.Tensor]
    params: tuple  # make_cifar_c.py, one entry per severity 1..5
    imagenet: tuple  # make_imagenet_c.py, one entry per severity 1..5
    colour: bool = False  # acts on RGB only: grey input is replicated, corrupted, converted back to luma
    rounds: bool = False  # the original's result is already uint8, rounded by PIL: not truncated

    def values(self, parameters: str) -> tuple:
        """The table of a parameter set: 'cifar' or 'imagenet'."""
        return self.imagenet if parameters == "imagenet" else self.params


def _elastic(size: float, table: tuple) -> tuple:
    return tuple((size * a, size * s, size * j) for a, s, j in table)


_TABLE = [
    Corruption(
        "gaussian_noise", "noise", gaussian_noise, (0.04, 0.06, 0.08, 0.09, 0.10), (0.08, 0.12, 0.18, 0.26, 0.38)
    ),
    Corruption("shot_noise", "noise", shot_noise, (500, 250, 100, 75, 50), (60, 25, 12, 5, 3)),
    Corruption("impulse_noise", "noise", impulse_noise, (0.01, 0.02, 0.03, 0.05, 0.07), (0.03, 0.06, 0.09, 0.17, 0.27)),
    Corruption(
        "defocus_blur",
        "blur",
        defocus_blur,
        ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
        ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    ),
    Corruption(
        "glass_blur",
        "blur",
        glass_blur,
        ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
        ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    ),
    Corruption(
        "motion_blur",
        "blur",
        motion_blur,
        ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
        ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    ),
    Corruption(
        "zoom_blur",
        "blur",
        zoom_blur,
        ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)),
        ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)),
    ),
    Corruption(
        "snow",
        "weather",
        snow,
        (
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        ),
        (
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        ),
    ),
    Corruption(
        "frost",
        "weather",
        frost,
        ((1, 0.2, 0.2), (1, 0.3, 0.2), (0.9, 0.4, 0.2), (0.85, 0.4, 0.2), (0.75, 0.45, 0.2)),
        ((1, 0.4, 1.0), (0.8, 0.6, 1.0), (0.7, 0.7, 1.0), (0.65, 0.7, 1.0), (0.6, 0.75, 1.0)),
        colour=True,
    ),
    Corruption(
        "fog",
        "weather",
        fog,
        ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
        ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    ),
    Corruption("brightness", "weather", brightness, (0.05, 0.1, 0.15, 0.2, 0.3), (0.1, 0.2, 0.3, 0.4, 0.5)),
    Corruption("contrast", "digital", contrast, (0.75, 0.5, 0.4, 0.3, 0.15), (0.4, 0.3, 0.2, 0.1, 0.05)),
    Corruption(
        "elastic_transform",
        "digital",
        elastic_transform,
        _elastic(32, ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))),
        # the original multiplies by 244 where 224 was meant ("nothing is incorrect", says its comment): kept
        _elastic(244, ((2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02))),
    ),
    Corruption("pixelate", "digital", pixelate, (0.95, 0.9, 0.85, 0.75, 0.65), (0.6, 0.5, 0.4, 0.3, 0.25), rounds=True),
    Corruption("jpeg_compression", "digital", jpeg_compression, (80, 65, 58, 50, 40), (25, 18, 15, 10, 7), rounds=True),
    Corruption("speckle_noise", "extra", speckle_noise, (0.06, 0.1, 0.12, 0.16, 0.2), (0.15, 0.2, 0.35, 0.45, 0.6)),
    Corruption("gaussian_blur", "extra", gaussian_blur, (0.4, 0.6, 0.7, 0.8, 1.0), (1, 2, 3, 4, 6)),
    Corruption(
        "spatter",
        "extra",
        spatter,
        (
            (0.62, 0.1, 0.7, 0.7, 0.5, 0),
            (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1),
        ),
        (
            (0.65, 0.3, 4, 0.69, 0.6, 0),
            (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1),
        ),
        colour=True,
    ),
    Corruption(
        "saturate",
        "extra",
        saturate,
        ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
        ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
        colour=True,
    ),
]
CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in _TABLE}
FAMILIES = ("noise", "blur", "weather", "digital", "extra")
STANDARD = [c.name for c in _TABLE if c.family != "extra"]
EXTRA = [c.name for c in _TABLE if c.family == "extra"]


def resolve(selection: str | list[str]) -> list[str]:
    """'all', a family name, or a list of corruption names -> corruption names in benchmark order."""
    if isinstance(selection, str):
        if selection == "all":
            return [c.name for c in _TABLE]
        if selection in FAMILIES:
            return [c.name for c in _TABLE if c.family == selection]
        selection = [selection]
    for name in selection:
        if name not in CORRUPTIONS:
            raise ValueError(
                f"unknown corruption {name!r}; known: all, {', '.join(FAMILIES)}, {', '.join(CORRUPTIONS)}"
            )
    return list(selection)


PARAMETER_SETS = ("auto", "cifar", "imagenet")
IMAGENET_FROM = 128  # shorter side, in pixels, from which `auto` picks the ImageNet-C parameters


def parameter_set(height: int, width: int, parameters: str = "auto") -> str:
    """'cifar' or 'imagenet': the one asked for, or for 'auto' the one made for images of this size."""
    if parameters not in PARAMETER_SETS:
        raise ValueError(f"unknown parameter set {parameters!r}; allowed: {', '.join(PARAMETER_SETS)}")
    if parameters != "auto":
        return parameters
    return "imagenet" if min(height, width) >= IMAGENET_FROM else "cifar"


def corrupt(
    x: torch.Tensor,
    name: str,
    severity: int,
    seed: int = 0,
    index: torch.Tensor | None = None,
    parameters: str = "auto",
    quantize: bool = True,
) -> torch.Tensor:
    """Corrupt float images (N, C, H, W) in [0, 1] at severity 1..5; `index` (default 0..N−1) names the images for
    the random numbers, so image i gets the same corruption in any batch; `parameters` is auto, cifar or imagenet
    (see `parameter_set`). `quantize` ends, as the original's np.uint8(...) does before saving the .npy files, on
    whole grey levels: truncated (rounded where the original's result is already uint8), so generated images equal
    what a user reads from the files."""
    spec = CORRUPTIONS[name]
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    table = spec.values(parameter_set(x.shape[-2], x.shape[-1], parameters))
    if index is None:
        index = torch.arange(len(x), device=x.device)
    rng = Rng.for_images(seed, name, severity, index.to(x.device))
    grey = x.shape[1] == 1
    inp = _rgb(x) if grey and spec.colour else x
    out = spec.fn(inp.float(), table[severity - 1], rng)
    if grey and spec.colour:
        out = _grey(out).clamp(0, 1)
    if quantize:
        out = _round(out) if spec.rounds else _truncate(out)
    return out
