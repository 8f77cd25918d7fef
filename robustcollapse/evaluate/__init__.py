"""The suite runner and one module per test kind (each registers itself in the `test` family).

The package itself is callable: `robustcollapse.evaluate(model, tests, data=...)` is
`robustcollapse.evaluate.api.evaluate`,
the suite from Python."""

import sys
import types
from typing import Any

from robustcollapse.evaluate import (  # noqa: F401  (registers the test kinds)
    attack,
    clean,
    collapse,
    corruption,
    finegrained,
    hierarchy,
    ood,
    reliability,
    runner,  # and through it training, whose per-epoch MetricSpecs the report reads
)


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from robustcollapse.evaluate.api import evaluate

        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
