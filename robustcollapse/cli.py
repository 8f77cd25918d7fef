"""Command line: thin wrappers that parse, call the library and print. Errors are one line, exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from robustcollapse import __version__, registry
from robustcollapse.errors import ChecksFired, UserError

console = Console()
err_console = Console(stderr=True)

DEFAULT_SUITE = Path("suites/mnist.yaml")


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn UserError into a one-line message (exit 2) and Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted:[/] finished results are kept; rerun the same command to resume")
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="robustcollapse")
def main() -> None:
    """Train or load image classifiers and test their robustness, calibration and neural collapse."""


device_option = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
data_root_option = click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="ROBUSTCOLLAPSE_DATA",
    help="Folder of on-disk data sets (torchvision layout).",
)
download_option = click.option("--download", is_flag=True, help="Let torchvision download missing on-disk data sets.")


@main.command()
@click.argument("suite_file", type=click.Path(path_type=Path), required=False)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the result document [default: results/<suite name>.json].",
)
@device_option
@data_root_option
@download_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate at most N test examples.")
@click.option("--strict", is_flag=True, help="Exit 3 when any attack honesty check fires.")
@friendly
def eval(
    suite_file: Path | None,
    json_path: Path | None,
    device: str,
    data_root: Path | None,
    download: bool,
    limit: int | None,
    strict: bool,
) -> None:
    """Run a suite (default suites/mnist.yaml): train missing models, evaluate, print tables, write JSON."""
    from robustcollapse.config import load_suite
    from robustcollapse.evaluate.runner import RunOptions, default_output, run_suite
    from robustcollapse.report.tables import fired_checks, print_results
    from robustcollapse.train import resolve_device

    suite = load_suite(suite_file or DEFAULT_SUITE)
    out = json_path or default_output(suite)
    options = RunOptions(resolve_device(device), data_root, download, limit)
    doc = run_suite(suite, out, options, console)
    print_results(doc, suite, console)
    console.print(f"results: [bold]{out}[/]")
    if strict and fired_checks(doc):
        raise ChecksFired(f"--strict: honesty checks fired ({' | '.join(fired_checks(doc))})")


@main.command()
@click.argument("file", type=click.Path(path_type=Path), required=False)
@click.option("--dataset", default=None, help="Train one model from flags: data set name.")
@click.option("--backbone", default=None, help="Backbone name (with --dataset).")
@click.option("--head", default=None, help="Head name (with --dataset).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (with --dataset) [default: 10].")
@click.option("--seed", type=int, default=None, help="Training seed (with --dataset) [default: 0].")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Weights path for a flag-built model [default: results/models/<dataset>-<backbone>-<head>-s<seed>].",
)
@click.option("--force", is_flag=True, help="Retrain models whose checkpoints already exist.")
@device_option
@data_root_option
@download_option
@friendly
def train(
    file: Path | None,
    dataset: str | None,
    backbone: str | None,
    head: str | None,
    epochs: int | None,
    seed: int | None,
    out: Path | None,
    force: bool,
    device: str,
    data_root: Path | None,
    download: bool,
) -> None:
    """Train models: a suite's (default suites/mnist.yaml: the baseline and binary pair), a recipe file, or flags."""
    from robustcollapse.train import resolve_device
    from robustcollapse.training_cli import train_from_file, train_from_flags

    dev = resolve_device(device)
    if dataset or backbone or head:
        if file is not None:
            raise UserError("give either a FILE or --dataset/--backbone/--head flags, not both")
        train_from_flags(dataset, backbone, head, epochs, seed, out, dev, data_root, download, console)
    else:
        if epochs is not None or seed is not None or out is not None:
            raise UserError("--epochs/--seed/--out go with --dataset/--backbone/--head; a file sets its own")
        train_from_file(file or DEFAULT_SUITE, force, dev, data_root, download, console)


@main.command()
@click.argument("suite_file", type=click.Path(path_type=Path))
@click.argument("model", required=False)
@device_option
@data_root_option
@friendly
def inspect(suite_file: Path, model: str | None, device: str, data_root: Path | None) -> None:
    """Show what the suite sees of each model (or MODEL): input, classes, feature dim, classifier layer."""
    from rich.table import Table

    from robustcollapse.config import load_suite
    from robustcollapse.data import hold_out, load_dataset
    from robustcollapse.evaluate.models import inspect_suite
    from robustcollapse.train import resolve_device

    suite = load_suite(suite_file)
    if model is not None:
        names = [m.name for m in suite.models]
        if model not in names:
            raise UserError(f"{suite_file}: no model {model!r}; models: {', '.join(names)}")
        suite = suite.model_copy(update={"models": [m for m in suite.models if m.name == model]})
        suite._source = Path(suite_file)
    dev = resolve_device(device)
    data = hold_out(load_dataset(suite.dataset, data_root, False, str(dev)), suite.heldout)[0]
    found = inspect_suite(suite, data, dev, console)
    fields = ["status", "input", "classes", "feature_dim", "classifier", "parameters", "normalisation"]
    table = Table(title=f"models of {suite.name} ({suite.dataset})", title_justify="left")
    table.add_column("", style="bold")
    for name in found:
        table.add_column(name)
    for field in fields:
        table.add_row(field, *(str(found[name].get(field, "—")) for name in found))
    console.print(table)


@main.command()
@click.argument("base", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--tolerances",
    "tolerances_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML of glob pattern -> absolute tolerance (overrides the suite's regression.tolerances).",
)
@friendly
def compare(base: Path, new: Path, tolerances_file: Path | None) -> None:
    """Diff two result documents; exit 1 if any metric regressed beyond its tolerance."""
    from rich.table import Table

    from robustcollapse.config import load_tolerances
    from robustcollapse.report.compare import compare_documents, effective_tolerances, load_document

    old_doc, new_doc = load_document(base), load_document(new)
    override = load_tolerances(tolerances_file) if tolerances_file else None
    rows = compare_documents(old_doc, new_doc, effective_tolerances(new_doc, override))
    style = {
        "regressed": "bold red",
        "improved": "green",
        "within": "dim",
        "changed": "dim",
        "missing": "yellow",
        "new": "cyan",
    }
    table = Table(title=f"compare {base} → {new}", title_justify="left")
    for col in ("model", "key", "old", "new", "delta", "tolerance", "verdict"):
        table.add_column(col, justify="right" if col in ("old", "new", "delta", "tolerance") else "left")
    for r in rows:
        delta = r.new - r.old if r.old is not None and r.new is not None else None
        cells = [f"{v:.4g}" if v is not None else "—" for v in (r.old, r.new, delta)]
        table.add_row(r.model, r.key, *cells, f"{r.tolerance:g}", f"[{style[r.verdict]}]{r.verdict}[/]")
    if rows:
        console.print(table)
    regressed = [r for r in rows if r.verdict == "regressed"]
    counts = {v: sum(r.verdict == v for r in rows) for v in ("regressed", "improved", "within", "missing", "new")}
    console.print(", ".join(f"{n} {v}" for v, n in counts.items()))
    if regressed:
        names = ", ".join(f"{r.model}:{r.key}" for r in regressed[:5])
        err_console.print(f"[bold red]regression:[/] {names}" + (" …" if len(regressed) > 5 else ""))
        sys.exit(1)


@main.command()
@click.argument("result", type=click.Path(dir_okay=False, path_type=Path))
@friendly
def show(result: Path) -> None:
    """Re-print the terminal tables of a saved result document."""
    from robustcollapse.config import Suite
    from robustcollapse.report.compare import load_document
    from robustcollapse.report.tables import print_results

    doc = load_document(result)
    try:
        suite = Suite.model_validate(doc["suite"])
    except Exception as exc:  # noqa: BLE001 - a document from another version or hand-edited
        raise UserError(f"{result}: its `suite` section does not validate ({type(exc).__name__})") from None
    print_results(doc, suite, console)
    console.print(f"status: {doc.get('status')}; models: {', '.join(doc['models'])}")


@main.command()
@click.argument("result", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the PNGs and index.html [default: results/report-<suite name>/].",
)
@friendly
def report(result: Path, out: Path | None) -> None:
    """Plots (PNG) and one self-contained HTML page from a saved result document."""
    from robustcollapse.report.compare import load_document
    from robustcollapse.report.html import write_report

    doc = load_document(result)
    folder = out or Path("results") / f"report-{doc['suite'].get('name', result.stem)}"
    try:
        page, figures = write_report(doc, folder)
    except UserError as exc:
        raise UserError(f"{result}: {exc}") from None
    for path in figures:
        console.print(f"figure: {path}")
    console.print(f"page: {page}")


@main.command()
@click.argument("source")
@click.option("--index", type=click.IntRange(min=0), default=0, show_default=True, help="Which test image.")
@click.option("--size", type=click.IntRange(min=8), default=32, show_default=True, help="Side for an image file.")
@click.option(
    "--corruptions",
    default="all",
    show_default=True,
    help="all, a family (noise, blur, weather, digital, extra) or comma-separated corruption names.",
)
@click.option("--severities", default="1,2,3,4,5", show_default=True, help="Comma-separated severities 1..5.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--parameters",
    type=click.Choice(["auto", "cifar", "imagenet"]),
    default="auto",
    show_default=True,
    help="Parameter set: CIFAR-10-C (32x32) or ImageNet-C (224x224); auto: ImageNet-C from a shorter side of 128.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PNG path [default: results/corruptions-<source>.png].",
)
@data_root_option
@friendly
def corrupt(
    source: str,
    index: int,
    size: int,
    corruptions: str,
    severities: str,
    seed: int,
    parameters: str,
    out: Path | None,
    data_root: Path | None,
) -> None:
    """Write a PNG grid of one image under every corruption x severity, to look at them.

    SOURCE is a data set name (its test image --index) or an image file (resized to --size x --size, RGB)."""
    from robustcollapse.corruptions import parameter_set, resolve
    from robustcollapse.report.plots import corruption_grid

    selection = corruptions if "," not in corruptions else [c.strip() for c in corruptions.split(",")]
    try:
        names = resolve(selection)
        levels = [int(s) for s in severities.split(",")]
    except ValueError as exc:
        raise UserError(f"--corruptions/--severities: {exc}") from None
    if not levels or any(not 1 <= s <= 5 for s in levels):
        raise UserError(f"--severities: {severities!r}; allowed: comma-separated values from 1, 2, 3, 4, 5")
    if Path(source).is_file():
        image, title, stem = _image_file(Path(source), size), f"{Path(source).name} at {size}x{size}", Path(source).stem
    else:
        from robustcollapse.data import load_dataset

        data = load_dataset(source, data_root)
        if index >= len(data.test):
            raise UserError(f"--index: {index}; {source} has {len(data.test)} test images (0..{len(data.test) - 1})")
        image = data.test.x[index].float() / 255
        title = f"{source} test image {index} (class {data.classes[int(data.test.y[index])]})"
        stem = f"{source}-{index}"
    path = out or Path("results") / f"corruptions-{stem}.png"
    chosen = parameter_set(*image.shape[-2:], parameters)
    corruption_grid(image, names, levels, seed, path, f"{title}, {chosen} parameters, seed {seed}", chosen)
    console.print(f"grid: {path}")


def _image_file(path: Path, size: int):
    """An image file as a float (3, size, size) tensor in [0, 1] (Pillow, antialiased resize)."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{path}: not an image Pillow can read ({exc})") from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255


@main.command(name="list")
@click.argument("family", required=False)
def list_(family: str | None) -> None:
    """List registered backbones, heads, data sets and test kinds (or one FAMILY of them)."""
    from rich.table import Table

    from robustcollapse.config import argument_summary

    families = registry.families()
    if family is not None and family.rstrip("s") not in families:
        err_console.print(f"[bold red]error:[/] unknown family {family!r}; known: {', '.join(families)}")
        sys.exit(2)
    for fam in families if family is None else [family.rstrip("s")]:
        table = Table(title=f"{fam}s", title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("arguments (defaults)")
        table.add_column("what")
        for name in registry.names(fam):
            table.add_row(name, argument_summary(fam, name), registry.describe(fam, name))
        console.print(table)
