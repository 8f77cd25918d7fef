"""Test kind `attack`: robust accuracy per attack and eps, the per-example worst case, and honesty checks.

Every listed attack runs on the clean-correct points among the first `n_examples` test images (the runner in
`robustcollapse/attacks/adversary.py` says what counts as an adversarial example). The test's worst case at eps is
the per-example AND of its own attacks' robust masks. Its keys live under its `prefix:` (default `adv`), so two
attack tests of one suite need two prefixes (a config error otherwise): `{prefix}/{attack}-{norm}-{eps}/acc`,
`{prefix}/worst-{norm}-{eps}/acc`, `{prefix}/clean_acc`, `{prefix}/flags/{check}`. The robust masks are kept in
the details (hex bit strings) so `evaluate/evidence.py` can compare the attack tests of a model on the points they
share once all have run: the worst case across tests (`worst/{norm}-{eps}/acc`) and the disagreements that mark
an earlier (or later) test's rows.

The honesty checks (`robustcollapse/attacks/checks/`) run on the first `check_examples` points; when one fires,
every robust accuracy it concerns is marked `trusted: false` in the document and the table. Two checks run before
the attacks and change them: a randomised model (`nondeterministic` fires, or `eot: N` is set) is attacked with
EOT over N samples (default 20) and AutoAttack runs its `rand` version; a diffuse softmax (`diffuse_softmax`)
adds a targeted attack (APGD-T, the test's steps x min(9, K-1) targets) on the points the listed attacks leave
robust, into the worst case, and the document says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BeforeValidator, Field, field_validator, model_validator

from robustcollapse import registry
from robustcollapse.attacks import Attacked, AttackKind, Probe, Runner, check_names, eps_label, parse_eps, run_checks
from robustcollapse.attacks.checks.athalye2018 import nondeterministic
from robustcollapse.attacks.checks.croce2020 import diffuse_softmax
from robustcollapse.config import MAX_EXAMPLES, TestEntry
from robustcollapse.data import to_float
from robustcollapse.evaluate.base import Context, TestKind, TestResult, figure_file, frozen
from robustcollapse.evaluate.evidence import acc_key, across_key, pack, reconcile, unpack
from robustcollapse.metrics import samples
from robustcollapse.metrics.spec import MetricSpec, declare
from robustcollapse.registry import register

DEFAULT_EOT = 20
ADDED_ATTACK = "apgd-t"  # what a diffuse softmax adds: the targeted attack Croce & Hein designed for this case
RESERVED_PREFIXES = ("worst",)  # the worst case across attack tests (evidence.py)


SPECS = declare(
    MetricSpec("*/flags/*", "honesty check fired (1) or not (0)", "flag", higher_is_better=False, tolerance=0.0),
    MetricSpec("*/clean_acc", "clean accuracy on an attack test's points (the ceiling of its robust accuracies)"),
)


Eps = Annotated[float, BeforeValidator(parse_eps), Field(gt=0)]


class AttackParams(TestEntry):
    kind: Literal["attack"]
    attacks: list[str] = Field(min_length=1)
    norm: Literal["linf", "l2"] = "linf"
    eps: list[Eps] = Field(min_length=1, max_length=64)
    steps: int = Field(20, ge=1, le=100_000)
    n_examples: int = Field(1000, ge=1, le=MAX_EXAMPLES)
    checks: bool = True
    check_examples: int = Field(200, ge=1, le=MAX_EXAMPLES)
    tolerance: float = Field(0.02, ge=0, le=1)
    eot: int | None = Field(None, ge=1, le=10_000)
    prefix: str = Field(
        "adv",
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="the metric-key namespace of this test: two attack tests of one suite need two",
    )

    @field_validator("attacks")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in registry.names("attack"):
                raise ValueError(registry.unknown_name_message("attack", name))
        if len(set(names)) != len(names):
            raise ValueError("an attack is listed twice")
        return names

    @field_validator("prefix")
    @classmethod
    def _not_reserved(cls, prefix: str) -> str:
        if prefix in RESERVED_PREFIXES:
            raise ValueError(f"prefix {prefix!r} is reserved (the worst case across attack tests); pick another")
        return prefix

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


def trust(checks: dict[str, dict[str, Any]], keys: dict[str, str | None]) -> tuple[dict[str, dict[str, Any]], str]:
    """Which robust accuracies the fired checks concern (`keys`: metric key -> attack, None for a worst case) and
    a one-line summary naming what fired. A check that lists `concerns` marks those attacks' rows (an empty list:
    none); one without marks every row. A worst case is marked unless the check says `worst_trusted` (its evidence
    comes from an attack that is part of the worst case, or leaves the worst case's robust points alone)."""
    fired = {name: c for name, c in checks.items() if c["flag"]}
    numbers: dict[str, dict[str, Any]] = {}
    for key, attack in keys.items():
        why = [n for n, c in fired.items() if _concerned(c, attack)]
        if why:
            numbers[key] = {"trusted": False, "why": ", ".join(why)}
    summary = "fired: " + ", ".join(f"{n} ({_figure(c)})" for n, c in fired.items()) if fired else "no check fired"
    return numbers, summary


def _concerned(check: dict[str, Any], attack: str | None) -> bool:
    if attack is None:
        return not check.get("worst_trusted", False)
    return "concerns" not in check or attack in check["concerns"]


def _figure(check: dict[str, Any]) -> str:
    if check.get("why"):
        return str(check["why"])
    return f"{check['value']:.3g} > {check['threshold']:.3g}"


@register("test", "attack")
class Attack(TestKind):
    """Robust accuracy per torchattacks attack and eps, per-example worst case, gradient-masking and
    objective-mismatch checks."""

    Params = AttackParams
    title = "attack — robust accuracy"
    colour = "#d62728"

    @classmethod
    def namespace(cls, params: AttackParams) -> tuple[str, ...]:
        return (params.prefix,)

    @classmethod
    def figures(cls, doc: dict[str, Any], test_id: str, params: AttackParams, out: Path) -> list[tuple[str, Path]]:
        from robustcollapse.report import plots  # matplotlib, imported only when a page is made

        curves: dict[str, dict[str, list[tuple[float, ...]]]] = {}
        names = [*params.attacks, "worst"] if len(params.attacks) > 1 else list(params.attacks)
        for attack in names:
            for m, metrics in doc["metrics"].items():
                keys = [(e, acc_key(params.prefix, attack, params.norm, e)) for e in params.eps]
                bounds = doc.get("intervals", {}).get(m, {})
                points = [(e, metrics[k], *bounds.get(k, ())) for e, k in keys if metrics.get(k) is not None]
                if points:
                    curves.setdefault(attack, {})[m] = points
        if not curves:
            return []
        return [("Robust accuracy against ε", plots.eps_curves(curves, params.norm, figure_file(out, test_id, "eps")))]

    @classmethod
    def columns(cls, params: AttackParams) -> list[tuple[str, str]]:
        cols = [(f"{params.prefix}/clean_acc", "clean (attacked set)")]
        for eps in params.eps:
            for name in [*params.attacks, "worst"]:
                cols.append((acc_key(params.prefix, name, params.norm, eps), f"{name} ε={eps_label(eps)}"))
            cols.append((across_key(params.norm, eps), f"worst, all attack tests ε={eps_label(eps)}"))
        if params.checks:
            cols += [(f"{params.prefix}/flags/{c}", f"⚑ {c}") for c in check_names()]
        return cols

    @classmethod
    def across(cls, doc: dict[str, Any], tests: dict[str, Any]) -> None:
        reconcile(doc, tests)

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
            early = (
                {"nondeterministic": nondeterministic(probe), "diffuse_softmax": diffuse_softmax(probe)}
                if params.checks
                else {}
            )
            runner.eot = params.eot or (DEFAULT_EOT if early.get("nondeterministic", {}).get("flag") else 1)
            add = early.get("diffuse_softmax", {}).get("flag") and not any(
                registry.get("attack", a).targeted for a in params.attacks
            )
            metrics: dict[str, float] = {f"{params.prefix}/clean_acc": float(runner.clean_correct(n).double().mean())}
            details: dict[str, Any] = {"n": n, "norm": params.norm, "eps": params.eps, "eot": runner.eot}
            details |= {"prefix": params.prefix, "tolerance": params.tolerance, "attacks": {}, "worst": {}}
            keys = run_attacks(params, runner, probe, n, metrics, details, ADDED_ATTACK if add else None)
            arrays = {f"{params.prefix}/clean_acc": runner.clean_correct(n), **robust_masks(params, details, keys)}
            evidence = {key: samples.proportion(key) for key in arrays}
            if add:
                details["warnings"] = [added_warning(early["diffuse_softmax"], params)]
            if not params.checks:
                return TestResult(metrics, details, samples=evidence, arrays=arrays)
            checks = run_checks(probe, done=early)
            metrics.update({f"{params.prefix}/flags/{name}": float(check["flag"]) for name, check in checks.items()})
            numbers, summary = trust(checks, keys)
            flags = {"checks": checks, "numbers": numbers, "summary": summary, "points": m}
            return TestResult(metrics, details, flags, samples=evidence, arrays=arrays)


def added_warning(finding: dict[str, Any], params: AttackParams) -> str:
    """What the document says when a diffuse softmax made the test add a targeted attack."""
    return (
        f"diffuse_softmax fired ({finding['count']} of {params.check_examples} points: the runner-up holds a median "
        f"{finding['median_share']:.2f} of the wrong-class mass): added {ADDED_ATTACK} ({params.steps} steps x up to "
        "9 targets) on the points the listed attacks left robust; the worst case includes it"
    )


def run_attacks(
    params: AttackParams,
    runner: Runner,
    probe: Probe,
    n: int,
    metrics: dict[str, float],
    details: dict[str, Any],
    added: str | None,
) -> dict[str, str | None]:
    """Every listed attack at every eps on the first n points, then the `added` attack (if any) on what they left
    robust, and the worst case, into `metrics` and `details`; returns which attack each robust accuracy belongs
    to (None for a worst case)."""
    keys: dict[str, str | None] = {}
    for eps in params.eps:
        masks = []
        for name in params.attacks:
            res = runner.run(name, eps, params.steps, n)
            masks.append(res.robust)
            key = acc_key(params.prefix, name, params.norm, eps)
            keys[key] = name
            metrics[key] = float(res.robust.double().mean())
            details["attacks"][f"{name}-{params.norm}-{eps_label(eps)}"] = run_details(res, runner.eot)
        robust = torch.stack(masks).all(0)
        attacks = list(params.attacks)
        if added is not None:
            res = _cascade(runner, added, eps, params.steps, n, robust)
            probe.extra[eps] = {added: res.robust}
            details["attacks"][f"{added}-{params.norm}-{eps_label(eps)}"] = run_details(res, runner.eot) | {
                "on": "the points the listed attacks left robust"
            }
            robust = robust & res.robust
            attacks.append(added)
        worst_key = acc_key(params.prefix, "worst", params.norm, eps)
        keys[worst_key] = None
        metrics[worst_key] = float(robust.double().mean())
        details["worst"][eps_label(eps)] = {"n": n, "attacks": attacks, "robust": pack(robust)}
    return keys


def robust_masks(params: AttackParams, details: dict[str, Any], keys: dict[str, str | None]) -> dict[str, Any]:
    """Each robust accuracy's per-point robust mask (key -> bool tensor), read back from the details: the
    evidence behind its interval and behind comparisons of two models on the same points."""
    n = details["n"]
    masks = {}
    for key, attack in keys.items():
        for eps in params.eps:
            if attack is None and key == acc_key(params.prefix, "worst", params.norm, eps):
                masks[key] = unpack(details["worst"][eps_label(eps)]["robust"], n)
            elif attack is not None and key == acc_key(params.prefix, attack, params.norm, eps):
                masks[key] = unpack(details["attacks"][f"{attack}-{params.norm}-{eps_label(eps)}"]["robust"], n)
    return masks


def _cascade(runner: Runner, name: str, eps: float, steps: int, n: int, survivors: torch.Tensor) -> Attacked:
    """The registered attack `name` on the survivors alone (its mask counts every other point as broken)."""
    kind = registry.get("attack", name)

    def build(model: torch.nn.Module) -> Any:
        return kind(model, runner.norm, eps, steps, runner.seed, runner.num_classes)

    return runner.run(f"{name} (added)", eps, steps, n, build=build, among=survivors)


def run_details(res: Attacked, eot: int) -> dict[str, Any]:
    """What the document records about one attack run: its cost, its version, which stage broke how many, and
    its robust mask over the test's points (hex bits, for the comparisons across tests)."""
    return {
        "seconds": res.seconds,
        "attacked": res.attacked,
        "mean_norm": res.mean_norm,
        "images_per_s": res.attacked / res.seconds if res.seconds > 0 else None,
        "version": res.version,
        "eot": eot,
        "broken_by_stage": {stage: int(b.sum()) for stage, b in res.broken_by.items()},
        "robust": pack(res.robust),
    }
