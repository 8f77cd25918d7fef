"""Test kind `attack`: robust accuracy per attack and eps, the per-example worst case, and honesty checks.

Every listed attack runs on the clean-correct points among the first `n_examples` test images (the runner in
`robustcollapse/attacks/adversary.py` says what counts as an adversarial example). The worst case at eps is the
per-example AND of the robust masks of every attack run on these points, by this test and by earlier attack tests
of the same model with the same norm and eps (on the points they share). The honesty checks
(`robustcollapse/attacks/checks/`) run on the first `check_examples` points; when one fires, every robust accuracy
it concerns is marked `trusted: false` in the document and the table. A randomised model (the `nondeterministic`
check fires, or `eot: N` is set) is attacked with EOT over N samples (default 20) and AutoAttack runs its `rand`
version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BeforeValidator, Field, field_validator, model_validator

from robustcollapse import registry
from robustcollapse.attacks import Attacked, AttackKind, Probe, Runner, check_names, eps_label, parse_eps, run_checks
from robustcollapse.attacks.checks.athalye2018 import nondeterministic
from robustcollapse.config import TestEntry
from robustcollapse.data import to_float
from robustcollapse.evaluate.base import Context, TestKind, TestResult, frozen, slug
from robustcollapse.metrics.spec import MetricSpec, declare
from robustcollapse.registry import register

DEFAULT_EOT = 20


SPECS = declare(
    MetricSpec("clean/acc@attack", "clean accuracy on the attacked points (the robust accuracies' ceiling)"),
    MetricSpec("adv/flags/*", "honesty check fired (1) or not (0)", "flag", higher_is_better=False, tolerance=0.0),
)


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
    eot: int | None = Field(None, ge=1)

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


def acc_key(name: str, norm: str, eps: float) -> str:
    return f"adv/{name}-{norm}-{eps_label(eps)}/acc"


def trust(checks: dict[str, dict[str, Any]], keys: dict[str, str | None]) -> tuple[dict[str, dict[str, Any]], str]:
    """Which robust accuracies the fired checks concern (`keys`: metric key -> attack, None for a worst case) and
    a one-line summary naming what fired."""
    fired = {name: c for name, c in checks.items() if c["flag"]}
    numbers: dict[str, dict[str, Any]] = {}
    for key, attack in keys.items():
        why = [n for n, c in fired.items() if not c.get("concerns") or attack is None or attack in c["concerns"]]
        if why:
            numbers[key] = {"trusted": False, "why": ", ".join(why)}
    summary = "fired: " + ", ".join(f"{n} ({_figure(c)})" for n, c in fired.items()) if fired else "no check fired"
    return numbers, summary


def _figure(check: dict[str, Any]) -> str:
    if check.get("why"):
        return str(check["why"])
    return f"{check['value']:.3g} > {check['threshold']:.3g}"


@register("test", "attack")
class Attack(TestKind):
    """Robust accuracy per torchattacks attack and eps, per-example worst case, gradient-masking checks."""

    Params = AttackParams
    title = "attack — robust accuracy"
    colour = "#d62728"

    @classmethod
    def figures(cls, doc: dict[str, Any], test_id: str, params: AttackParams, out: Path) -> list[tuple[str, Path]]:
        from robustcollapse.report import plots  # matplotlib, imported only when a page is made

        curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
        names = [*params.attacks, "worst"] if len(params.attacks) > 1 else list(params.attacks)
        for attack in names:
            for m, metrics in doc["metrics"].items():
                points = [(e, metrics[k]) for e in params.eps if (k := acc_key(attack, params.norm, e)) in metrics]
                points = [(e, v) for e, v in points if v is not None]
                if points:
                    curves.setdefault(attack, {})[m] = points
        if not curves:
            return []
        return [("Robust accuracy against ε", plots.eps_curves(curves, params.norm, out / f"{slug(test_id)}-eps.png"))]

    @classmethod
    def columns(cls, params: AttackParams) -> list[tuple[str, str]]:
        cols = [("clean/acc@attack", "clean (attacked set)")]
        for eps in params.eps:
            for name in [*params.attacks, "worst"]:
                cols.append((acc_key(name, params.norm, eps), f"{name} ε={eps_label(eps)}"))
        if params.checks:
            cols += [(f"adv/flags/{c}", f"⚑ {c}") for c in check_names()]
        return cols

    @staticmethod
    def run(ctx: Context, params: AttackParams) -> TestResult:
        with frozen(ctx.model) as model:
            split = ctx.test_split.head(params.n_examples)
            runner = Runner(
                model, to_float(split.x), split.y, params.norm, ctx.batch_size, ctx.seed, ctx.data.num_classes
            )
            n = len(split)
            m = min(params.check_examples, n)
            probe = Probe(runner, params.attacks, params.eps, params.steps, m, params.tolerance)
            randomised = nondeterministic(probe) if params.checks else None
            runner.eot = params.eot or (DEFAULT_EOT if randomised and randomised["flag"] else 1)
            metrics: dict[str, float] = {"clean/acc@attack": float(runner.clean_correct(n).double().mean())}
            details: dict[str, Any] = {
                "n": n,
                "norm": params.norm,
                "eps": params.eps,
                "eot": runner.eot,
                "attacks": {},
                "worst": {},
            }
            keys = run_attacks(ctx, params, runner, n, metrics, details)
            if not params.checks:
                return TestResult(metrics, details)
            checks = run_checks(probe, done={"nondeterministic": randomised})
            metrics.update({f"adv/flags/{name}": float(check["flag"]) for name, check in checks.items()})
            return TestResult(metrics, details, flag_record(ctx, params, checks, keys, m))


def run_attacks(
    ctx: Context, params: AttackParams, runner: Runner, n: int, metrics: dict[str, float], details: dict[str, Any]
) -> dict[str, str | None]:
    """Every listed attack at every eps on the first n points, and the worst case over them, into `metrics` and
    `details`; returns which attack each robust accuracy belongs to (None for a worst case)."""
    keys: dict[str, str | None] = {}
    for eps in params.eps:
        masks = []
        for name in params.attacks:
            res = runner.run(name, eps, params.steps, n)
            masks.append(res.robust)
            key = acc_key(name, params.norm, eps)
            keys[key] = name
            metrics[key] = float(res.robust.double().mean())
            details["attacks"][f"{name}-{params.norm}-{eps_label(eps)}"] = run_details(res, runner.eot)
        worst_key = acc_key("worst", params.norm, eps)
        keys[worst_key] = None
        metrics[worst_key], details["worst"][eps_label(eps)] = worst_case(ctx, params, eps, torch.stack(masks).all(0))
    return keys


def run_details(res: Attacked, eot: int) -> dict[str, Any]:
    """What the document records about one attack run: its cost, its version and which stage broke how many."""
    return {
        "seconds": res.seconds,
        "attacked": res.attacked,
        "mean_norm": res.mean_norm,
        "images_per_s": res.attacked / res.seconds if res.seconds > 0 else None,
        "version": res.version,
        "eot": eot,
        "broken_by_stage": {stage: int(b.sum()) for stage, b in res.broken_by.items()},
    }


def flag_record(
    ctx: Context, params: AttackParams, checks: dict[str, dict[str, Any]], keys: dict[str, str | None], m: int
) -> dict[str, Any]:
    """The flags of one attack test: every check's finding, the robust accuracies not to trust and why (a worst
    case also when a check fired in an earlier attack test on the same points), and the one-line summary."""
    numbers, summary = trust(checks, keys)
    fired = [name for name, check in checks.items() if check["flag"]]
    for eps in params.eps:
        entries = ctx.attack_masks[(params.norm, eps)]
        entries[-1]["fired"] = fired
        inherited = sorted({f for entry in entries[:-1] for f in entry["fired"]} - set(fired))
        key = acc_key("worst", params.norm, eps)
        if inherited:
            why = ", ".join(x for x in [numbers.get(key, {}).get("why"), *inherited] if x)
            numbers[key] = {"trusted": False, "why": why + " (earlier attack tests on these points)"}
    return {"checks": checks, "numbers": numbers, "summary": summary, "points": m}


def worst_case(ctx: Context, params: AttackParams, eps: float, robust: torch.Tensor) -> tuple[float, dict[str, Any]]:
    """Per-example worst case over this test's attacks and those of earlier attack tests of the same model at the
    same norm and eps, on the points they share (the first min(n) test points); recorded for later tests."""
    earlier = ctx.attack_masks.setdefault((params.norm, eps), [])
    n = min([len(robust), *(len(entry["robust"]) for entry in earlier)])
    combined = robust[:n].clone()
    for entry in earlier:
        combined &= entry["robust"][:n]
    earlier.append({"attacks": list(params.attacks), "robust": robust, "fired": []})
    return float(combined.double().mean()), {"n": n, "attacks": [a for entry in earlier for a in entry["attacks"]]}
