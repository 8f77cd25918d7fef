"""Command line: thin wrappers that parse, call the library and print. Errors are one line, exit code 2."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from robustcollapse import __version__, registry
from robustcollapse.errors import ChecksFired, UserError

console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

DEFAULT_SUITE = Path("suites/mnist.yaml")


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM (what a batch scheduler sends before killing) is handled like Ctrl-C."""
    raise KeyboardInterrupt


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn UserError into a one-line message (its exit code, 2 for bad input) and Ctrl-C or SIGTERM into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import robustcollapse.evaluate  # noqa: F401  (registers every plug-in: test kinds and their families)

        try:
            previous = signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread: leave signals alone
            previous = None
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted:[/] finished results are kept; rerun the same command to resume")
            sys.exit(130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


class OneLineErrors(click.Group):
    """Click's usage errors (a bad flag, a value out of range) print as one line like every other bad input,
    `error: COMMAND: message (see COMMAND --help)` with exit 2, instead of click's usage block."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "robustcollapse"
            message = f"{command}: {exc.format_message()} (see {command} --help)"
            err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            err_console.print(f"[bold red]error:[/] {escape(exc.format_message())}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            err_console.print("[yellow]interrupted[/]")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(name="robustcollapse", cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Cap every recipe at N epochs.")
@click.option("--models", "models", default=None, help="Comma-separated model names to run (default: all).")
@click.option("--tests", "tests", default=None, help="Comma-separated test ids, names or kinds to run (default: all).")
@click.option("--strict", is_flag=True, help="Exit 3 when any attack honesty check fires.")
@click.option("--shard", default=None, help="I/N: run only share I of N (0 <= I < N) of the pairs; see `merge`.")
@friendly
def eval(
    suite_file: Path | None,
    json_path: Path | None,
    device: str,
    data_root: Path | None,
    download: bool,
    limit: int | None,
    epochs: int | None,
    models: str | None,
    tests: str | None,
    strict: bool,
    shard: str | None,
) -> None:
    """Run a suite (default suites/mnist.yaml): train missing models, evaluate, print tables, write JSON.

    --limit, --epochs, --models and --tests try a heavy suite cheaply; the document records them, and the gate never
    compares it with a document made without them. --strict exits 3 when an attack honesty check fired.
    --shard I/N (job arrays) runs every N-th (model, test) pair from the I-th into results/<name>.json.shard-I-of-N;
    `merge` assembles the document when all N have finished."""
    from robustcollapse.config import load_suite
    from robustcollapse.devices import resolve_device
    from robustcollapse.evaluate.overrides import Overrides, apply_overrides, split_list
    from robustcollapse.evaluate.runner import RunOptions, default_output
    from robustcollapse.evaluate.shards import run_eval
    from robustcollapse.report.tables import fired_checks, print_results

    overrides = Overrides(epochs, split_list(models), split_list(tests))
    suite = apply_overrides(load_suite(suite_file or DEFAULT_SUITE), overrides)
    out = json_path or default_output(suite)
    options = RunOptions(resolve_device(device), data_root, download, limit, overrides)
    doc = run_eval(suite, out, options, shard, console)
    if shard is None:
        print_results(doc, suite, console)
        console.print(f"results: [bold]{escape(str(out))}[/]")
    fired = fired_checks(doc) if strict else []
    if fired:
        raise ChecksFired(f"--strict: honesty checks fired ({' | '.join(fired)})")


@main.command()
@click.argument("suite_file", type=click.Path(path_type=Path))
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The output the shards ran for [default: results/<suite name>.json].",
)
@friendly
def merge(suite_file: Path, json_path: Path | None) -> None:
    """Assemble the document of `eval SUITE_FILE --shard I/N` runs from their N complete shard states: the same
    document an unsharded eval writes (but timings and env). A missing, duplicated or incomplete shard, or one of
    another suite or limit, is exit 2 naming its file."""
    from robustcollapse.evaluate.shards import merge_shards
    from robustcollapse.report.tables import print_results

    doc, suite, out = merge_shards(suite_file, json_path, console)
    print_results(doc, suite, console)
    console.print(f"results: [bold]{escape(str(out))}[/] (merged from {len(doc['env']['shards'])} shards)")


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
    from robustcollapse.devices import resolve_device
    from robustcollapse.training.recipes import train_from_file, train_from_flags

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
    from robustcollapse.devices import resolve_device
    from robustcollapse.training.recipes import inspect_suite

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
    table = Table(title=escape(f"models of {suite.name} ({suite.dataset})"), title_justify="left")
    table.add_column("", style="bold")
    for name in found:
        table.add_column(escape(name))
    for field in fields:
        table.add_row(field, *(escape(str(found[name].get(field, "—"))) for name in found))
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
    """Diff two result documents; exit 1 if the gate fails: a metric regressed beyond its tolerance or became
    null/NaN/inf, a model, test or metric vanished, or a document is incomplete or of another schema version.
    Unreadable input is exit 2."""
    from robustcollapse.report.gate import gate

    failures = gate(base, new, tolerances_file, console)
    for line in failures:
        err_console.print(f"[bold red]gate failed:[/] {escape(line)}", soft_wrap=True)
    if failures:
        sys.exit(1)


@main.command()
@click.argument("result", type=click.Path(dir_okay=False, path_type=Path))
@friendly
def show(result: Path) -> None:
    """Re-print the terminal tables of a saved result document."""
    from robustcollapse.config import Suite
    from robustcollapse.report.document import load_document
    from robustcollapse.report.tables import print_results

    doc = load_document(result)
    try:
        suite = Suite.model_validate(doc["suite"])
    except Exception as exc:  # noqa: BLE001 - a document from another version or hand-edited
        raise UserError(f"{result}: its `suite` section does not validate ({type(exc).__name__})") from None
    print_results(doc, suite, console)
    console.print(f"status: {doc.get('status')}; models: {', '.join(doc['models'])}", markup=False)


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
    from robustcollapse.report.document import load_document
    from robustcollapse.report.html import write_report

    doc = load_document(result)
    folder = out or Path("results") / f"report-{doc['suite'].get('name', result.stem)}"
    try:
        page, figures = write_report(doc, folder)
    except UserError as exc:
        raise UserError(f"{result}: {exc}") from None
    for path in figures:
        console.print(f"figure: {path}", markup=False)
    console.print(f"page: {page}", markup=False)


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
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
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
@click.option(
    "--export",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write every image of the split, corrupted, in the CIFAR-10-C .npy layout to this folder (no PNG).",
)
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True, help="With --export.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="With --export: the first N images only.")
@click.option(
    "--labels",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --export of a .npy SOURCE: an (N,) integer .npy of its labels, written as labels.npy.",
)
@device_option
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
    export: Path | None,
    split: str,
    limit: int | None,
    labels: Path | None,
    device: str,
    data_root: Path | None,
) -> None:
    """Corrupt images: a PNG grid of one image under every corruption x severity, or with --export whole data sets.

    SOURCE is a data set name (its test image --index), an image file (resized to --size x --size, RGB) or, with
    --export, a uint8 (N, H, W, C) .npy array of images. --export DIR writes DIR/<corruption>.npy (uint8, the n
    images at each severity in turn, severity 1 first), DIR/labels.npy and DIR/manifest.json: the files
    `source: npy` reads from DATA_ROOT/<DATASET>-C (CIFAR-10-C/CIFAR-100-C for cifar10/cifar100)."""
    from robustcollapse.corruptions import parameter_set, resolve

    selection = corruptions if "," not in corruptions else [c.strip() for c in corruptions.split(",")]
    try:
        names = resolve(selection)
        levels = [int(s) for s in severities.split(",")]
    except ValueError as exc:
        raise UserError(f"--corruptions/--severities: {exc}") from None
    if not levels or any(not 1 <= s <= 5 for s in levels):
        raise UserError(f"--severities: {severities!r}; allowed: comma-separated values from 1, 2, 3, 4, 5")
    if export is not None:
        _export(source, export, names, levels, seed, parameters, split, limit, labels, device, data_root)
        return
    from robustcollapse.report.plots import corruption_grid

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
    console.print(f"grid: {path}", markup=False)


def _npy_images(path: Path, labels: Path | None):
    """A uint8 (N, H, W, C) .npy of images as NCHW, and its labels from --labels (or None)."""
    import numpy as np
    import torch

    from robustcollapse.data.base import to_uint8_nchw

    try:
        arr = np.load(path, mmap_mode="r")
        y = None if labels is None else np.load(labels)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path if labels is None else labels}: not a .npy array numpy can read ({exc})") from None
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise UserError(f"{path}: expected uint8 images (N, H, W, C) with C 1 or 3, got {arr.dtype} {arr.shape}")
    if y is not None and (y.ndim != 1 or len(y) != len(arr) or y.dtype.kind not in "iu"):
        raise UserError(f"{labels}: expected ({len(arr)},) integer labels, got {y.dtype} {y.shape}")
    x = to_uint8_nchw(torch.from_numpy(np.array(arr)).permute(0, 3, 1, 2))
    return x, None if y is None else torch.from_numpy(y.astype(np.int64))


def _export(
    source: str,
    folder: Path,
    names: list[str],
    levels: list[int],
    seed: int,
    parameters: str,
    split: str,
    limit: int | None,
    labels: Path | None,
    device: str,
    data_root: Path | None,
) -> None:
    """`corrupt --export`: corrupt every image of SOURCE's split (or a .npy array) and write the .npy layout."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from robustcollapse.corruptions import parameter_set
    from robustcollapse.corruptions.export import export_corrupted
    from robustcollapse.devices import resolve_device

    if source.endswith(".npy"):
        if not Path(source).is_file():
            raise UserError(f"{source}: no such .npy file")
        x, y = _npy_images(Path(source), labels)
    else:
        from robustcollapse.data import load_dataset

        data = load_dataset(source, data_root)
        part = data.test if split == "test" else data.train
        x, y = part.x, part.y
    x, y = x[:limit], None if y is None else y[:limit]
    target = resolve_device(device)
    chosen = parameter_set(*x.shape[-2:], parameters)
    total = len(names) * len(set(levels)) * len(x)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(f"corrupting {len(x)} images", total=total)
        written = export_corrupted(
            x.to(target),
            y,
            folder,
            names,
            levels,
            seed=seed,
            parameters=parameters,
            advance=lambda count: progress.advance(task, count),
        )
    console.print(
        f"{len(names)} corruptions x {len(set(levels))} severities x {len(x)} images ({chosen} parameters, seed "
        f"{seed}) -> {folder}/ ({len(written)} files{'' if y is not None else '; no labels.npy: pass --labels'})"
    )


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
    """List registered backbones, heads, data sets, test kinds and the corruptions (or one FAMILY of them)."""
    from rich.table import Table

    import robustcollapse.evaluate  # noqa: F401  (registers every plug-in)
    from robustcollapse.config import argument_summary

    # corruptions last, as a table of their parameter values (they take no arguments to summarise)
    known = [*(f for f in registry.families() if f != "corruption"), "corruption"]
    if family is not None and family.rstrip("s") not in known:
        message = f"unknown family {family!r}; known: {', '.join(known)}"
        err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
        sys.exit(2)
    for fam in known if family is None else [family.rstrip("s")]:
        if fam == "corruption":
            console.print(_corruption_table())
            continue
        table = Table(title=f"{fam}s", title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("arguments (defaults)")
        table.add_column("what")
        for name in registry.names(fam):
            table.add_row(name, argument_summary(fam, name), registry.describe(fam, name))
        console.print(table)


def _corruption_table():
    """The 19 corruptions: family, severities and the values of both parameter sets, severity 1 to 5."""
    from rich.table import Table

    from robustcollapse.corruptions import CORRUPTIONS

    table = Table(
        title="corruptions (Hendrycks & Dietterich's; family extra = the held-out four); parameter sets: cifar "
        "(make_cifar_c.py, auto below 128 px) and imagenet (make_imagenet_c.py), values for severity 1; 2; 3; 4; 5",
        title_justify="left",
    )
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("family")
    table.add_column("severities")
    table.add_column("cifar")
    table.add_column("imagenet")
    for spec in CORRUPTIONS.values():
        table.add_row(
            spec.name, spec.family, "1-5", "; ".join(map(_short, spec.params)), "; ".join(map(_short, spec.imagenet))
        )
    return table


def _short(value: object) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)
