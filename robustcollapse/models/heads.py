"""Classification heads: backbone features h -> (latent z read by the collapse metrics, logits), and the loss."""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from robustcollapse.registry import register


class Head(nn.Module):
    """`forward(h) -> (z, logits)`; `loss(logits, z, y) -> scalar`; `classifier` is the last linear layer."""

    classifier: nn.Linear
    latent_dim: int

    def loss(self, logits: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)


class LinearHead(Head):
    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(in_dim, num_classes)
        self.latent_dim = in_dim

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return h, self.classifier(h)


@register("head", "linear")
def linear(in_dim: int, num_classes: int) -> Head:
    """Baseline: a linear classifier on the backbone features, cross-entropy loss."""
    return LinearHead(in_dim, num_classes)


class BinaryHead(Head):
    """Sbailo & Ghiringhelli's binary-encoding head: linear z = W h + b (no activation), linear classifier.

    Loss = CE(logits, y) + lam * exp(mean over batch and dims of z^2): the exponential pressure to shrink
    ||z|| against the CE pressure to separate classes makes each coordinate of z settle on two values.
    """

    def __init__(self, in_dim: int, num_classes: int, d: int, lam: float) -> None:
        super().__init__()
        self.project = nn.Linear(in_dim, d)
        self.classifier = nn.Linear(d, num_classes)
        self.latent_dim = d
        self.lam = lam

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.project(h)
        return z, self.classifier(z)

    def loss(self, logits: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y) + self.lam * torch.exp(z.float().pow(2).mean())


@register("head", "binary")
def binary(
    in_dim: int,
    num_classes: int,
    d: Annotated[int, Field(ge=1)] = 16,
    lam: Annotated[float, Field(ge=0)] = 10.0,
) -> Head:
    """Binary-latent head: linear d-dim latent + CE + lam*exp(mean z^2) (arXiv 2310.08224)."""
    return BinaryHead(in_dim, num_classes, d, lam)
