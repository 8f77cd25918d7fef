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
colour-only steps — saturate, spatter's coloured water and mud, frost's tinted ice — run on the channel replicated
three times and are converted back with the ITU-R 601 luma weights, so a grey image stays grey.
"""

from __future__ import annotations

import functools
import math
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass

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


def gaussian_blur2d(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian per channel (scikit-image `gaussian`, default border 'nearest').

    A kernel wider than the image (ImageNet-C's elastic field: σ = 171 px, 1,025 taps) is folded into one
    (side x side) matrix per axis — the same sums, h + w multiply-adds per pixel instead of 2 x taps."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma, truncate, x.device)
    r = len(k) // 2
    n, c, h, w = x.shape
    if h + w < 2 * len(k):
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


def box_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL `Image.resize(size, BOX)` on a batch."""
    ah = pil_box_matrix(x.shape[-2], size[0], x.device)
    aw = pil_box_matrix(x.shape[-1], size[1], x.device)
    return torch.einsum("oh,nchw,pw->ncop", ah, x, aw)


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
    configurable virtual-pixel method (edge is its default)."""
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
    return (x + sigma * rng.normal(0, *x.shape[1:])).clamp(0, 1)


def shot_noise(x: torch.Tensor, lam: float, rng: Rng) -> torch.Tensor:
    return (rng.poisson(0, x * lam) / lam).clamp(0, 1)


def impulse_noise(x: torch.Tensor, amount: float, rng: Rng) -> torch.Tensor:
    """scikit-image salt-and-pepper: each value flipped with probability `amount`, half to 1, half to 0."""
    flip = rng.uniform(0, *x.shape[1:]) < amount
    salt = rng.uniform(1, *x.shape[1:]) < 0.5
    return torch.where(flip, salt.float(), x)


def speckle_noise(x: torch.Tensor, sigma: float, rng: Rng) -> torch.Tensor:
    return (x + x * sigma * rng.normal(0, *x.shape[1:])).clamp(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: float, rng: Rng) -> torch.Tensor:
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
    return _depthwise(x, disk_kernel(*p, device=x.device), "reflect").clamp(0, 1)


def glass_blur(x: torch.Tensor, p: tuple[float, int, int], rng: Rng) -> torch.Tensor:
    """Blur, quantise to uint8, then the sequential local pixel shuffle of the original, vectorised over the batch.

    As in `make_cifar_c.py`, offsets come from numpy's randint(−δ, δ) whose upper bound is exclusive, so a pixel
    swaps with itself or a neighbour up/left; the sweep runs from the bottom-right corner to row/column δ+1."""
    sigma, delta, iterations = p
    n, c, h, w = x.shape
    x = torch.floor(gaussian_blur2d(x, sigma) * 255) / 255
    flat = x.reshape(n, c, h * w).clone()
    positions = [
        (i, j) for _ in range(iterations) for i in range(h - delta, delta, -1) for j in range(w - delta, delta, -1)
    ]
    offsets = torch.floor(rng.uniform(0, len(positions), 2) * (2 * delta)).long() - delta
    batch = torch.arange(n, device=x.device)
    for t, (i, j) in enumerate(positions):
        here = i * w + j
        there = (i + offsets[:, t, 0]).clamp(0, h - 1) * w + (j + offsets[:, t, 1]).clamp(0, w - 1)
        a = flat[:, :, here].clone()
        flat[:, :, here] = flat[batch, :, there]
        flat[batch, :, there] = a
    return gaussian_blur2d(flat.reshape(n, c, h, w), sigma).clamp(0, 1)


def motion_blur(x: torch.Tensor, p: tuple[float, float], rng: Rng) -> torch.Tensor:
    angle = rng.uniform(0, 1)[:, 0] * 90 - 45
    return motion_blur_batch(x, p[0], p[1], angle).clamp(0, 1)


def zoom_factors(stop: float, step: float) -> list[float]:
    """numpy.arange(1, stop, step) as the originals call it: its length is ceil((stop − 1)/step) in float64, so
    arange(1, 1.06, 0.01) has 7 factors, 1.00 … 1.06 — the last one is in CIFAR-10-C too."""
    return [1 + i * step for i in range(math.ceil((stop - 1) / step))]


def zoom_blur(x: torch.Tensor, p: tuple[float, float], rng: Rng) -> torch.Tensor:
    """Mean of the image and its centre zooms at the factors numpy.arange(1, stop, step)."""
    factors = zoom_factors(*p)
    out = torch.zeros_like(x)
    for f in factors:
        out += clipped_zoom(x, f)
    return ((x + out) / (len(factors) + 1)).clamp(0, 1)


def snow(x: torch.Tensor, p: tuple[float, ...], rng: Rng) -> torch.Tensor:
    """Snow layer N(loc, scale), zoomed, thresholded, quantised and motion-blurred along U(−135°, −45°); the image
    is greyed towards 1.5·grey+0.5 and the layer and its 180° rotation are added (as `make_cifar_c.py`)."""
    loc, scale, zoom, threshold, radius, sigma, mix = p
    n, c, h, w = x.shape
    layer = loc + scale * rng.normal(0, 1, h, w)
    layer = clipped_zoom(layer, zoom)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer)
    layer = torch.round(layer.clamp(0, 1) * 255) / 255
    angle = rng.uniform(1, 1)[:, 0] * 90 - 135
    layer = torch.round(motion_blur_batch(layer, radius, sigma, angle) * 255) / 255
    grey = x if c == 1 else _grey(x)
    x = mix * x + (1 - mix) * torch.maximum(x, grey * 1.5 + 0.5)
    return (x + layer + torch.rot90(layer, 2, dims=(-2, -1))).clamp(0, 1)


def frost_textures(count: int, size: int, seed: int, device: torch.device | None = None) -> torch.Tensor:
    """`count` procedural ice textures (count, 3, size, size) in [0, 1], standing in for Hendrycks' six frost photos
    (not ours to ship). Ridged multi-octave value noise — thin bright crystal veins on a pale blue-white ground —
    with the photos' coarse statistics after their 0.2x resize: mean ≈ 0.45, std ≈ 0.2, blue ≥ green ≥ red."""
    rng = Rng.for_images(seed, "frost-texture", 0, torch.arange(count, device=device))
    total = torch.zeros(count, 1, size, size, device=device)
    amp, norm = 1.0, 0.0
    for octave, cells in enumerate((4, 8, 16, 32, 64)):
        coarse = rng.uniform(octave, 1, cells, cells)
        fine = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
        ridged = 1 - (2 * fine - 1).abs()
        total += amp * ridged**3
        norm += amp
        amp *= 0.6
    total = total / norm
    total = (total - total.mean(dim=(2, 3), keepdim=True)) / total.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    total = (0.45 + 0.2 * total).clamp(0, 1)
    tint = torch.tensor([0.88, 0.95, 1.0], device=device).view(1, 3, 1, 1)
    return (total * tint).clamp(0, 1)


def frost(x: torch.Tensor, p: tuple[float, float], rng: Rng) -> torch.Tensor:
    """a·x + b·texture, the texture a random crop of one of six procedural ice images (see `frost_textures`)."""
    a, b = p
    n, c, h, w = x.shape
    size = 4 * max(h, w)
    bank = frost_textures(6, size, 0, x.device)
    u = rng.uniform(0, 3)
    which = (u[:, 0] * 6).long().clamp(max=5)
    top = (u[:, 1] * (size - h)).long()
    left = (u[:, 2] * (size - w)).long()
    rows = top[:, None] + torch.arange(h, device=x.device)[None, :]
    cols = left[:, None] + torch.arange(w, device=x.device)[None, :]
    crop = bank[
        which[:, None, None, None],
        torch.arange(3, device=x.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
    return (a * x + b * crop).clamp(0, 1)


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
    return _hsv_value_shift(x, c).clamp(0, 1)


def contrast(x: torch.Tensor, c: float, rng: Rng) -> torch.Tensor:
    means = x.mean(dim=(2, 3), keepdim=True)
    return ((x - means) * c + means).clamp(0, 1)


def saturate(x: torch.Tensor, p: tuple[float, float], rng: Rng) -> torch.Tensor:
    """HSV S·mul + add (clipped) with H and V kept. A grey pixel has hue 0 in scikit-image's conversion, so a
    positive `add` tints it red there too."""
    mul, add = p
    v = x.amax(dim=1, keepdim=True)
    mn = x.amin(dim=1, keepdim=True)
    s = torch.where(v > 0, (v - mn) / v.clamp_min(1e-12), torch.zeros_like(v))
    s_new = (s * mul + add).clamp(0, 1)
    scaled = v - (v - x) * s_new / s.clamp_min(1e-12)
    red = torch.cat([v, v * (1 - s_new), v * (1 - s_new)], dim=1)
    return torch.where(s > 0, scaled, red).clamp(0, 1)


def jpeg_compression(x: torch.Tensor, quality: int, rng: Rng) -> torch.Tensor:
    """libjpeg encode/decode at `quality` (torchvision.io, on the CPU whatever the device), 4:2:0 chroma as PIL's
    default."""
    from torchvision.io import decode_jpeg, encode_jpeg

    device = x.device
    images = list(torch.round(x * 255).to(torch.uint8).cpu())
    with warnings.catch_warnings():  # torchvision 0.29 announces a move of its codecs to torchcodec
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = decode_jpeg(encode_jpeg(images, quality=quality))
    return (torch.stack(decoded).float() / 255).to(device)


def pixelate(x: torch.Tensor, factor: float, rng: Rng) -> torch.Tensor:
    h, w = x.shape[-2:]
    small = box_resize(x, (int(h * factor), int(w * factor)))
    return box_resize(small, (h, w)).clamp(0, 1)


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


def elastic_transform(x: torch.Tensor, p: tuple[float, float, float], rng: Rng) -> torch.Tensor:
    """Random affine (3 points at centre ± size//3 jittered by U(±affine)), then a smooth random displacement field
    (U(−1, 1) noise blurred with σ, truncate 3, times alpha); bilinear, reflected borders."""
    alpha, sigma, jitter = p
    n, c, h, w = x.shape
    centre = torch.tensor([w // 2, h // 2], dtype=torch.float32, device=x.device)
    sq = min(h, w) // 3
    src = torch.stack([centre + sq, centre + torch.tensor([sq, -sq], device=x.device), centre - sq])
    src = src[None].expand(n, 3, 2)
    dst = src + (2 * rng.uniform(0, 3, 2) - 1) * jitter
    inverse = _affine_from_points(dst, src)  # dst -> src: cv2.warpAffine samples src at M^-1(dst)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=x.device),
        torch.arange(w, dtype=torch.float32, device=x.device),
        indexing="ij",
    )
    coords = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, h * w, 3)
    mapped = (coords @ inverse.transpose(1, 2)).reshape(n, h, w, 2)
    x = _sample(x, mapped[..., 0], mapped[..., 1], "reflection")
    if alpha > 0:
        field = 2 * rng.uniform(1, 2, h, w) - 1
        field = gaussian_blur2d(field, sigma, mode="reflect", truncate=3.0) * alpha
        x = _sample(x, xs + field[:, 0], ys + field[:, 1], "reflection")
    return x.clamp(0, 1)


def equalize_hist(x: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist per image on integer values 0..255 held in float (N, 1, H, W)."""
    n = len(x)
    vals = x.reshape(n, -1).long().clamp(0, 255)
    hist = torch.zeros(n, 256, device=x.device).scatter_add_(1, vals, torch.ones_like(vals, dtype=torch.float32))
    cdf = hist.cumsum(1)
    first = torch.gather(hist, 1, (hist > 0).float().argmax(1, keepdim=True))
    lut = torch.round((cdf - first) * 255 / (vals.shape[1] - first).clamp_min(1)).clamp(0, 255)
    return torch.gather(lut, 1, vals).reshape(x.shape)


def _canny_like_edges(mask: torch.Tensor) -> torch.Tensor:
    """Boundary pixels of a binary liquid mask (a pixel on whose 4-neighbourhood the mask changes)."""
    pad = F.pad(mask, (1, 1, 1, 1), mode="replicate")
    diff = (
        (pad[..., 1:-1, 1:-1] != pad[..., :-2, 1:-1])
        | (pad[..., 1:-1, 1:-1] != pad[..., 2:, 1:-1])
        | (pad[..., 1:-1, 1:-1] != pad[..., 1:-1, :-2])
        | (pad[..., 1:-1, 1:-1] != pad[..., 1:-1, 2:])
    )
    return diff.float()


def spatter(x: torch.Tensor, p: tuple[float, ...], rng: Rng) -> torch.Tensor:
    """Water drops (mode 0) or mud (mode 1) from a blurred, thresholded noise layer, as `make_cifar_c.py`.

    Water follows the original's shading recipe — distance to the drop edges truncated at 20, 3x3 box blur,
    histogram equalisation, emboss kernel, box blur — with two stand-ins: drop edges are the mask's boundary pixels
    rather than cv2.Canny's, and the distance is the chessboard distance (iterated 3x3 max-pooling) rather than
    cv2's 5x5 mask L2 approximation."""
    loc, scale, sigma, threshold, intensity, mode = p
    n, c, h, w = x.shape
    liquid = gaussian_blur2d(loc + scale * rng.normal(0, 1, h, w), sigma)
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if mode == 0:
        liquid = torch.floor(liquid.clamp(0, 1) * 255) / 255
        edges = _canny_like_edges((liquid > 0).float())
        near = edges
        dist = torch.full_like(edges, 20.0)
        dist = torch.where(edges > 0, torch.zeros_like(dist), dist)
        for step in range(1, 20):
            near = F.max_pool2d(near, 3, stride=1, padding=1)
            dist = torch.where((near > 0) & (dist == 20), torch.full_like(dist, float(step)), dist)
        box = torch.full((3, 3), 1 / 9, device=x.device)
        dist = torch.floor(_depthwise(dist, box, "reflect"))
        dist = equalize_hist(dist)
        emboss = torch.tensor([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]], device=x.device)
        dist = _depthwise(dist, emboss, "reflect").clamp(0, 255).floor()
        dist = _depthwise(dist, box, "reflect")
        m = liquid * dist
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
        ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
        ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
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
    Corruption("pixelate", "digital", pixelate, (0.95, 0.9, 0.85, 0.75, 0.65), (0.6, 0.5, 0.4, 0.3, 0.25)),
    Corruption("jpeg_compression", "digital", jpeg_compression, (80, 65, 58, 50, 40), (25, 18, 15, 10, 7)),
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
) -> torch.Tensor:
    """Corrupt float images (N, C, H, W) in [0, 1] at severity 1..5; `index` (default 0..N−1) names the images for
    the random numbers, so image i gets the same corruption in any batch; `parameters` is auto, cifar or imagenet
    (see `parameter_set`)."""
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
    return _grey(out).clamp(0, 1) if grey and spec.colour else out
