"""Classification heads: backbone features h -> (latent z read by the collapse metrics, logits), and the loss."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, Field
from torch import nn

from robustcollapse.distributed import batch_mean
from robustcollapse.registry import register


class Head(nn.Module):
    """`forward(h) -> (z, logits)`; `loss(logits, z, y) -> scalar`; `classifier` is the last linear layer.

    The loss is a mean over the batch it is given. In data-parallel training that is one rank's slice of the global
    batch, and the loop weights it by the slice's share: right for means of per-example terms (cross-entropy, the
    HAFrame pull); a term of the whole batch that is not such a mean must use `distributed.batch_mean`."""

    classifier: nn.Linear
    latent_dim: int

    def loss(self, logits: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop before each (0-based) epoch; for loss schedules."""

    def history_fields(self) -> dict[str, float]:
        """Schedule values worth recording in the per-epoch training history."""
        return {}


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


def auto_latent_dim(num_classes: int) -> int:
    """The binary-encoding paper's rule of thumb: the smallest d with 2^d > K (K=10 -> 4, K=100 -> 7)."""
    return max(1, math.floor(math.log2(num_classes)) + 1)


def _latent_dim_value(value: int | str) -> int | str:
    if value == "auto" or (isinstance(value, int) and value >= 1):
        return value
    raise ValueError(f"d must be a positive integer or 'auto', not {value!r}")


LatentDim = Annotated[int | str, AfterValidator(_latent_dim_value)]


def latent_dim(d: int | str, num_classes: int) -> int:
    return auto_latent_dim(num_classes) if d == "auto" else int(d)


def gamma_at(epoch: int, gamma0: float, growth: float, cap: float) -> float:
    """Weight of the l2 penalty in (0-based) epoch t: min(gamma0 * growth^t, cap)."""
    return min(gamma0 * growth**epoch, cap)


class LatentHead(Head):
    """Backbone features -> penultimate latent z (d dims, optional activation) -> linear classifier."""

    def __init__(self, in_dim: int, num_classes: int, d: int, activation: nn.Module | None = None) -> None:
        super().__init__()
        self.project = nn.Linear(in_dim, d)
        self.activation = activation or nn.Identity()
        self.classifier = nn.Linear(d, num_classes)
        self.latent_dim = d

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.activation(self.project(h))
        return z, self.classifier(z)


class BinaryHead(LatentHead):
    """Sbailo & Ghiringhelli's binary-encoding head: linear z = W h + b (no activation), linear classifier.

    penalty 'exp' (v1): loss = CE + lam * exp(mean over batch and dims of z^2): the exponential pressure to
    shrink ||z|| against the CE pressure to separate classes makes each coordinate of z settle on two values.
    penalty 'l2' (published v4): loss = CE + gamma_t * mean(z^2), gamma_t = min(gamma0 * growth^t, gamma_max)
    growing each epoch t (0-based).

    The mean of z^2 is over the whole batch: in data-parallel training `distributed.batch_mean` takes it over every
    rank's slice (exp of a slice's mean is not the batch's), and in one process it is `mean()` itself.
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        d: int,
        lam: float,
        penalty: str,
        gamma0: float,
        gamma_growth: float,
        gamma_max: float,
    ) -> None:
        super().__init__(in_dim, num_classes, d)
        self.lam, self.penalty = lam, penalty
        self.gamma0, self.gamma_growth, self.gamma_max = gamma0, gamma_growth, gamma_max
        self.gamma = gamma0

    def set_epoch(self, epoch: int) -> None:
        self.gamma = gamma_at(epoch, self.gamma0, self.gamma_growth, self.gamma_max)

    def history_fields(self) -> dict[str, float]:
        return {"gamma": self.gamma} if self.penalty == "l2" else {}

    def loss(self, logits: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mean_square = batch_mean(z.float().pow(2))
        if self.penalty == "l2":
            return F.cross_entropy(logits, y) + self.gamma * mean_square
        return F.cross_entropy(logits, y) + self.lam * torch.exp(mean_square)


@register("head", "binary")
def binary(
    in_dim: int,
    num_classes: int,
    d: LatentDim = 16,
    lam: Annotated[float, Field(ge=0)] = 10.0,
    penalty: Literal["exp", "l2"] = "exp",
    gamma0: Annotated[float, Field(ge=0)] = 0.01,
    gamma_growth: Annotated[float, Field(ge=1)] = 1.05,
    gamma_max: Annotated[float, Field(gt=0)] = 1e6,
) -> Head:
    """Binary-latent head: linear d-dim latent, CE + lam*exp(mean z^2) or + gamma_t*mean z^2 (arXiv 2310.08224)."""
    return BinaryHead(in_dim, num_classes, latent_dim(d, num_classes), lam, penalty, gamma0, gamma_growth, gamma_max)


@register("head", "linear-pen")
def linear_pen(in_dim: int, num_classes: int, d: LatentDim = "auto") -> Head:
    """The paper's control: a linear d-dim penultimate layer, no penalty (d: auto = smallest with 2^d > K)."""
    return LatentHead(in_dim, num_classes, latent_dim(d, num_classes))


@register("head", "nonlinear-pen")
def nonlinear_pen(in_dim: int, num_classes: int, d: LatentDim = "auto") -> Head:
    """The paper's control: a SiLU d-dim penultimate layer, no penalty (d: auto = smallest with 2^d > K)."""
    return LatentHead(in_dim, num_classes, latent_dim(d, num_classes), nn.SiLU())


class FixedFrameHead(Head):
    """Backbone features -> trainable linear projection z (d dims) -> classifier fixed to the rows of a frame.

    The classifier has no bias and is never trained (its weight is saved with the model); the backbone and the
    projection learn to put each class's features on its frame vector."""

    def __init__(self, in_dim: int, frame: torch.Tensor) -> None:
        super().__init__()
        k, d = frame.shape
        self.project = nn.Linear(in_dim, d)
        self.classifier = nn.Linear(d, k, bias=False)
        with torch.no_grad():
            self.classifier.weight.copy_(frame)
        self.classifier.weight.requires_grad_(False)
        self.latent_dim = d

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.project(h)
        return z, self.classifier(z)


def _frame_dim(d: int | str, num_classes: int) -> int:
    return num_classes if d == "auto" else int(d)


@register("head", "etf")
def etf(in_dim: int, num_classes: int, d: LatentDim = "auto", rotate: bool = True, seed: int = 0) -> Head:
    """Classifier fixed to a simplex ETF (unit rows, pairwise cos -1/(K-1)) in d >= K-1 dims (auto: K)."""
    from robustcollapse.models.frames import frame_from_gram, simplex_etf_gram

    frame = frame_from_gram(simplex_etf_gram(num_classes), _frame_dim(d, num_classes), seed, rotate)
    return FixedFrameHead(in_dim, frame)


class HAFrameHead(FixedFrameHead):
    """HAFrame: fixed hierarchy-aware frame W (W Wᵀ = S), loss (1 − α)·CE(z Wᵀ, y) + α·mean over the batch of
    Σ_c (cos(z, w_c) − S_{y,c})² (Liang & Davis, ICCV 2023; constant schedule, β = 1 − α)."""

    def __init__(self, in_dim: int, frame: torch.Tensor, similarity: torch.Tensor, alpha: float) -> None:
        super().__init__(in_dim, frame)
        self.register_buffer("similarity", similarity.float())
        self.alpha = alpha

    def loss(self, logits: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cos = F.normalize(z.float(), dim=1) @ F.normalize(self.classifier.weight.float(), dim=1).T
        pull = (cos - self.similarity[y]).pow(2).sum(dim=1).mean()
        return (1 - self.alpha) * F.cross_entropy(logits, y) + self.alpha * pull


@register("head", "haframe")
def haframe(
    in_dim: int,
    num_classes: int,
    hierarchy: str = "pairs",
    gamma: Annotated[float, Field(gt=0)] = 2.0,
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.4,
    mapping: Literal["exp", "linear"] = "exp",
    d: LatentDim = "auto",
    seed: int = 0,
    classes: list[str] | None = None,
) -> Head:
    """Hierarchy-Aware Frame: classifier fixed to vectors whose cosines fall with LCA height, + cosine pull loss."""
    from robustcollapse.data.hierarchy import load_hierarchy
    from robustcollapse.models.frames import frame_from_gram, haframe_similarity

    tree = load_hierarchy(hierarchy, classes or [str(i) for i in range(num_classes)])
    similarity = haframe_similarity(tree.lca_heights(), gamma, mapping)
    frame = frame_from_gram(similarity, _frame_dim(d, num_classes), seed)
    return HAFrameHead(in_dim, frame, similarity, alpha)


class SphericalHead(Head):
    """Features and classifier rows on the unit sphere, logits = τ·cos (generalised collapse, K >> d allowed)."""

    def __init__(self, in_dim: int, num_classes: int, d: int, tau: float) -> None:
        super().__init__()
        self.project = nn.Linear(in_dim, d)
        self.classifier = nn.Linear(d, num_classes, bias=False)
        self.tau = tau
        self.latent_dim = d

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = F.normalize(self.project(h), dim=1)
        return z, self.tau * z @ F.normalize(self.classifier.weight, dim=1).T


@register("head", "spherical")
def spherical(in_dim: int, num_classes: int, d: LatentDim = "auto", tau: Annotated[float, Field(gt=0)] = 10.0) -> Head:
    """Unit-norm features and classifier rows, logits tau*cos; d may be far below K-1 (auto: smallest 2^d > K)."""
    return SphericalHead(in_dim, num_classes, latent_dim(d, num_classes), tau)
