"""OOD sets, registered in the `ood_set` family: synthetic noise, natural-photo textures, and which sets are near.

Every set is made at the in-distribution image shape (`fit_shape`) and seeded, so the same suite gives the
same images; data sets on disk and held-out classes are loaded by the `ood` test kind itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustcollapse.registry import register


def fit_shape(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Float [0, 1] images resized (bilinear, antialiased) and converted to the target channel count."""
    c, h, w = shape
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    if x.shape[1] == c:
        return x
    if c == 1:  # ITU-R 601 luma
        return (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return x.expand(-1, c, -1, -1).contiguous()


@register("ood_set", "gaussian_noise")
def gaussian_noise(shape: tuple[int, int, int], n: int, seed: int) -> torch.Tensor:
    """Far OOD: i.i.d. N(0.5, 0.25^2) pixels, clipped to [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return (0.5 + 0.25 * torch.randn(n, *shape, generator=gen)).clamp(0, 1)


@register("ood_set", "uniform_noise")
def uniform_noise(shape: tuple[int, int, int], n: int, seed: int) -> torch.Tensor:
    """Far OOD: i.i.d. U[0, 1] pixels."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=gen)


@register("ood_set", "textures")
def textures(shape: tuple[int, int, int], n: int, seed: int) -> torch.Tensor:
    """Far OOD: random 32-128 px patches of scikit-learn's two bundled photographs, resized to the ID shape."""
    from sklearn.datasets import load_sample_images

    photos = [torch.tensor(im).permute(2, 0, 1).float() / 255 for im in load_sample_images().images]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        photo = photos[int(torch.randint(len(photos), (1,), generator=gen))]
        size = int(torch.randint(32, 129, (1,), generator=gen))
        top = int(torch.randint(photo.shape[1] - size + 1, (1,), generator=gen))
        left = int(torch.randint(photo.shape[2] - size + 1, (1,), generator=gen))
        out.append(fit_shape(photo[None, :, top : top + size, left : left + size], shape))
    return torch.cat(out)


SYNTHETIC = ("gaussian_noise", "uniform_noise", "textures")
# Data-set pairs that are near OOD for each other (a sibling set); every other set is far.
NEAR_PAIRS = {
    frozenset({"mnist5k", "digits"}),
    frozenset({"mnist", "digits"}),
    frozenset({"cifar10", "cifar100"}),
    frozenset({"mnist", "fashionmnist"}),
    frozenset({"mnist5k", "fashionmnist"}),
}


def is_near(set_name: str, id_name: str) -> bool:
    """Held-out classes and sibling data sets are near OOD; noise, textures and other sets are far."""
    return set_name == "heldout" or frozenset({set_name, id_name}) in NEAR_PAIRS
