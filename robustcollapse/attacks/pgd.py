"""Our own PGD, for the checks that must control its loss and keep its path: one rule (random start, `steps` steps
of 2.5 eps/steps, projection onto the eps-ball and onto [0, 1]) with a choice of objective.

- `ce`: cross-entropy of the true class (what torchattacks' PGD maximises);
- `margin`: the untargeted margin max_{j != y} z_j - z_y (Carlini & Wagner 2017; positive once misclassified);
- a `target` class t: the targeted margin z_t - z_y, the loss of multi-targeted PGD (Gowal et al. 2019) and,
  normalised, of APGD-T (Croce & Hein 2020).

`traced_pgd` returns the final iterate with the loss and the validity of every iterate; `MultiTargeted` runs the
targeted margin towards each of the top-k other classes in turn, each on the points still robust.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from robustcollapse.attacks.threat import in_unit_range, perturbation_norm, within

Loss = Literal["ce", "margin"]


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example margin loss max_{j != y} z_j - z_y (positive once misclassified)."""
    own = logits.gather(1, y[:, None]).squeeze(1)
    return logits.scatter(1, y[:, None], float("-inf")).amax(1) - own


def objective(logits: torch.Tensor, y: torch.Tensor, loss: Loss, target: torch.Tensor | None) -> torch.Tensor:
    """The per-example quantity PGD ascends: the targeted margin z_t - z_y when `target` is given, else `loss`."""
    if target is not None:
        return (logits.gather(1, target[:, None]) - logits.gather(1, y[:, None])).squeeze(1)
    return F.cross_entropy(logits, y, reduction="none") if loss == "ce" else margin_loss(logits, y)


def random_start(x: torch.Tensor, norm: str, eps: float, gen: torch.Generator) -> torch.Tensor:
    """A uniform point of the L-inf ball, or a random direction at a uniform radius of the L2 ball, in [0, 1]."""
    shape = (-1, *[1] * (x.ndim - 1))
    noise = torch.rand(x.shape, generator=gen).to(x.device) * 2 - 1
    if norm == "linf":
        return (x + eps * noise).clamp(0, 1)
    radius = torch.rand(len(x), 1, generator=gen).to(x.device).view(shape)
    return (x + noise / noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape) * eps * radius).clamp(0, 1)


def _step(adv: torch.Tensor, x: torch.Tensor, grad: torch.Tensor, norm: str, eps: float, alpha: float) -> torch.Tensor:
    """One ascent step, projected onto the eps-ball around x and onto [0, 1]."""
    shape = (-1, *[1] * (x.ndim - 1))
    if norm == "linf":
        adv = x + (adv + alpha * grad.sign() - x).clamp(-eps, eps)
    else:
        delta = adv + alpha * grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape) - x
        adv = x + delta * (eps / perturbation_norm(delta, "l2").clamp_min(eps)).view(shape)
    return adv.clamp(0, 1)


def traced_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    norm: str,
    eps: float,
    steps: int,
    seed: int,
    loss: Loss = "ce",
    target: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PGD with the suite's rule from a seeded random start: per point the first iterate that is a valid adversarial
    example (misclassified, within eps, inside [0, 1]) or else the final one, the objective along the path
    (steps+1, n) and each iterate's validity (steps+1, n). The same seed gives the same start whatever the loss, so
    two objectives compare fairly."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    alpha = 2.5 * eps / steps
    adv = random_start(x, norm, eps, gen)
    losses, fooled = [], []
    kept = adv.clone()
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for step in range(steps + 1):
        adv = adv.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(adv)
            value = objective(logits, y, loss, target)
            grad = torch.autograd.grad(value.sum(), adv)[0] if step < steps else None
        adv = adv.detach()
        losses.append(value.detach())
        valid = (logits.detach().argmax(1) != y) & within(adv - x, norm, eps) & in_unit_range(adv)
        fooled.append(valid)
        kept = torch.where((valid & ~found).view(-1, *[1] * (x.ndim - 1)), adv, kept)
        found |= valid
        if grad is None:
            break
        adv = _step(adv, x, grad, norm, eps, alpha)
    return torch.where(found.view(-1, *[1] * (x.ndim - 1)), kept, adv), torch.stack(losses), torch.stack(fooled)


class PGD:
    """A callable attack (x, y) -> adversarial inputs: our PGD on one objective (the first fooling iterate, else the
    final one)."""

    def __init__(self, model: nn.Module, norm: str, eps: float, steps: int, seed: int, loss: Loss = "ce") -> None:
        self.model, self.norm, self.eps, self.steps, self.seed, self.loss = model, norm, eps, steps, seed, loss

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return traced_pgd(self.model, x, y, self.norm, self.eps, self.steps, self.seed, self.loss)[0]


class MultiTargeted:
    """Multi-targeted PGD: the targeted margin towards each of the k classes the model ranks highest after the true
    one, `steps` steps each from the same seeded start, each target only on the points still robust; a point keeps
    the first iterate that fools the model (else the last target's final iterate)."""

    def __init__(self, model: nn.Module, norm: str, eps: float, steps: int, seed: int, k: int) -> None:
        self.model, self.norm, self.eps, self.steps, self.seed, self.k = model, norm, eps, steps, seed, k

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            ranked = self.model(x).scatter(1, y[:, None], float("-inf")).argsort(1, descending=True)
        adv = x.clone()
        left = torch.ones(len(x), dtype=torch.bool, device=x.device)
        for rank in range(min(self.k, ranked.shape[1] - 1)):
            idx = torch.nonzero(left).squeeze(1)
            if not len(idx):
                break
            out, _, fooled = traced_pgd(
                self.model, x[idx], y[idx], self.norm, self.eps, self.steps, self.seed, target=ranked[idx, rank]
            )
            adv[idx] = out
            left[idx[fooled.any(0)]] = False
        return adv
