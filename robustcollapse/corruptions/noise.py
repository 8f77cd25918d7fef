"""Family noise: Gaussian, shot (Poisson) and impulse (salt and pepper) noise, drawn per value from `Rng`."""

from __future__ import annotations

import torch

from robustcollapse.corruptions.rng import Rng
from robustcollapse.corruptions.table import declare


@declare("gaussian_noise", "noise", cifar=(0.04, 0.06, 0.08, 0.09, 0.10), imagenet=(0.08, 0.12, 0.18, 0.26, 0.38))
def gaussian_noise(x: torch.Tensor, sigma: float, rng: Rng) -> torch.Tensor:
    """Original: x + N(0, σ²) per value, clipped. Ours: the same (counter-based normal draws)."""
    return (x + sigma * rng.normal(0, *x.shape[1:])).clamp(0, 1)


@declare("shot_noise", "noise", cifar=(500, 250, 100, 75, 50), imagenet=(60, 25, 12, 5, 3))
def shot_noise(x: torch.Tensor, lam: float, rng: Rng) -> torch.Tensor:
    """Original: Poisson(x·λ)/λ per value, clipped. Ours: the same; exact Poisson below mean 25, N(m, m) rounded
    above (there x·λ is at least 25 counts)."""
    return (rng.poisson(0, x * lam) / lam).clamp(0, 1)


@declare("impulse_noise", "noise", cifar=(0.01, 0.02, 0.03, 0.05, 0.07), imagenet=(0.03, 0.06, 0.09, 0.17, 0.27))
def impulse_noise(x: torch.Tensor, amount: float, rng: Rng) -> torch.Tensor:
    """Original: scikit-image random_noise 's&p': each value (per channel) replaced with probability `amount`,
    half by 1, half by 0. Ours: the same."""
    flip = rng.uniform(0, *x.shape[1:]) < amount
    salt = rng.uniform(1, *x.shape[1:]) < 0.5
    return torch.where(flip, salt.float(), x)
