"""Checks from Athalye, Carlini & Wagner 2018, "Obfuscated gradients give a false sense of security": a randomised
forward pass (stochastic gradients) and a gradient that is zero or not finite (shattered gradients).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from robustcollapse.attacks.checks.base import Probe, check, finding

LOGIT_ATOL = 1e-5
LOGIT_RTOL = 1e-5


@check(
    "nondeterministic",
    "the logits of a point change across three identical forward passes (a randomised model: attack it with EOT)",
    "any point (|a - b| > 1e-5 + 1e-5 |a| for a logit a centred on its point's mean: each judged on its own "
    "scale, not the largest logit's)",
    "Athalye et al. 2018, stochastic gradients",
    order=10,
)
def nondeterministic(p: Probe) -> dict[str, Any]:
    with torch.inference_mode():  # logits centred per point: a shift common to all classes changes nothing
        passes = [(z - z.mean(1, keepdim=True)).double() for z in (p.runner.model(p.x) for _ in range(3))]
    differs = torch.zeros(p.m, dtype=torch.bool, device=p.x.device)
    for other in passes[1:]:
        differs |= ((other - passes[0]).abs() > LOGIT_ATOL + LOGIT_RTOL * passes[0].abs()).any(1)
    diff = float(max((other - passes[0]).abs().max() for other in passes[1:]))
    return finding(int(differs.sum()), p.m, 0, max_abs_diff=diff)


def _bad_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Which points' cross-entropy gradient is all zero or has a non-finite entry."""
    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        grad = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)[0].flatten(1)
    return (grad == 0).all(1) | ~torch.isfinite(grad).all(1)


@check(
    "bad_gradients",
    "the loss gradient is all zero or not finite, at the clean point or at a random point of the eps-ball",
    "more points than Binomial(m, tolerance) gives by chance",
    "Athalye et al. 2018 (shattered gradients); Pintor et al. 2022, unavailable gradients",
    order=20,
)
def bad_gradients(p: Probe) -> dict[str, Any]:
    model = p.runner.attacked_model
    eps = max(p.eps)
    gen = torch.Generator(device="cpu").manual_seed(p.runner.seed)
    noise = (torch.rand(p.x.shape, generator=gen) * 2 - 1).to(p.x.device)
    if p.norm == "l2":
        noise = noise / noise.flatten(1).norm(dim=1).view(-1, *[1] * (p.x.ndim - 1))
    perturbed = (p.x + eps * noise).clamp(0, 1)
    at_clean = _bad_gradient(model, p.x, p.y)
    at_ball = _bad_gradient(model, perturbed, p.y)
    return finding(
        int((at_clean | at_ball).sum()),
        p.m,
        p.limit(),
        at_clean=float(at_clean.double().mean()),
        in_ball=float(at_ball.double().mean()),
    )
