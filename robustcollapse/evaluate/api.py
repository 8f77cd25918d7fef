"""The suite from Python: `robustcollapse.evaluate(model, tests, data=...)` on any nn.Module in a notebook, and
`evaluate_file`, what `robustcollapse eval` runs.

The same runner, tables and result document as `robustcollapse eval`; the modules are evaluated as they are in
memory (no checkpoint is written), behind the same wrapper as `module:` models in a suite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn

from robustcollapse import distributed
from robustcollapse.config import check_suite, load_suite
from robustcollapse.devices import resolve_device
from robustcollapse.errors import UserError
from robustcollapse.evaluate.overrides import Overrides, apply_overrides
from robustcollapse.evaluate.runner import RunOptions, default_output, run_suite
from robustcollapse.evaluate.shards import run_eval
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
    base, origin = _suite_base(suite, data, name, seed)
    base["models"] = _in_memory_entries(modules, normalize, features)
    checked = check_suite(base, origin, {})
    console = console or Console(emoji=False)
    out = Path(json_path) if json_path else default_output(checked)
    options = RunOptions(resolve_device(device), Path(data_root) if data_root else None, False, limit, modules=modules)
    doc = run_suite(checked, out, options, console)
    if show:
        print_results(doc, checked, console)
    return doc


def _suite_base(
    suite: str | Path | Sequence[Mapping[str, Any]], data: str | None, name: str, seed: int
) -> tuple[dict[str, Any], Path]:
    """The suite mapping without models (a file's, or one made of a test list) and the origin its errors name."""
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
    return base, origin


def _in_memory_entries(
    modules: Mapping[str, nn.Module], normalize: tuple[Sequence[float], Sequence[float]] | None, features: str | None
) -> list[dict[str, Any]]:
    """Suite model entries for in-memory modules: `module: <in-memory>:ClassName`, with normalize and features."""
    entry: dict[str, Any] = {"features": features} if features else {}
    if normalize is not None:
        entry["normalize"] = {"mean": list(normalize[0]), "std": list(normalize[1])}
    return [{"name": n, "module": f"{IN_MEMORY}:{type(m).__name__}", **entry} for n, m in modules.items()]


def evaluate_file(
    suite_file: str | Path,
    json_path: str | Path | None = None,
    *,
    device: str = "auto",
    data_root: str | Path | None = None,
    download: bool = False,
    limit: int | None = None,
    epochs: int | None = None,
    models: Sequence[str] = (),
    tests: Sequence[str] = (),
    show: bool = True,
    console: Console | None = None,
    bf16: bool = False,
    channels_last: bool = False,
    shard: str | None = None,
    model_dir: str | Path | None = None,
    intervals: str = "pm",
) -> tuple[dict[str, Any], Path]:
    """Run a suite file as `robustcollapse eval` does: train missing models, evaluate, print the tables (`show`),
    write the result document to `json_path` (default results/<suite name>.json). Returns (document, its path).

    `epochs` (a cap), `models` (names) and `tests` (ids, names or kinds) try a heavy suite cheaply; the document
    records them, and the gate never compares it with a document made without them. Under torchrun every rank
    calls this; each computes its share, rank 0 alone prints and writes (the others get the same document).
    `shard` ("I/N") runs one share of the (model, test) pairs of a job array into its own state (see `shards`);
    `model_dir` is where RobustBench weights are read; `intervals` how the tables show them (pm, bracket, none)."""
    overrides = Overrides(epochs, tuple(models), tuple(tests))
    suite = apply_overrides(load_suite(suite_file), overrides)
    out = Path(json_path) if json_path else default_output(suite)
    console = console or Console(emoji=False)
    root = Path(data_root) if data_root else None
    device_here = distributed.setup(resolve_device(device))
    options = RunOptions(device_here, root, download, limit, overrides, bf16=bf16, channels_last=channels_last)
    if model_dir is not None:
        options.model_dir = Path(model_dir)
    try:
        doc = run_eval(suite, out, options, shard, console)
    finally:
        distributed.teardown()
    if show and shard is None and distributed.is_main():
        print_results(doc, suite, console, intervals)
    return doc, out
