"""A randomised defence for the tests of EOT and of the `nondeterministic` check."""

from __future__ import annotations

import torch
from torch import nn


class Noisy(nn.Module):
    """Randomised defence: Gaussian noise (sigma 0.3) on the input at every forward pass."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner((x + 0.3 * torch.randn_like(x)).clamp(0, 1))
