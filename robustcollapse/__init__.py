"""robustcollapse: robustness, calibration and neural-collapse test suites for image classifiers.

`robustcollapse.evaluate(model, tests, data=...)` runs a suite on any nn.Module from Python (see the README)."""

from typing import Any

from robustcollapse.version import __version__

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    """`robustcollapse.evaluate` is imported on first use, so `import robustcollapse` (and the CLI) stays light."""
    if name == "evaluate":
        import robustcollapse.evaluate

        return robustcollapse.evaluate
    raise AttributeError(f"module 'robustcollapse' has no attribute {name!r}")
