"""Test kind `attack`: robust accuracy per attack and eps, the per-example worst case, and masking checks.

Every listed attack runs independently on the clean-correct points among the first `n_examples` test images
(a clean mistake counts as non-robust). An adversarial example counts only if it is misclassified, inside
[0, 1] and within eps (tolerance 1e-5 for L-inf, 1e-4 relative for L2). The worst case at eps is the
per-example AND of the attacks' robust masks. The honesty checks (DESIGN.md §6) run by default on the first
`check_examples` points; a check that needs an attack the suite did not list runs a cheap version of it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
import torchattacks
from pydantic import BeforeValidator, Field, field_validator, model_validator

from robustcollapse import registry
from robustcollapse.attacks import TORCHATTACKS_NORM, AttackKind
from robustcollapse.config import TestEntry
from robustcollapse.evaluate.base import Context, TestKind, TestResult, frozen
from robustcollapse.models import Classifier
from robustcollapse.registry import register
from robustcollapse.train import to_float

CHEAP_SQUARE_QUERIES = 1000
CHECKS = {
    "nondeterministic": "logits differ across repeated forward passes",
    "bad_gradients": "fraction of inputs whose loss gradient is all zero or not finite",
    "single_step_stronger": "fraction of points broken by a single step but not by the iterative attack",
    "not_monotone": "largest rise of robust accuracy with growing eps",
    "unbounded_survivors": "robust accuracy of PGD (from the clean point) at an unbounded eps (should be ~0)",
    "black_box_stronger": "fraction of points broken by Square but by no white-box attack",
    "noise_not_weaker": "random noise of the same norm as strong as the attack (accuracy gap noise - attack)",
    "invalid_adversarials": "adversarial inputs outside eps or [0, 1], or recount differing from the attack's",
    "steps_sensitive": "change of robust accuracy when the steps are doubled",
}


def parse_eps(value: Any) -> float:
    """'8/255', 0.03 or '0.03' -> float."""
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"eps {value!r} is not a number or a fraction like 8/255") from None
    return value


def eps_label(eps: float) -> str:
    """A key-safe eps: short decimals as written (0.3 -> '0.3', 1 -> '1'), multiples of 1/255 as '8_255'."""
    decimal = f"{eps:.6g}"
    if len(decimal) <= 6 and float(decimal) == eps:
        return decimal
    k = eps * 255
    return f"{round(k)}_255" if abs(k - round(k)) < 1e-6 and 0 < round(k) < 255 else decimal


Eps = Annotated[float, BeforeValidator(parse_eps), Field(gt=0)]


class AttackParams(TestEntry):
    kind: Literal["attack"]
    attacks: list[str] = Field(min_length=1)
    norm: Literal["linf", "l2"] = "linf"
    eps: list[Eps] = Field(min_length=1)
    steps: int = Field(20, ge=1)
    n_examples: int = Field(1000, ge=1)
    checks: bool = True
    check_examples: int = Field(200, ge=1)
    tolerance: float = Field(0.02, ge=0, le=1)

    @field_validator("attacks")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in registry.names("attack"):
                raise ValueError(registry.unknown_name_message("attack", name))
        if len(set(names)) != len(names):
            raise ValueError("an attack is listed twice")
        return names

    @model_validator(mode="after")
    def _norms(self) -> AttackParams:
        for name in self.attacks:
            kind: AttackKind = registry.get("attack", name)
            if self.norm not in kind.norms:
                raise ValueError(f"attack {name!r} supports norm {', '.join(kind.norms)}, not {self.norm}")
        if self.norm == "linf" and max(self.eps) > 1:
            raise ValueError("L-inf eps is on the [0, 1] pixel scale: at most 1 (write 8/255 for 8 grey levels)")
        self.eps = sorted(set(self.eps))
        return self


def perturbation_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def within(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    size = perturbation_norm(delta, norm)
    return size <= (eps + 1e-5 if norm == "linf" else eps * (1 + 1e-4))


@dataclass
class Attacked:
    """Outcome of one attack at one eps on n points."""

    robust: torch.Tensor  # bool (n,)
    seconds: float
    attacked: int
    max_excess: float = 0.0  # largest norm beyond eps among returned inputs (bounded attacks)
    out_of_range: int = 0
    recount_mismatch: int = 0
    mean_norm: float = float("nan")  # mean perturbation size of the successful adversarials


@dataclass
class Runner:
    """Runs attacks on a fixed set of points, memoised per (attack, eps, steps, n)."""

    model: Classifier
    x: torch.Tensor
    y: torch.Tensor
    norm: str
    batch_size: int
    seed: int
    num_classes: int
    memo: dict[tuple[str, float, int, int], Attacked] = field(default_factory=dict)
    _correct: torch.Tensor | None = None

    def predict(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([self.model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])

    def clean_correct(self, n: int) -> torch.Tensor:
        """Which of the first n points the model gets right (one pass over all points, computed once)."""
        if self._correct is None:
            self._correct = self.predict(self.x, self.batch_size) == self.y
        return self._correct[:n]

    def robust(
        self, name: str, eps: float, steps: int, n: int, build: Callable[..., Any] | None = None
    ) -> torch.Tensor:
        """Robust mask of the first n points, sliced from a larger run of the same attack when there is one."""
        n = min(n, len(self.x))
        for (memo_name, memo_eps, memo_steps, memo_n), res in self.memo.items():
            if (memo_name, memo_eps, memo_steps) == (name, eps, steps) and memo_n >= n:
                return res.robust[:n]
        return self.run(name, eps, steps, n, build).robust

    def run(self, name: str, eps: float, steps: int, n: int, build: Callable[..., Any] | None = None) -> Attacked:
        n = min(n, len(self.x))  # a suite limit below n_examples must not make a second, identical run
        key = (name, eps, steps, n)
        if key in self.memo:
            return self.memo[key]
        kind: AttackKind = registry.get("attack", name) if build is None else None
        make = build or (lambda: kind(self.model, self.norm, eps, steps, self.seed, self.num_classes))
        x, y = self.x[:n], self.y[:n]
        correct = self.clean_correct(n)
        idx = torch.nonzero(correct).squeeze(1)
        adv = x.clone()
        start = time.perf_counter()
        attack = make()
        for i in range(0, len(idx), self.batch_size):
            b = idx[i : i + self.batch_size]
            torch.manual_seed(self.seed)
            adv[b] = attack(x[b], y[b]).detach()
        seconds = time.perf_counter() - start
        pred = self.predict(adv, self.batch_size)
        delta = adv - x
        ok = within(delta, self.norm, eps) & (adv.flatten(1).amin(1) >= 0) & (adv.flatten(1).amax(1) <= 1)
        success = correct & (pred != y) & ok
        size = perturbation_norm(delta, self.norm)
        bounded = build is not None or kind.bounded
        recount = self.predict(adv, max(1, self.batch_size // 2 + 1))
        result = Attacked(
            robust=correct & ~success,
            seconds=seconds,
            attacked=len(idx),
            max_excess=float((size - eps).clamp_min(0).max()) if bounded and len(idx) else 0.0,
            out_of_range=int(((adv < 0) | (adv > 1)).flatten(1).any(1).sum()),
            recount_mismatch=int((recount != pred).sum()),
            mean_norm=float(size[success].mean()) if bool(success.any()) else float("nan"),
        )
        self.memo[key] = result
        return result


def _flag(value: float, threshold: float, fired: bool, **extra: Any) -> dict[str, Any]:
    return {"flag": bool(fired), "value": value, "threshold": threshold, **extra}


def masking_checks(runner: Runner, params: AttackParams, clean_acc: float) -> dict[str, dict[str, Any]]:
    """The eight honesty checks of DESIGN.md §6; each returns its figure and whether it fired."""
    m = min(params.check_examples, params.n_examples, len(runner.x))
    tol = params.tolerance
    eps_max = max(params.eps)
    x, y = runner.x[:m], runner.y[:m]
    model = runner.model
    out: dict[str, dict[str, Any]] = {}

    with torch.inference_mode():
        a, b = model(x), model(x)
    diff = float((a - b).abs().max())
    out["nondeterministic"] = _flag(diff, 1e-5, diff > 1e-5 * (1 + float(a.abs().max())))

    xg = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)[0].flatten(1)
    bad = float(((grad == 0).all(1) | ~torch.isfinite(grad).all(1)).double().mean())
    out["bad_gradients"] = _flag(bad, tol, bad > tol)

    listed = [registry.get("attack", n) for n in params.attacks]
    white = [n for n, k in zip(params.attacks, listed, strict=True) if k.white_box and k.iterative]
    preferred = [n for n in params.attacks if n in ("pgd", "pgdl2", "apgd-ce")]
    iterative = (preferred or white or ["pgd" if params.norm == "linf" else "pgdl2"])[0]
    single = "fgsm" if params.norm == "linf" else "fgm"
    worst = 0.0
    for eps in params.eps:
        it = runner.robust(iterative, eps, params.steps, m)
        one = runner.robust(single, eps, params.steps, m)
        worst = max(worst, float((it & ~one).double().mean()))
    out["single_step_stronger"] = _flag(worst, tol, worst > tol, iterative=iterative, single=single)

    rise = 0.0
    for name in params.attacks:
        accs = [float(runner.robust(name, e, params.steps, params.n_examples).double().mean()) for e in params.eps]
        rise = max([rise] + [later - earlier for earlier, later in zip(accs, accs[1:], strict=False)])
    # PGD from the clean point (no random start: at eps = 1 a random start just replaces the image by noise)
    big = 1.0 if params.norm == "linf" else math.sqrt(x[0].numel())
    pgd_cls = torchattacks.PGD if params.norm == "linf" else torchattacks.PGDL2

    def unbounded_pgd() -> Any:
        return pgd_cls(model, eps=big, alpha=2.5 * big / params.steps, steps=params.steps, random_start=False)

    survivors = float(runner.robust("pgd-from-clean", big, params.steps, m, build=unbounded_pgd).double().mean())
    out["not_monotone"] = _flag(rise, tol, rise > tol)
    out["unbounded_survivors"] = _flag(survivors, tol, survivors > tol, eps=big)

    whites = [runner.robust(n, eps_max, params.steps, m) for n in (white or [iterative])]
    white_robust = torch.stack(whites).all(0)
    cheap_square = None
    if "square" not in params.attacks:

        def cheap_square() -> Any:
            return torchattacks.Square(
                model,
                norm=TORCHATTACKS_NORM[params.norm],
                eps=eps_max,
                n_queries=CHEAP_SQUARE_QUERIES,
                n_restarts=1,
                seed=runner.seed,
            )

    sq = runner.robust("square", eps_max, params.steps, m, build=cheap_square)
    stronger = float((white_robust & ~sq).double().mean())
    out["black_box_stronger"] = _flag(stronger, tol, stronger > tol)

    gen = torch.Generator(device="cpu").manual_seed(runner.seed)
    noise = torch.randn(x.shape, generator=gen).to(x.device)
    if params.norm == "linf":
        noise = noise.sign() * eps_max
    else:
        noise = noise / noise.flatten(1).norm(dim=1).view(-1, *[1] * (x.ndim - 1)) * eps_max
    noisy_acc = float((runner.predict((x + noise).clamp(0, 1), runner.batch_size) == y).double().mean())
    attack_acc = float(white_robust.double().mean())
    gap = noisy_acc - attack_acc
    out["noise_not_weaker"] = _flag(
        gap, 0.0, gap <= 0 and attack_acc < clean_acc, noise_acc=noisy_acc, attack_acc=attack_acc
    )

    excess, off, mismatch = 0.0, 0, 0
    for name in params.attacks:
        for eps in params.eps:
            res = runner.run(name, eps, params.steps, params.n_examples)
            excess, off, mismatch = max(excess, res.max_excess), off + res.out_of_range, mismatch + res.recount_mismatch
    out["invalid_adversarials"] = _flag(
        excess, 1e-5, excess > 1e-5 or off > 0 or mismatch > 0, out_of_range=off, recount_mismatch=mismatch
    )

    steppable = next((n for n in params.attacks if n in ("pgd", "pgdl2", "apgd-ce", "apgd-t")), iterative)
    probe = next((e for e in reversed(params.eps) if runner.robust(steppable, e, params.steps, m).any()), eps_max)
    base = float(runner.robust(steppable, probe, params.steps, m).double().mean())
    doubled = float(runner.robust(steppable, probe, 2 * params.steps, m).double().mean())
    out["steps_sensitive"] = _flag(abs(base - doubled), tol, abs(base - doubled) > tol, attack=steppable, eps=probe)
    return out


@register("test", "attack")
class Attack(TestKind):
    """Robust accuracy per torchattacks attack and eps, per-example worst case, gradient-masking checks."""

    Params = AttackParams
    title = "attack — robust accuracy"

    @classmethod
    def columns(cls, params: AttackParams) -> list[tuple[str, str, str]]:
        cols = [("clean/acc@attack", "clean (attacked set)", ".4f")]
        for eps in params.eps:
            for name in [*params.attacks, "worst"]:
                cols.append((f"adv/{name}-{params.norm}-{eps_label(eps)}/acc", f"{name} ε={eps_label(eps)}", ".4f"))
        if params.checks:
            cols += [(f"adv/flags/{c}", f"⚑ {c}", "flag") for c in CHECKS]
        return cols

    @staticmethod
    def run(ctx: Context, params: AttackParams) -> TestResult:
        with frozen(ctx.model) as model:
            split = ctx.test_split.head(params.n_examples)
            runner = Runner(
                model, to_float(split.x), split.y, params.norm, ctx.batch_size, ctx.seed, ctx.data.num_classes
            )
            n = len(split)
            clean_acc = float(runner.clean_correct(n).double().mean())
            metrics: dict[str, float] = {"clean/acc@attack": clean_acc}
            details: dict[str, Any] = {"n": n, "norm": params.norm, "eps": params.eps, "attacks": {}}
            for eps in params.eps:
                masks = []
                for name in params.attacks:
                    res = runner.run(name, eps, params.steps, n)
                    masks.append(res.robust)
                    key = f"{name}-{params.norm}-{eps_label(eps)}"
                    metrics[f"adv/{key}/acc"] = float(res.robust.double().mean())
                    details["attacks"][key] = {
                        "seconds": res.seconds,
                        "attacked": res.attacked,
                        "mean_norm": res.mean_norm,
                        "images_per_s": res.attacked / res.seconds if res.seconds > 0 else None,
                    }
                metrics[f"adv/worst-{params.norm}-{eps_label(eps)}/acc"] = float(
                    torch.stack(masks).all(0).double().mean()
                )
            flags: dict[str, Any] = {}
            if params.checks:
                flags = masking_checks(runner, params, clean_acc)
                metrics.update({f"adv/flags/{name}": float(check["flag"]) for name, check in flags.items()})
            return TestResult(metrics, details, flags)
