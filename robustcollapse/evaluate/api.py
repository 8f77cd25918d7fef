"""The suite from Python: `robustcollapse.evaluate(model, tests, data=...)` on any nn.Module in a notebook.

The same runner, tables and result document as `robustcollapse eval`; the modules are evaluated as they are in
memory (no checkpoint is written), behind the same wrapper as `module:` models in a suite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn

from robustcollapse.config import check_suite, load_suite
from robustcollapse.devices import resolve_device
from robustcollapse.errors import UserError
from robustcollapse.evaluate.runner import RunOptions, default_output, run_suite
from robustcollapse.report.tables import print_results

IN_MEMORY = "<in-memory>"  # the `module:` prefix that marks a model handed over as a Python object


def evaluate(
    models: nn.Module | Mapping[str, nn.Module],
    suite: str | Path | Sequence[Mapping[str, Any]],
    data: str | None = None,
    *,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    features: str | None = None,
    device: str = "auto",
    data_root: str | Path | None = None,
    limit: int | None = None,
    json_path: str | Path | None = None,
    name: str = "python",
    seed: int = 0,
    show: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run a suite's tests on `models` and return the result document (also written to `json_path`, by default
    `results/<suite name>.json`, as by the command line).

    models: one nn.Module (named "model") or {name: module}; each takes [0, 1] images and returns logits.
    suite: a suite YAML file (its tests, data set, seed and batch size are used, its models are not) or a list of
        test mappings as in a suite's `tests:` (then `data` names the data set).
    normalize: (mean, std) applied inside the wrapper, for modules trained on normalised images.
    features: the module whose input is the penultimate feature (default: the last nn.Linear).
    """
    modules = {"model": models} if isinstance(models, nn.Module) else dict(models)
    if not modules or not all(isinstance(m, nn.Module) for m in modules.values()):
        raise UserError("evaluate: models must be an nn.Module or a non-empty {name: nn.Module} mapping")
    if isinstance(suite, (str, Path)):
        base = load_suite(suite).model_dump(mode="json", exclude={"models"})
        origin = Path(suite)
    else:
        if data is None:
            raise UserError(
                "evaluate: give `data` (a data set name, see `robustcollapse list datasets`) with a test list"
            )
        base = {"name": name, "seed": seed, "tests": [dict(t) for t in suite]}
        origin = Path("<evaluate>")
    base["dataset"] = data or base["dataset"]
    entry: dict[str, Any] = {"features": features} if features else {}
    if normalize is not None:
        entry["normalize"] = {"mean": list(normalize[0]), "std": list(normalize[1])}
    base["models"] = [{"name": n, "module": f"{IN_MEMORY}:{type(m).__name__}", **entry} for n, m in modules.items()]
    checked = check_suite(base, origin, {})
    console = console or Console(emoji=False)
    out = Path(json_path) if json_path else default_output(checked)
    options = RunOptions(resolve_device(device), Path(data_root) if data_root else None, False, limit, modules=modules)
    doc = run_suite(checked, out, options, console)
    if show:
        print_results(doc, checked, console)
    return doc
