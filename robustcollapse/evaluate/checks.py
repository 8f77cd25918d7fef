"""Honesty checks of a robustness number: each a small registered function, all run on one common set of points.

Sources: Carlini et al. 2019, "On evaluating adversarial robustness" (their checklist); Athalye, Carlini &
Wagner 2018, "Obfuscated gradients give a false sense of security"; Pintor et al. 2022, "Indicators of attack
failure" (their six indicators: silent success, incomplete optimisation, transfer failure, unavailable
gradients, unstable predictions, unconstrained attack failure).

A check counts the points (among the first m) on which it sees its symptom. Where a few points may show it by
chance, it fires only when the count exceeds the (1 - ALPHA) quantile of Binomial(m, tolerance): with m = 200
and tolerance 0.02 that is 9 points, not the 4 a fixed 2 % would allow. Checks whose symptom is a bug (an
invalid adversarial example, a changing forward pass) fire on a single point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torchattacks
from scipy.stats import binom

from robustcollapse import registry
from robustcollapse.attacks import TORCHATTACKS_NORM, AttackKind, Runner, eps_bound, stage_names
from robustcollapse.attacks.adversary import margin_loss, traced_pgd
from robustcollapse.registry import register

ALPHA = 0.01
CHEAP_SQUARE_QUERIES = 1000
NOISE_DRAWS = 10
UNSTABLE_DRAWS = 20
UNSTABLE_RELATIVE_CHANGE = 0.5
INCOMPLETE_WINDOW = 0.1  # the last 10 % of the steps (Pintor et al.: the last 10 of their runs)
INCOMPLETE_RISE = 0.05
LOGIT_ATOL = 1e-5
LOGIT_RTOL = 1e-5


@dataclass
class Probe:
    """What a check sees: the runner (attacks memoised on its points), the test's attacks, norm, eps, steps, and the
    m common points every check uses."""

    runner: Runner
    attacks: list[str]
    eps: list[float]
    steps: int
    m: int
    tolerance: float
    trace: tuple[torch.Tensor, torch.Tensor, float] | None = None

    @property
    def x(self) -> torch.Tensor:
        return self.runner.x[: self.m]

    @property
    def y(self) -> torch.Tensor:
        return self.runner.y[: self.m]

    @property
    def norm(self) -> str:
        return self.runner.norm

    @property
    def correct(self) -> torch.Tensor:
        return self.runner.clean_correct(self.m)

    def kind(self, name: str) -> AttackKind:
        return registry.get("attack", name)

    def iterative(self) -> str:
        """The suite's iterative white-box attack the checks compare against (PGD if none is listed)."""
        preferred = [n for n in self.attacks if n in ("pgd", "pgdl2", "apgd-ce")]
        white = [
            n for n in self.attacks if self.kind(n).white_box and self.kind(n).iterative and not self.kind(n).components
        ]
        return (preferred or white or ["pgd" if self.norm == "linf" else "pgdl2"])[0]

    def stage_masks(self, eps: float) -> dict[str, list[torch.Tensor]]:
        """Points broken per stage kind at eps, over every listed attack: {'white': [...], 'black': [...]}."""
        out: dict[str, list[torch.Tensor]] = {"white": [], "black": []}
        for name in self.attacks:
            res = self.runner.result(name, eps, self.steps, self.m)
            for stage in stage_names(name, self.kind(name)):
                side = "white" if self.kind(stage).white_box else "black"
                out[side].append(res.broken_by[stage][: self.m])
        return out

    def limit(self) -> int:
        """Largest count of points that may show a symptom by chance (binomial bound at rate `tolerance`)."""
        return chance_limit(self.m, self.tolerance)


def chance_limit(m: int, rate: float, alpha: float = ALPHA) -> int:
    """The (1 - alpha) quantile of Binomial(m, rate): a count above it is unlikely (< alpha) at that rate."""
    return int(binom.ppf(1 - alpha, m, rate)) if rate > 0 else 0


@dataclass(frozen=True)
class Check:
    """A registered honesty check: what it detects, its threshold, its source, and the function computing it."""

    name: str
    detects: str
    threshold: str
    source: str
    fn: Callable[[Probe], dict[str, Any]]

    def __call__(self, probe: Probe) -> dict[str, Any]:
        return self.fn(probe)


def check(name: str, detects: str, threshold: str, source: str):
    """Register `fn(probe) -> finding` as the check `name` (its docstring is the first line of `detects`)."""

    def wrap(fn: Callable[[Probe], dict[str, Any]]) -> Check:
        entry = Check(name, detects, threshold, source, fn)
        object.__setattr__(entry, "__doc__", detects)
        register("check", name)(entry)
        return entry

    return wrap


def finding(count: int, m: int, limit: int, **extra: Any) -> dict[str, Any]:
    """A check's result: `value` the fraction of points showing the symptom, `threshold` the fraction above which
    it fires, `flag` whether it fired."""
    return {"flag": count > limit, "value": count / max(m, 1), "threshold": limit / max(m, 1), "count": count, **extra}


def skipped(reason: str) -> dict[str, Any]:
    return {"flag": False, "value": None, "threshold": None, "skipped": reason}


def names() -> list[str]:
    """The checks in the order they run and are shown."""
    return list(ORDER)


@check(
    "nondeterministic",
    "the logits of a point change across three identical forward passes (a randomised model: attack it with EOT)",
    "any point (|a - b| > 1e-5 + 1e-5 |a| for a logit a centred on its point's mean: each judged on its own "
    "scale, not the largest logit's)",
    "Athalye et al. 2018, stochastic gradients",
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
    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        grad = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)[0].flatten(1)
    return (grad == 0).all(1) | ~torch.isfinite(grad).all(1)


@check(
    "bad_gradients",
    "the loss gradient is all zero or not finite, at the clean point or at a random point of the eps-ball",
    "more points than Binomial(m, tolerance) gives by chance",
    "Athalye et al. 2018 (shattered gradients); Pintor et al. 2022, unavailable gradients",
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


@check(
    "single_step_stronger",
    "points broken by the single-step attack but not by the iterative one, at some eps",
    "more points than Binomial(m, tolerance) gives by chance",
    "Carlini et al. 2019; Athalye et al. 2018",
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
    "points broken by a black-box attack (Square, also inside AutoAttack) but by no white-box attack, at the largest "
    "eps",
    "more points than Binomial(m, tolerance) gives by chance",
    "Carlini et al. 2019; Athalye et al. 2018",
)
def black_box_stronger(p: Probe) -> dict[str, Any]:
    eps = max(p.eps)
    masks = p.stage_masks(eps)
    if not masks["white"]:
        masks["white"] = [~p.runner.robust(p.iterative(), eps, p.steps, p.m) & p.correct]
    if not masks["black"]:

        def cheap_square(model: torch.nn.Module) -> Any:
            return torchattacks.Square(
                model,
                norm=TORCHATTACKS_NORM[p.norm],
                eps=eps,
                n_queries=CHEAP_SQUARE_QUERIES,
                n_restarts=1,
                seed=p.runner.seed,
            )

        masks["black"] = [~p.runner.robust("square-cheap", eps, p.steps, p.m, build=cheap_square) & p.correct]
    white_robust = p.correct & ~torch.stack(masks["white"]).any(0)
    black_broken = torch.stack(masks["black"]).any(0)
    return finding(int((white_robust & black_broken).sum()), p.m, p.limit(), eps=eps)


@check(
    "noise_not_weaker",
    "points that random noise of norm eps (10 draws, largest eps) breaks but no white-box attack does",
    "more points than Binomial(m, tolerance) gives by chance",
    "Carlini et al. 2019; Athalye et al. 2018",
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
    "claiming to stay inside, or its stored inputs are classified differently when re-measured in other batches",
    "any point",
    "Carlini et al. 2019",
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
        "runs_returning_beyond_eps": returned_out,
        "recount_mismatch": mismatch,
        "why": "; ".join(reasons),
    }


@check(
    "steps_sensitive",
    "points robust with `steps` steps but broken with twice as many (the attack had not converged); skipped for "
    "fixed-budget attacks",
    "more points than Binomial(m, tolerance) gives by chance",
    "Carlini et al. 2019; Pintor et al. 2022, incomplete optimisation",
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


def _trace(p: Probe) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The traced PGD at the largest eps where the iterative attack leaves robust points (cached on the probe)."""
    if p.trace is None:
        it = p.iterative()
        eps = next((e for e in reversed(p.eps) if p.runner.robust(it, e, p.steps, p.m).any()), max(p.eps))
        losses, fooled = traced_pgd(p.runner.attacked_model, p.x, p.y, p.norm, eps, p.steps, p.runner.seed)
        p.trace = (losses, fooled & p.correct, eps)
    return p.trace


@check(
    "silent_success",
    "PGD passes through an adversarial example but returns a point that is not one (it keeps the last iterate)",
    "more points than Binomial(m, tolerance) gives by chance",
    "Pintor et al. 2022, silent success",
)
def silent_success(p: Probe) -> dict[str, Any]:
    _, fooled, eps = _trace(p)
    silent = fooled[:-1].any(0) & ~fooled[-1]
    return finding(int(silent.sum()), p.m, p.limit(), eps=eps)


@check(
    "incomplete_optimisation",
    "on points PGD leaves robust, its best loss still rose by more than 5 % of its range in the last 10 % of the steps",
    "more points than Binomial(m, tolerance) gives by chance",
    "Pintor et al. 2022, incomplete optimisation",
)
def incomplete_optimisation(p: Probe) -> dict[str, Any]:
    losses, fooled, eps = _trace(p)
    best = losses.cummax(0).values
    span = (best[-1] - best[0]).clamp_min(1e-12)
    window = max(1, math.ceil(INCOMPLETE_WINDOW * (len(best) - 1)))
    rising = (best[-1] - best[-1 - window]) / span > INCOMPLETE_RISE
    still_robust = p.correct & ~fooled.any(0)
    return finding(int((rising & still_robust).sum()), p.m, p.limit(), eps=eps)


@check(
    "transfer_failure",
    "adversarial examples that fool the view the attack optimised (the EOT mean) but not the model itself",
    "more points than Binomial(m, tolerance) gives by chance; skipped when attacks see the model itself",
    "Pintor et al. 2022, transfer failure",
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


ORDER = (
    "nondeterministic",
    "bad_gradients",
    "single_step_stronger",
    "not_monotone",
    "unbounded_survivors",
    "black_box_stronger",
    "noise_not_weaker",
    "invalid_adversarials",
    "steps_sensitive",
    "silent_success",
    "incomplete_optimisation",
    "transfer_failure",
    "unstable_predictions",
)


def run_checks(probe: Probe, skip: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Every check on the probe's points, in ORDER (invalid_adversarials after the others' own attacks)."""
    out = {
        name: registry.get("check", name)(probe)
        for name in ORDER
        if name not in skip and name != "invalid_adversarials"
    }
    if "invalid_adversarials" not in skip:
        out["invalid_adversarials"] = invalid_adversarials(probe)
    return {name: out[name] for name in ORDER if name in out}
