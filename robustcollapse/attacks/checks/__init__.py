"""Honesty checks of a robustness number: each a small registered function, all run on one common set of points.

Sources: Carlini et al. 2019, "On evaluating adversarial robustness" (their checklist); Athalye, Carlini &
Wagner 2018, "Obfuscated gradients give a false sense of security"; Pintor et al. 2022, "Indicators of attack
failure" (their six indicators: silent success, incomplete optimisation, transfer failure, unavailable
gradients, unstable predictions, unconstrained attack failure).

- `base.py`: the `Probe` a check reads, the `check(...)` decorator that registers one (family `check`), the
  binomial `chance_limit`, `finding` / `skipped` results and `run_checks`.
- `athalye2018.py`, `carlini2019.py`, `pintor2022.py`: the checks, grouped by the first source each cites;
  `croce2020.py`: the objective-mismatch checks (diffuse softmax, targeted and margin-loss attacks stronger than
  the untargeted cross-entropy ones, two white-box attacks disagreeing point by point).

A new check needs one function decorated with `@check(name, detects, threshold, source, order=N)` in the module
of its source, and its test. `order` (unique; the built-in checks use 10, 15, 20, ... 160) places it in the run and in
what is shown; `audits_runs=True` runs it after the others when it audits their attack runs. A check from a
source with no module yet goes into the closest module; a new module would also need an import line here.
"""

from robustcollapse.attacks.checks import athalye2018, carlini2019, croce2020, pintor2022  # noqa: F401  (registers)
from robustcollapse.attacks.checks.base import (
    Check,
    Probe,
    chance_limit,
    check,
    check_names,
    finding,
    registered,
    run_checks,
    skipped,
)

__all__ = [
    "Check",
    "Probe",
    "chance_limit",
    "check",
    "check_names",
    "finding",
    "registered",
    "run_checks",
    "skipped",
]
