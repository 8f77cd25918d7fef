"""The attack family: adversarial attacks, the runner that applies them, the threat model.

What lives where:

- `library.py`: the registered attacks (family `attack`), thin wrappers around torchattacks in pixel space,
  `AttackKind` (what the runner needs to know about one), and AutoAttack's official budgets.
- `adversary.py`: the `Runner` that attacks a fixed set of points, memoised per (attack, eps, steps, n), and
  counts an adversarial example only once it has re-measured it; `Attacked` (one run's outcome), `Expectation`
  (EOT over a randomised model).
- `threat.py`: the norm and eps: `parse_eps`, `eps_label` (as in metric keys), perturbation sizes and the eps test.

A new attack needs one decorated factory in `library.py` (`@_attack(name, doc, norms, ...)`) and its test.

Importing this package registers every attack; nothing here imports the test kinds (`robustcollapse.evaluate`
adapts this package to the suite's metrics, not the other way round).
"""

from robustcollapse.attacks.adversary import Attacked, Expectation, Runner, stage_names
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
    "Expectation",
    "Runner",
    "eps_bound",
    "eps_label",
    "parse_eps",
    "perturbation_norm",
    "stage_names",
    "within",
]
