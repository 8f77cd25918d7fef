"""Checks from Carlini et al. 2019, "On evaluating adversarial robustness" (their checklist): a stronger attack
must not do worse than a weaker one (single step, black box, random noise), robust accuracy must fall as eps grows
and reach zero when eps is unbounded, every counted adversarial example must be valid, and more steps must not
break more points.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torchattacks

from robustcollapse.attacks.checks.base import Probe, check, finding, skipped
from robustcollapse.attacks.library import TORCHATTACKS_NORM
from robustcollapse.attacks.threat import eps_bound

CHECK_SQUARE_QUERIES = 1000  # Square on the white-box survivors only (AutoAttack's own stage has 5,000)
NOISE_DRAWS = 10


@check(
    "single_step_stronger",
    "points broken by the single-step attack but not by the iterative one, at some eps",
    "more points than Binomial(m, tolerance) gives by chance",
    "Carlini et al. 2019; Athalye et al. 2018",
    order=30,
)
def single_step_stronger(p: Probe) -> dict[str, Any]:
    iterative = p.iterative()
    single = "fgsm" if p.norm == "linf" else "fgm"
    worst = 0
    for eps in p.eps:
        it = p.runner.robust(iterative, eps, p.steps, p.m)
        one = p.runner.robust(single, eps, p.steps, p.m)
        worst = max(worst, int((it & ~one).sum()))
    return finding(worst, p.m, p.limit(), iterative=iterative, single=single, concerns=[iterative])


@check(
    "not_monotone",
    "an attack's robust accuracy rises as eps grows (more points robust at the larger eps)",
    "a rise of more points than Binomial(m, tolerance) gives by chance",
    "Carlini et al. 2019",
    order=40,
)
def not_monotone(p: Probe) -> dict[str, Any]:
    rise, worst_attack = 0, None
    for name in p.attacks:
        counts = [int(p.runner.robust(name, e, p.steps, p.m).sum()) for e in p.eps]
        for earlier, later in zip(counts, counts[1:], strict=False):
            if later - earlier > rise:
                rise, worst_attack = later - earlier, name
    return finding(rise, p.m, p.limit(), concerns=[worst_attack] if worst_attack else [])


@check(
    "unbounded_survivors",
    "points that PGD from the clean point cannot break even with an unbounded eps (should be none)",
    "more points than Binomial(m, tolerance) gives by chance",
    "Carlini et al. 2019; Athalye et al. 2018; Pintor et al. 2022, unconstrained attack failure",
    order=50,
)
def unbounded_survivors(p: Probe) -> dict[str, Any]:
    big = 1.0 if p.norm == "linf" else math.sqrt(p.x[0].numel())
    pgd_cls = torchattacks.PGD if p.norm == "linf" else torchattacks.PGDL2

    def unbounded_pgd(model: torch.nn.Module) -> Any:  # no random start: at eps = 1 it would replace the image
        return pgd_cls(model, eps=big, alpha=2.5 * big / p.steps, steps=p.steps, random_start=False)

    survivors = p.runner.robust("pgd-from-clean", big, p.steps, p.m, build=unbounded_pgd)
    return finding(int(survivors.sum()), p.m, p.limit(), eps=big)


@check(
    "black_box_stronger",
    "points a standalone Square attack (black box) breaks but no white-box attack of the test does, at the largest "
    "eps where the white-box attacks leave robust points (Square runs on those points alone)",
    "more points than Binomial(m, tolerance) gives by chance",
    "Carlini et al. 2019; Athalye et al. 2018",
    order=60,
)
def black_box_stronger(p: Probe) -> dict[str, Any]:
    eps = p.probe_eps()
    white = p.stage_masks(eps)["white"] or [~p.runner.robust(p.iterative(), eps, p.steps, p.m) & p.correct]
    white_robust = p.correct & ~torch.stack(white).any(0)

    def square(model: torch.nn.Module) -> Any:
        return torchattacks.Square(
            model,
            norm=TORCHATTACKS_NORM[p.norm],
            eps=eps,
            n_queries=CHECK_SQUARE_QUERIES,
            n_restarts=1,
            p_init=0.8,
            loss="margin",
            seed=p.runner.seed,
        )

    run = p.runner.run(f"square-{CHECK_SQUARE_QUERIES}", eps, p.steps, p.m, build=square, among=white_robust)
    broken = white_robust & run.success[: p.m]
    return finding(int(broken.sum()), p.m, p.limit(), eps=eps, queries=CHECK_SQUARE_QUERIES)


@check(
    "noise_not_weaker",
    "points that random noise of norm eps (10 draws, largest eps) breaks but no white-box attack does",
    "more points than Binomial(m, tolerance) gives by chance",
    "Carlini et al. 2019; Athalye et al. 2018",
    order=70,
)
def noise_not_weaker(p: Probe) -> dict[str, Any]:
    eps = max(p.eps)
    white = p.stage_masks(eps)["white"] or [~p.runner.robust(p.iterative(), eps, p.steps, p.m) & p.correct]
    white_robust = p.correct & ~torch.stack(white).any(0)
    gen = torch.Generator(device="cpu").manual_seed(p.runner.seed)
    noise_broken = torch.zeros_like(white_robust)
    for _ in range(NOISE_DRAWS):
        noise = torch.randn(p.x.shape, generator=gen).to(p.x.device)
        if p.norm == "linf":
            noise = noise.sign() * eps
        else:
            noise = noise / noise.flatten(1).norm(dim=1).view(-1, *[1] * (p.x.ndim - 1)) * eps
        noise_broken |= p.runner.predict((p.x + noise).clamp(0, 1), p.runner.batch_size) != p.y
    noise_acc = float((p.correct & ~noise_broken).double().mean())
    return finding(
        int((white_robust & noise_broken).sum()),
        p.m,
        p.limit(),
        noise_acc=noise_acc,
        attack_acc=float(white_robust.double().mean()),
    )


@check(
    "invalid_adversarials",
    "an attack (the suite's or a check's own) counts an input outside eps or [0, 1], returns one beyond eps while "
    "claiming to stay inside or one outside [0, 1], or its stored inputs are classified differently when "
    "re-measured in other batches",
    "any point",
    "Carlini et al. 2019",
    order=80,
    audits_runs=True,
)
def invalid_adversarials(p: Probe) -> dict[str, Any]:
    counted_out, returned_out, off_range, mismatch, reasons = 0, 0, 0, 0, []
    for (name, eps, steps, _), res in p.runner.memo.items():
        run = f"{name} eps={eps:.4g}" + (f" steps={steps}" if steps != p.steps else "")
        beyond = res.success & (res.size > eps_bound(eps, p.norm))
        off = res.success & ~res.in_range
        if int(beyond.sum()):
            reasons.append(f"{run}: {int(beyond.sum())} counted adversarials outside eps")
        if int(off.sum()):
            reasons.append(f"{run}: {int(off.sum())} counted adversarials outside [0, 1]")
        if int((~res.in_range).sum()):
            reasons.append(f"{run}: returned {int((~res.in_range).sum())} inputs outside [0, 1]")
            returned_out += 1
        if res.returned_excess > eps_bound(eps, p.norm) - eps:
            reasons.append(f"{run}: returned inputs up to {res.returned_excess:.3g} beyond eps")
            returned_out += 1
        if res.recount_mismatch:
            reasons.append(f"{run}: {res.recount_mismatch} predictions change when re-measured")
        counted_out += int(beyond.sum())
        off_range += int(off.sum())
        mismatch += res.recount_mismatch
    total = counted_out + off_range + returned_out + mismatch
    return {
        "flag": total > 0,
        "value": total,
        "threshold": 0,
        "counted_outside_eps": counted_out,
        "counted_outside_range": off_range,
        "runs_returning_invalid": returned_out,
        "recount_mismatch": mismatch,
        "why": "; ".join(reasons),
    }


@check(
    "steps_sensitive",
    "points robust with `steps` steps but broken with twice as many (the attack had not converged); skipped for "
    "fixed-budget attacks",
    "more points than Binomial(m, tolerance) gives by chance",
    "Carlini et al. 2019; Pintor et al. 2022, incomplete optimisation",
    order=90,
)
def steps_sensitive(p: Probe) -> dict[str, Any]:
    steppable = [n for n in p.attacks if p.kind(n).iterative and not p.kind(n).fixed_budget]
    if not steppable:
        return skipped("every attack of this test has a fixed budget (steps do not apply)")
    name = steppable[0]
    probe = next((e for e in reversed(p.eps) if p.runner.robust(name, e, p.steps, p.m).any()), max(p.eps))
    base = p.runner.robust(name, probe, p.steps, p.m)
    doubled = p.runner.robust(name, probe, 2 * p.steps, p.m)
    return finding(int((base & ~doubled).sum()), p.m, p.limit(), attack=name, eps=probe, concerns=[name])
