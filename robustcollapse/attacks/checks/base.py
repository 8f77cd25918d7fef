"""What every honesty check shares: the probe it reads, its registration, how it reports, and the run over all.

A check counts the points (among the first m) on which it sees its symptom. Where a few points may show it by
chance, it fires only when the count exceeds the (1 - ALPHA) quantile of Binomial(m, tolerance): with m = 200
and tolerance 0.02 that is 9 points, not the 4 a fixed 2 % would allow. Checks whose symptom is a bug (an
invalid adversarial example, a changing forward pass) fire on a single point.

The checks run and are shown in the order of their `order` field, so a new check is placed by its registration
alone; a check that audits the attack runs of the others (`audits_runs`) runs after all of them but keeps its
place in what is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from scipy.stats import binom

from robustcollapse import registry
from robustcollapse.attacks.adversary import Runner, stage_names
from robustcollapse.attacks.library import AttackKind
from robustcollapse.registry import register

ALPHA = 0.01

Finding = dict[str, Any]


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
    extra: dict[float, dict[str, torch.Tensor]] = field(default_factory=dict)  # eps -> added attack -> robust mask

    @property
    def x(self) -> torch.Tensor:
        """The m common points."""
        return self.runner.x[: self.m]

    @property
    def y(self) -> torch.Tensor:
        """Their labels."""
        return self.runner.y[: self.m]

    @property
    def norm(self) -> str:
        """The threat model's norm, 'linf' or 'l2'."""
        return self.runner.norm

    @property
    def correct(self) -> torch.Tensor:
        """Which of the m points the model classifies correctly."""
        return self.runner.clean_correct(self.m)

    def kind(self, name: str) -> AttackKind:
        """The registered attack `name`."""
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

    def limit(self, n: int | None = None) -> int:
        """Largest count of n points (default m) that may show a symptom by chance (binomial bound at `tolerance`)."""
        return chance_limit(self.m if n is None else n, self.tolerance)

    def untargeted(self) -> list[str]:
        """The test's untargeted iterative white-box attacks: the ones an objective mismatch misleads (none in a
        test of AutoAttack alone, whose targeted stages already guard against it)."""
        return [
            n
            for n in self.attacks
            if self.kind(n).white_box
            and self.kind(n).iterative
            and not self.kind(n).targeted
            and not self.kind(n).components
        ]

    def probe_eps(self) -> float:
        """The largest eps at which the iterative attack leaves robust points (where a stronger attack can show)."""
        for eps in sorted(self.eps, reverse=True):
            if self.runner.robust(self.iterative(), eps, self.steps, self.m).any():
                return eps
        return max(self.eps)

    def added(self, eps: float) -> dict[str, torch.Tensor]:
        """Robust masks of attacks the test added at eps (run on what its listed attacks left robust)."""
        return self.extra.get(eps, {})

    def worst(self, eps: float) -> torch.Tensor:
        """The test's worst case at eps: robust under every listed and added attack, over the points they ran on."""
        masks = [self.runner.result(name, eps, self.steps, self.m).robust for name in self.attacks]
        masks += list(self.added(eps).values())
        n = min(len(mask) for mask in masks)
        return torch.stack([mask[:n] for mask in masks]).all(0)


def chance_limit(m: int, rate: float, alpha: float = ALPHA) -> int:
    """The (1 - alpha) quantile of Binomial(m, rate): a count above it is unlikely (< alpha) at that rate."""
    return int(binom.ppf(1 - alpha, m, rate)) if rate > 0 else 0


@dataclass(frozen=True)
class Check:
    """A registered honesty check: what it detects, its threshold, its source, the function computing it, its place
    in the order checks run and are shown, and whether it audits the attack runs of the other checks."""

    name: str
    detects: str
    threshold: str
    source: str
    fn: Callable[[Probe], Finding]
    order: int
    audits_runs: bool = False

    def __call__(self, probe: Probe) -> Finding:
        return self.fn(probe)


_CHECKS: dict[str, Check] = {}


def check(
    name: str, detects: str, threshold: str, source: str, *, order: int, audits_runs: bool = False
) -> Callable[[Callable[[Probe], Finding]], Check]:
    """Register `fn(probe) -> finding` as the check `name` (`detects` is its docstring, the first line of
    `robustcollapse list check`); `order` places it among the others (unique); `audits_runs` makes it run last."""

    def wrap(fn: Callable[[Probe], Finding]) -> Check:
        taken = [c.name for c in _CHECKS.values() if c.order == order]
        if taken:
            raise ValueError(f"check {name!r}: order {order} is taken by {taken[0]!r}")
        entry = Check(name, detects, threshold, source, fn, order, audits_runs)
        object.__setattr__(entry, "__doc__", detects)
        register("check", name)(entry)
        _CHECKS[name] = entry
        return entry

    return wrap


def registered() -> list[Check]:
    """Every registered check, in the order they are shown."""
    return sorted(_CHECKS.values(), key=lambda c: c.order)


def check_names() -> tuple[str, ...]:
    """The names of the checks in the order they are shown (in the document, the tables, the summaries)."""
    return tuple(c.name for c in registered())


def finding(count: int, m: int, limit: int, **extra: Any) -> Finding:
    """A check's result: `value` the fraction of the `n` points showing the symptom (`count` of them), `threshold`
    the fraction above which it fires, `flag` whether it fired."""
    return {
        "flag": count > limit,
        "value": count / max(m, 1),
        "threshold": limit / max(m, 1),
        "count": count,
        "n": m,
        **extra,
    }


def skipped(reason: str) -> Finding:
    """The result of a check that does not apply to this test (it never fires)."""
    return {"flag": False, "value": None, "threshold": None, "skipped": reason}


def run_checks(probe: Probe, done: dict[str, Finding] | None = None) -> dict[str, Finding]:
    """Every check on the probe's points, in order; those that audit the attack runs go last, once the other checks'
    own attacks have run. `done` holds findings already computed (the attack test runs `nondeterministic` first to
    decide on EOT): they are not computed again and keep their place in the order."""
    done = done or {}
    todo = [c for c in registered() if c.name not in done]
    out = {c.name: c(probe) for c in todo if not c.audits_runs}
    out.update({c.name: c(probe) for c in todo if c.audits_runs})
    return {c.name: done[c.name] if c.name in done else out[c.name] for c in registered()}
