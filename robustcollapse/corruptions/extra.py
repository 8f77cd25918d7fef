"""Family extra: the four corruptions ImageNet-C holds out for validation — speckle noise, Gaussian blur, spatter
(water or mud) and saturate."""

from __future__ import annotations

import torch

from robustcollapse.corruptions.edges import _box3, canny, distance_to_edges, equalize_hist
from robustcollapse.corruptions.filters import _depthwise, gaussian_blur2d
from robustcollapse.corruptions.rng import Rng
from robustcollapse.corruptions.table import declare


@declare("speckle_noise", "extra", cifar=(0.06, 0.1, 0.12, 0.16, 0.2), imagenet=(0.15, 0.2, 0.35, 0.45, 0.6))
def speckle_noise(x: torch.Tensor, sigma: float, rng: Rng) -> torch.Tensor:
    """Original: x + x·N(0, σ²) per value, clipped. Ours: the same."""
    return (x + x * sigma * rng.normal(0, *x.shape[1:])).clamp(0, 1)


@declare("gaussian_blur", "extra", cifar=(0.4, 0.6, 0.7, 0.8, 1.0), imagenet=(1, 2, 3, 4, 6))
def gaussian_blur(x: torch.Tensor, sigma: float, rng: Rng) -> torch.Tensor:
    """Original: scikit-image gaussian per channel (truncate 4, border 'nearest'). Ours: the same separable filter."""
    return gaussian_blur2d(x, sigma).clamp(0, 1)


@declare(
    "spatter",
    "extra",
    cifar=(
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ),
    imagenet=(
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    ),
    colour=True,
)
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


@declare(
    "saturate",
    "extra",
    cifar=((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    imagenet=((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
    colour=True,
)
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
