"""The suite runner: each model x each test, cached per finished (model, test), resumable, atomic output.

Three files per output `results/X.json`: the complete document (written only by a run that finished every test),
`results/X.json.partial` (the resume state: each finished (model, test), written as soon as it finishes) and
`results/X.interrupted.json` (what an interrupted run had finished, as a document with `status: interrupted`).
An interrupted run therefore never replaces a complete document, and a rerun resumes from the state. A shard of a
job array (`eval --shard I/N`, `evaluate/shards.py`) runs only its pairs, into its own state file."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

from robustcollapse import registry
from robustcollapse.config import ModelEntry, Suite, TestEntry
from robustcollapse.data import Dataset, Split, hold_out, load_dataset
from robustcollapse.distributed import broadcast_object, is_main, world
from robustcollapse.errors import UserError
from robustcollapse.evaluate.base import Context, TestResult
from robustcollapse.evaluate.overrides import Overrides
from robustcollapse.evaluate.temperature import model_temperature
from robustcollapse.io import (
    check_checkpoint_output,
    check_output,
    exclusive,
    one_at_a_time,
    remove_stale_temporaries,
    write_json,
)
from robustcollapse.metrics.intervals import wilson
from robustcollapse.models.checkpoint import sidecar_path
from robustcollapse.models.robustbench import DEFAULT_MODEL_DIR
from robustcollapse.models.zoo import checkpoint_path, model_view, recipe_groups, resolved_recipe
from robustcollapse.progress import main_only, track
from robustcollapse.report.document import new_document
from robustcollapse.report.replicas import summarise
from robustcollapse.report.verdicts import compare_models
from robustcollapse.training.recipes import obtain_model
from robustcollapse.version import __version__

NUMERICS = ("bf16", "channels_last")  # RunOptions flags that change the numbers (recorded with the overrides)


@dataclass
class RunOptions:
    device: torch.device
    data_root: Path | None = None
    download: bool = False
    limit: int | None = None
    overrides: Overrides = field(default_factory=Overrides)
    modules: dict[str, torch.nn.Module] = field(default_factory=dict)  # in-memory models (the Python API), by name
    bf16: bool = False  # evaluate under bfloat16 autocast
    channels_last: bool = False  # models (and so their convolutions) in channels-last memory format
    model_dir: Path = DEFAULT_MODEL_DIR  # RobustBench weights, in the zoo's layout

    def numerics(self) -> dict[str, bool]:
        """The evaluation's numerics when they are not the default fp32 / contiguous: recorded with the overrides
        (the gate never compares them with a default run) and part of what a resumed run must match."""
        return {k: True for k in NUMERICS if getattr(self, k)}


def default_output(suite: Suite) -> Path:
    return Path("results") / f"{suite.name}.json"


def partial_path(out: Path) -> Path:
    """Where finished (model, test) results are kept until the run completes."""
    return out.with_name(out.name + ".partial")


def interrupted_path(out: Path) -> Path:
    """Where an interrupted run leaves its document, beside (never over) the complete one."""
    return out.with_name(f"{out.stem}.interrupted{out.suffix or '.json'}")


def environment(device: torch.device, seed: int) -> dict[str, Any]:
    """Versions, device and git revision recorded with every result. torchvision and torchattacks as their installed
    distributions' versions, read without importing them (torchvision costs 1.5 s of start-up; torch's own version
    names the build, +cpu or +cuXXX)."""
    try:
        rev = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
            ).stdout.strip()
            or None
        )
    except OSError:
        rev = None
    return {
        "robustcollapse": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": importlib.metadata.version("torchvision"),
        "torchattacks": importlib.metadata.version("torchattacks"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": torch.get_num_threads(),
        "git_revision": rev,
        "seed": seed,
        "processes": world().size,
    }


def fingerprint(suite: Suite, limit: int | None, numerics: dict[str, bool] | None = None) -> str:
    """What must match for a partial run to be resumed: the validated suite, the example limit and the numerics."""
    what: dict[str, Any] = {"suite": suite.model_dump(mode="json"), "limit": limit} | (
        {"numerics": numerics} if numerics else {}
    )
    blob = json.dumps(what, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _load_partial(path: Path, fp: str) -> dict[str, Any]:
    if path.is_file():
        try:
            state = json.loads(path.read_text())
            if state.get("fingerprint") == fp:
                return state
        except json.JSONDecodeError:
            pass
    return {"fingerprint": fp, "models": {}, "results": {}}


def run_suite(suite: Suite, out: Path, options: RunOptions, console: Console) -> dict[str, Any]:
    """Run every test on every model; returns the finished document, also written to `out`.

    Each finished (model, test) is written to `<out>.partial` at once; a KeyboardInterrupt writes the document
    with `status: interrupted` to `interrupted_path(out)` and re-raises; a rerun with the same suite and limit
    skips what finished. `out` is written only when every test finished.
    """
    if not is_main():  # under torchrun every rank computes its share; rank 0 alone prints and writes
        return _run(suite, out, options, main_only(console))
    check_output(out, "--json", protected_inputs(suite))
    check_checkpoints(suite, out)
    with exclusive(out):
        for path in (out, partial_path(out), interrupted_path(out)):
            remove_stale_temporaries(path)
        return _run(suite, out, options, console)


def protected_inputs(suite: Suite) -> dict[Path, str]:
    """Files a run reads or trains into, which its result document must never overwrite."""
    protected: dict[Path, str] = {suite._source: "suite file"} if suite._source else {}
    for entry in suite.models:
        ckpt = checkpoint_path(suite, entry)
        if ckpt is not None:
            protected[ckpt] = f"checkpoint of model {entry.name!r}"
            protected[sidecar_path(ckpt)] = f"checkpoint sidecar of model {entry.name!r}"
    return protected


def check_checkpoints(suite: Suite, out: Path) -> None:
    """Before any work: every checkpoint the run would train can be written, and is neither the run's output, the
    suite, nor another artefact (a suite's `checkpoint: results/X.safetensors` would put its sidecar over the
    results document results/X.json)."""
    protected: dict[Path, str] = {out: "results document of this run"}
    if suite._source:
        protected[suite._source] = "suite file"
    for i, entry in enumerate(suite.models):
        ckpt = checkpoint_path(suite, entry)
        if ckpt is not None and entry.train is not None and not ckpt.is_file():
            check_checkpoint_output(ckpt, f"{suite._source or suite.name}: models[{i}].checkpoint", protected)


@dataclass
class Plan:
    """What a run will do: the suite's data (held-out classes apart), the tests by id, the example limit, the
    empty document to fill and the resume state of earlier runs."""

    suite: Suite
    out: Path
    limit: int | None
    data: Dataset
    heldout: Split
    tests: dict[str, TestEntry]
    doc: dict[str, Any]
    state: dict[str, Any]
    partial: Path  # where the resume state is kept: `partial_path(out)`, or a shard's state file


def plan(suite: Suite, out: Path, options: RunOptions, state_file: Path | None = None) -> Plan:
    """Load the data, start the document and read the resume state (from `state_file`, by default `<out>.partial`)."""
    limit = options.limit if options.limit is not None else suite.limit
    torch.manual_seed(suite.seed)
    data = load_dataset(suite.dataset, options.data_root, options.download, str(options.device))
    try:
        data, heldout = hold_out(data, suite.heldout)
    except UserError as exc:
        raise UserError(f"{suite._source or suite.name}: {exc}") from None
    doc = new_document(suite.model_dump(mode="json"), environment(options.device, suite.seed))
    doc["suite"]["limit"] = limit
    limited = {"limit": options.limit} if options.limit is not None else {}
    doc["overrides"] = limited | options.overrides.record() | options.numerics()
    state_file = state_file or partial_path(out)
    fp = fingerprint(suite, limit, options.numerics())
    state = broadcast_object(_load_partial(state_file, fp) if is_main() else None)
    tests = dict(zip(suite.test_ids(), suite.test_entries(), strict=True))
    return Plan(suite, out, limit, data, heldout, tests, doc, state, state_file)


def suite_pairs(suite: Suite) -> list[tuple[str, str]]:
    """Every (model, test id) of a suite in the order a run records them: model by model, tests in suite order."""
    return [(entry.name, test_id) for entry in suite.models for test_id in suite.test_ids()]


def run_pairs(p: Plan, pairs: list[tuple[str, str]], options: RunOptions, console: Console) -> None:
    """Run `pairs` (in suite order) and record each in the document, opening only the models they name, each once.

    A pair finished earlier (in the resume state) is recorded, not rerun; each one that runs is written to the
    resume state `p.partial` at once."""
    entries = {entry.name: entry for entry in p.suite.models}
    with track(len(pairs), f"{p.suite.name}: {len(pairs)} (model, test) pairs", unit="tests") as advance:
        for name in dict.fromkeys(model for model, _ in pairs):
            ctx, done = open_model(p, entries[name], options, console)
            for test_id in [test_id for model, test_id in pairs if model == name]:
                if test_id in done:
                    console.print(f"[dim]✓ {escape(name)} / {escape(test_id)}: finished earlier, skipped[/]")
                else:
                    with torch.autocast(options.device.type, dtype=torch.bfloat16, enabled=options.bf16):
                        params = p.tests[test_id]
                        done[test_id] = run_test(ctx, name, test_id, params, p.suite.seed, console, p.suite.confidence)
                    _write(p.partial, p.state)
                record(p.doc, name, test_id, done[test_id])
                advance(1)


def _run(suite: Suite, out: Path, options: RunOptions, console: Console) -> dict[str, Any]:
    p = plan(suite, out, options)
    try:
        run_pairs(p, suite_pairs(suite), options, console)
    except KeyboardInterrupt:
        p.doc["status"] = "interrupted"
        _write(interrupted_path(out), p.doc)
        console.print(f"finished so far: {interrupted_path(out)} (resume state {p.partial})", markup=False)
        raise
    finish(p.doc, p.tests)
    p.doc["status"] = "complete"
    if is_main():
        write_json(out, p.doc)
        p.partial.unlink(missing_ok=True)
        interrupted_path(out).unlink(missing_ok=True)
    return p.doc


def _checkpoint_lock(ckpt: Path | None, console: Console) -> contextlib.AbstractContextManager[None]:
    """One run at a time loads or trains a checkpoint (job-array shards may share one). Under torchrun rank 0 alone
    takes the lock: the ranks train a missing model together, and a rank waiting on rank 0 would deadlock it."""
    if ckpt is None or not is_main():
        return contextlib.nullcontext()
    return one_at_a_time(ckpt, lambda: console.print(f"waiting: another run holds {ckpt} (training it?)", markup=False))


def _write(path: Path, obj: dict[str, Any]) -> None:
    """Write a document or the resume state: rank 0's job alone."""
    if is_main():
        write_json(path, obj)


def open_model(
    p: Plan, entry: ModelEntry, options: RunOptions, console: Console
) -> tuple[Context, dict[str, dict[str, Any]]]:
    """Obtain (load or train) one model, record it in the document, and return the context its tests run in and
    its finished results (cleared when the checkpoint changed since they were recorded)."""
    suite, data = p.suite, p.data
    ckpt = checkpoint_path(suite, entry)
    with _checkpoint_lock(ckpt, console):
        model, meta, trained = obtain_model(
            suite,
            entry,
            data,
            options.device,
            console,
            options.data_root,
            options.download,
            instance=options.modules.get(entry.name),
            model_dir=options.model_dir,
        )
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    info = p.doc["models"][entry.name] = model_record(ckpt, meta, trained)
    done = p.state["results"].setdefault(entry.name, {})
    if p.state["models"].get(entry.name) != meta["sha256"]:
        done.clear()  # a different checkpoint: nothing cached for this model is valid
        p.state["models"][entry.name] = meta["sha256"]
    recipe = resolved_recipe(suite, entry)
    groups = recipe_groups(recipe, data.classes)
    view = model_view(recipe, data)  # a coarse-trained model sees coarse labels
    calibration = suite.calibration_of(entry)
    info["temperature"] = model_temperature(model, meta, view, calibration, suite.seed, suite.batch_size)
    ctx = Context(
        model,
        view,
        view.test.head(p.limit),
        suite.batch_size,
        suite.seed,
        options.data_root,
        options.download,
        p.heldout.head(p.limit),
        fine=None if groups is None else data,
        coarse=groups,
        temperature=info["temperature"]["value"] if info["temperature"] else None,
    )
    return ctx, done


def model_record(ckpt: Path | None, meta: dict[str, Any], trained: bool) -> dict[str, Any]:
    """What the document says of a model: where its weights are, their sha256, recipe, architecture, training."""
    return {
        "checkpoint": str(ckpt) if ckpt else meta["model"].get("weights"),
        "sha256": meta["sha256"],
        "recipe": meta.get("recipe"),
        "model": meta["model"],
        "trained_now": trained,
        **{k: meta.get(k) for k in ("train_metrics", "convergence_epoch", "latent_dim", "history")},
    }


def run_test(
    ctx: Context,
    model: str,
    test_id: str,
    params: TestEntry,
    seed: int,
    console: Console,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """One test on one model, seeded the same whatever ran before it: its metrics, details, flags and seconds, and
    for every metric with per-example evidence its interval (at `confidence`), its n and the evidence itself."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    kind = registry.get("test", params.kind)
    result: TestResult = kind.run(ctx, params)
    seconds = time.perf_counter() - start
    spaces = tuple(f"{space}/" for space in kind.namespace(params))
    outside = [key for key in result.metrics if not key.startswith(spaces)]
    if outside:  # a bug of the kind: its namespace is what keeps two tests from writing one key
        raise RuntimeError(f"{model} / {test_id}: metric {outside[0]!r} lies outside the test's namespace {spaces}")
    console.print(f"[dim]✓ {escape(model)} / {escape(test_id)} ({seconds:.1f} s)[/]")
    for warning in result.details.get("warnings", []):
        console.print(f"warning: {model} / {test_id}: {warning}", style="yellow", markup=False)
    rate_intervals(result.flags, confidence)
    return {
        "metrics": result.metrics,
        "details": result.details,
        "flags": result.flags,
        "seconds": seconds,
        **result.uncertainty(confidence, seed),
    }


def rate_intervals(flags: dict[str, Any], confidence: float) -> None:
    """Beside each honesty check's count of n points, the Wilson interval of its rate (`interval`): how sure the
    rate is that the check compares with its chance threshold."""
    for found in flags.get("checks", {}).values():
        if isinstance(found.get("count"), int) and found.get("n"):
            found["interval"] = list(wilson(found["count"], found["n"], confidence))


def finish(doc: dict[str, Any], tests: dict[str, TestEntry]) -> None:
    """Once every pair is recorded: each test kind's `across` (what its tests say together, e.g. the attack tests'
    worst case on shared points and their disagreements), then every model compared with the reference model on
    the examples both were scored on (`comparisons`)."""
    for kind in dict.fromkeys(entry.kind for entry in tests.values()):
        registry.get("test", kind).across(doc, {t: e for t, e in tests.items() if e.kind == kind})
    doc["comparisons"] = compare_models(doc)
    doc["replicas"] = summarise(doc)


def record(doc: dict[str, Any], model: str, test_id: str, result: dict[str, Any]) -> None:
    """Put one finished (model, test) into the document. A key another test already wrote is a bug (the suite's
    checks keep the tests' namespaces apart): it stops the run rather than silently replacing a number."""
    metrics = doc["metrics"].setdefault(model, {})
    taken = sorted(set(result["metrics"]) & set(metrics))
    if taken:
        raise RuntimeError(f"{model} / {test_id}: metric {taken[0]!r} was already written by an earlier test")
    metrics.update(result["metrics"])
    doc["details"].setdefault(model, {})[test_id] = result["details"]
    if result["flags"]:
        doc["flags"].setdefault(model, {})[test_id] = result["flags"]
    doc["timings"].setdefault(model, {})[test_id] = result["seconds"]
    doc["intervals"].setdefault(model, {}).update(result.get("intervals", {}))
    doc["n"].setdefault(model, {}).update(result.get("n", {}))
    if result.get("samples"):
        doc["samples"].setdefault(model, {})[test_id] = result["samples"]
    for warning in result["details"].get("warnings", []):
        doc["warnings"].append(f"{model} / {test_id}: {warning}")
