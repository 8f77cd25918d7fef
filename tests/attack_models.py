"""Models the attack and honesty-check tests share: wrappers that mask a model's gradients (the checks must fire
on them, never on the model itself)."""

from __future__ import annotations

import torch
from torch import nn


class Quantised(nn.Module):
    """Masks gradients: rounds the input to 4 grey levels (zero gradient almost everywhere)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 4) / 4)


class Saturated(nn.Module):
    """Masks gradients: a huge softmax temperature makes the cross-entropy gradient underflow to 0."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 1e4
