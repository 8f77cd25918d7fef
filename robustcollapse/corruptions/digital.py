"""Family digital: contrast, elastic transform, pixelate and JPEG compression."""

from __future__ import annotations

import warnings

import torch

from robustcollapse.corruptions.filters import _round, _sample, gaussian_blur2d, pil_box_matrix, warp_affine
from robustcollapse.corruptions.rng import Rng
from robustcollapse.corruptions.table import declare


@declare("contrast", "digital", cifar=(0.75, 0.5, 0.4, 0.3, 0.15), imagenet=(0.4, 0.3, 0.2, 0.1, 0.05))
def contrast(x: torch.Tensor, c: float, rng: Rng) -> torch.Tensor:
    """Original: (x − per-channel mean)·c + mean, clipped. Ours: the same."""
    means = x.mean(dim=(2, 3), keepdim=True)
    return ((x - means) * c + means).clamp(0, 1)


def _elastic(size: float, table: tuple) -> tuple:
    return tuple((size * a, size * s, size * j) for a, s, j in table)


@declare(
    "elastic_transform",
    "digital",
    cifar=_elastic(32, ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))),
    # the original multiplies by 244 where 224 was meant ("nothing is incorrect", says its comment): kept
    imagenet=_elastic(244, ((2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02))),
)
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


@declare("pixelate", "digital", cifar=(0.95, 0.9, 0.85, 0.75, 0.65), imagenet=(0.6, 0.5, 0.4, 0.3, 0.25), rounds=True)
def pixelate(x: torch.Tensor, factor: float, rng: Rng) -> torch.Tensor:
    """Original: PIL BOX resize to int(32·factor) and back, on uint8 images (each resize rounds to whole levels).
    Ours: the same box filters, rounded as PIL rounds them."""
    h, w = x.shape[-2:]
    return _pil_box_resize(_pil_box_resize(x, (int(h * factor), int(w * factor))), (h, w))


def _pil_box_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL's BOX resize of a uint8 image: the horizontal pass, rounded to uint8, then the vertical one, rounded."""
    across = _round((x @ pil_box_matrix(x.shape[-1], size[1], x.device).T).clamp(0, 1))
    return _round((pil_box_matrix(x.shape[-2], size[0], x.device) @ across).clamp(0, 1))


@declare("jpeg_compression", "digital", cifar=(80, 65, 58, 50, 40), imagenet=(25, 18, 15, 10, 7), rounds=True)
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
