"""The attack family: adversarial attacks, the runner that applies them, the threat model, the honesty checks.

What lives where:

- `library.py`: the registered attacks (family `attack`), thin wrappers around torchattacks in pixel space,
  `AttackKind` (what the runner needs to know about one), and AutoAttack's official budgets.
- `adversary.py`: the `Runner` that attacks a fixed set of points, memoised per (attack, eps, steps, n), and
  counts an adversarial example only once it has re-measured it; `Attacked` (one run's outcome), `Expectation`
  (EOT over a randomised model).
- `threat.py`: the norm and eps: `parse_eps`, `eps_label` (as in metric keys), perturbation sizes and the eps test.
- `pgd.py`: our PGD with a choice of objective (cross-entropy, margin, targeted margin) that keeps its path, and
  multi-targeted PGD: the checks that compare losses and targets need control torchattacks does not give.
- `checks/`: the honesty (gradient-masking) checks (family `check`): `checks/base.py` has the `Probe` they read,
  the `check(...)` decorator and `run_checks`; the checks themselves are grouped by source, one module each.

A new attack needs one factory decorated with `@_attack(name, doc, norms, ...)` in `library.py`, and its test.
A new check needs one function decorated with `@check(name, detects, threshold, source, order=N)` in the
`checks/` module of its source, and its test (`checks/__init__.py` says how `order` works).

Importing this package registers every attack and every check (the submodules register on import). Nothing here
imports the test kinds: `robustcollapse.evaluate.attack` adapts this package to the suite's metrics, not the other
way round.
"""

from robustcollapse.attacks.adversary import Attacked, Expectation, Runner, stage_names
from robustcollapse.attacks.checks import Check, Probe, chance_limit, check, check_names, finding, run_checks, skipped
from robustcollapse.attacks.library import (
    AUTOATTACK_EOT,
    AUTOATTACK_SQUARE_QUERIES,
    AUTOATTACK_STEPS,
    TORCHATTACKS_NORM,
    AttackKind,
)
from robustcollapse.attacks.threat import eps_bound, eps_label, parse_eps, perturbation_norm, within

__all__ = [
    "AUTOATTACK_EOT",
    "AUTOATTACK_SQUARE_QUERIES",
    "AUTOATTACK_STEPS",
    "TORCHATTACKS_NORM",
    "AttackKind",
    "Attacked",
    "Check",
    "Expectation",
    "Probe",
    "Runner",
    "chance_limit",
    "check",
    "check_names",
    "eps_bound",
    "eps_label",
    "finding",
    "parse_eps",
    "perturbation_norm",
    "run_checks",
    "skipped",
    "stage_names",
    "within",
]
