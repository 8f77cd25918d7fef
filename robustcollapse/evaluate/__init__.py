"""The suite runner and one module per test kind (each registers itself in the `test` family)."""

from robustcollapse.evaluate import (  # noqa: F401  (registers the test kinds)
    attack,
    clean,
    collapse,
    corruption,
    finegrained,
    hierarchy,
    ood,
    reliability,
)
