"""Checks from Pintor et al. 2022, "Indicators of attack failure": silent success, incomplete optimisation,
transfer failure and unstable predictions. Their other two indicators live with the source each check cites
first: unavailable gradients (`bad_gradients`, Athalye et al.) and unconstrained attack failure
(`unbounded_survivors`, Carlini et al.). Silent success and incomplete optimisation read the path of one traced
PGD run (`traced_pgd`), computed once per probe.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from robustcollapse.attacks.checks.base import Probe, check, finding, skipped
from robustcollapse.attacks.pgd import margin_loss, traced_pgd

UNSTABLE_DRAWS = 20
UNSTABLE_RELATIVE_CHANGE = 0.5
INCOMPLETE_WINDOW = 0.1  # the last 10 % of the steps (Pintor et al.: the last 10 of their runs)
INCOMPLETE_RISE = 0.05
CONFIRM_FACTOR = 5  # a suspect point counts once PGD with 5x the steps (same rule, seeded) breaks it


def _trace(p: Probe) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The traced PGD at the largest eps where the iterative attack leaves robust points (cached on the probe)."""
    if p.trace is None:
        eps = p.probe_eps()
        _, losses, fooled = traced_pgd(p.runner.attacked_model, p.x, p.y, p.norm, eps, p.steps, p.runner.seed)
        p.trace = (losses, fooled & p.correct, eps)
    return p.trace


@check(
    "silent_success",
    "PGD passes through an adversarial example but returns a point that is not one (it keeps the last iterate)",
    "more points than Binomial(m, tolerance) gives by chance",
    "Pintor et al. 2022, silent success",
    order=100,
)
def silent_success(p: Probe) -> dict[str, Any]:
    _, fooled, eps = _trace(p)
    silent = fooled[:-1].any(0) & ~fooled[-1]
    return finding(int(silent.sum()), p.m, p.limit(), eps=eps)


@check(
    "incomplete_optimisation",
    "on points PGD leaves robust, its best loss still rose by more than 5 % of its range in the last 10 % of the "
    "steps, and the same PGD with 5 times the steps then breaks them (a rise alone is only a suspicion)",
    "more points than Binomial(m, tolerance) gives by chance",
    "Pintor et al. 2022, incomplete optimisation",
    order=110,
)
def incomplete_optimisation(p: Probe) -> dict[str, Any]:
    losses, fooled, eps = _trace(p)
    best = losses.cummax(0).values
    span = (best[-1] - best[0]).clamp_min(1e-12)
    window = max(1, math.ceil(INCOMPLETE_WINDOW * (len(best) - 1)))
    rising = (best[-1] - best[-1 - window]) / span > INCOMPLETE_RISE
    suspects = rising & p.correct & ~fooled.any(0)
    confirmed = torch.zeros_like(suspects)
    longer = CONFIRM_FACTOR * p.steps
    if suspects.any():
        idx = torch.nonzero(suspects).squeeze(1)
        _, _, path = traced_pgd(p.runner.attacked_model, p.x[idx], p.y[idx], p.norm, eps, longer, p.runner.seed)
        confirmed[idx] = path.any(0)
    return finding(int(confirmed.sum()), p.m, p.limit(), eps=eps, rising=int(suspects.sum()), confirm_steps=longer)


@check(
    "transfer_failure",
    "adversarial examples that fool the view the attack optimised (the EOT mean) but not the model itself",
    "more points than Binomial(m, tolerance) gives by chance; skipped when attacks see the model itself",
    "Pintor et al. 2022, transfer failure",
    order=120,
)
def transfer_failure(p: Probe) -> dict[str, Any]:
    runs = [(key, res) for key, res in p.runner.memo.items() if res.surrogate_fooled is not None]
    if not runs:
        return skipped("the attacks optimised the model itself (no surrogate, no EOT)")
    worst, where = 0, None
    for key, res in runs:
        failed = int((res.surrogate_fooled[: p.m] & res.robust[: p.m]).sum())
        if failed > worst:
            worst, where = failed, key[0]
    return finding(worst, p.m, p.limit(), concerns=[where] if where else [])


@check(
    "unstable_predictions",
    "the margin loss moves by more than half its size under random noise far smaller than eps (a rugged or "
    "random loss surface that gradient steps cannot follow)",
    "more points than Binomial(m, tolerance) gives by chance",
    "Pintor et al. 2022, unstable predictions",
    order=130,
)
def unstable_predictions(p: Probe) -> dict[str, Any]:
    radius = min(p.eps) / 10 if p.norm == "linf" else min(p.eps) / 10 / math.sqrt(p.x[0].numel())
    gen = torch.Generator(device="cpu").manual_seed(p.runner.seed)
    model = p.runner.attacked_model
    with torch.inference_mode():
        ref = margin_loss(model(p.x), p.y)
        change = torch.zeros_like(ref)
        for _ in range(UNSTABLE_DRAWS):
            noise = ((torch.rand(p.x.shape, generator=gen) * 2 - 1) * radius).to(p.x.device)
            change += (margin_loss(model((p.x + noise).clamp(0, 1)), p.y) - ref).abs()
    relative = change / UNSTABLE_DRAWS / ref.abs().clamp_min(1e-12)
    unstable = (relative > UNSTABLE_RELATIVE_CHANGE) & p.correct
    return finding(int(unstable.sum()), p.m, p.limit(), radius=radius)
