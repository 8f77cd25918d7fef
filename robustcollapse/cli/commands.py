"""The commands: each parses its flags, calls one library function a notebook can call too, prints and exits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from robustcollapse import __version__
from robustcollapse.cli.errors import OneLineErrors, err_console, friendly
from robustcollapse.errors import ChecksFired, UserError
from robustcollapse.report.export import FORMATS

console = Console(emoji=False)

DEFAULT_SUITE = Path("suites/mnist.yaml")


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
download_option = click.option(
    "--download", is_flag=True, help="Let torchvision download missing on-disk data sets, RobustBench its weights."
)
intervals_option = click.option(
    "--intervals",
    "style",
    type=click.Choice(["pm", "bracket", "none"]),
    default="pm",
    show_default=True,
    help="How numbers show their intervals: 0.640 ± 0.094 (pm), 0.640 [0.546, 0.734] (bracket) or not at all.",
)


def format_option(*extra: str, help: str) -> Any:
    """`--format`: the terminal tables, one of `report.export`'s text formats, or a command's own `extra` ones."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice([*FORMATS, *extra]),
        default="table",
        show_default=True,
        help=help,
    )


model_dir_option = click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results/models/robustbench"),
    show_default=True,
    help="RobustBench weights, in the zoo's layout (<dataset>/<threat model>/<name>.pt).",
)


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
@model_dir_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate at most N test examples.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Cap every recipe at N epochs.")
@click.option("--models", "models", default=None, help="Comma-separated model names to run (default: all).")
@click.option("--tests", "tests", default=None, help="Comma-separated test ids, names or kinds to run (default: all).")
@click.option("--strict", is_flag=True, help="Exit 3 when any attack honesty check fires.")
@click.option("--quiet", is_flag=True, help="No progress bars or lines (tables, warnings, errors still print).")
@click.option("--bf16", is_flag=True, help="Evaluate under bfloat16 autocast (recorded; never gated against fp32).")
@click.option("--channels-last", is_flag=True, help="Models in channels-last memory format (faster convs on GPUs).")
@click.option("--shard", default=None, help="I/N: run only share I of N (0 <= I < N) of the pairs; see `merge`.")
@intervals_option
@friendly
def eval(
    suite_file: Path | None, models: str | None, tests: str | None, strict: bool, quiet: bool, **options: Any
) -> None:
    """Run a suite (default suites/mnist.yaml): train missing models, evaluate, print tables, write JSON.

    --limit, --epochs, --models and --tests try a heavy suite cheaply; the document records them, and the gate never
    compares it with a document made without them. --strict exits 3 when an attack honesty check fired. --shard I/N
    (job arrays) runs every N-th (model, test) pair from the I-th; `merge` assembles the document from all N."""
    from robustcollapse import distributed, progress
    from robustcollapse.evaluate.api import evaluate_file
    from robustcollapse.evaluate.overrides import split_list
    from robustcollapse.report.tables import fired_checks

    progress.set_quiet(quiet)
    progress.set_console(err_console)
    shard, style = options["shard"], options.pop("style")
    doc, out = evaluate_file(
        suite_file or DEFAULT_SUITE,
        models=split_list(models),
        tests=split_list(tests),
        console=console,
        intervals=style,
        **options,
    )
    if not distributed.is_main():
        return
    if shard is None:
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
    from robustcollapse import distributed
    from robustcollapse.devices import resolve_device
    from robustcollapse.training.recipes import train_from_file, train_from_flags

    dev = distributed.setup(resolve_device(device))
    try:
        if dataset or backbone or head:
            if file is not None:
                raise UserError("give either a FILE or --dataset/--backbone/--head flags, not both")
            train_from_flags(dataset, backbone, head, epochs, seed, out, dev, data_root, download, console)
        else:
            if epochs is not None or seed is not None or out is not None:
                raise UserError("--epochs/--seed/--out go with --dataset/--backbone/--head; a file sets its own")
            train_from_file(file or DEFAULT_SUITE, force, dev, data_root, download, console)
    finally:
        distributed.teardown()


@main.command()
@click.argument("suite_file", type=click.Path(path_type=Path))
@click.argument("model", required=False)
@device_option
@data_root_option
@model_dir_option
@friendly
def inspect(suite_file: Path, model: str | None, device: str, data_root: Path | None, model_dir: Path) -> None:
    """Show what the suite sees of each model (or MODEL): input, classes, feature dim, classifier layer."""
    from robustcollapse.report.listing import models_table
    from robustcollapse.training.recipes import inspect_file

    suite, found = inspect_file(suite_file, model, device, data_root, console, model_dir)
    console.print(models_table(found, suite))


@main.command()
@click.argument("base", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--tolerances",
    "tolerances_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML of glob pattern -> absolute tolerance (overrides the suite's regression.tolerances), or `auto`: "
    "from the seed spread of BASE's replicated models.",
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
@format_option(
    help="Terminal tables, or the same tables (and verdicts) as Markdown, LaTeX (booktabs) or CSV on stdout."
)
@intervals_option
@friendly
def show(result: Path, fmt: str, style: str) -> None:
    """Re-print the terminal tables of a saved result document (or export them for a paper)."""
    from robustcollapse.report.saved import export_result, show_result

    if fmt != "table":
        sys.stdout.write(export_result(result, fmt, style))
        return
    doc = show_result(result, console, style)
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
    from robustcollapse.report.saved import report_result

    page, figures = report_result(result, out)
    for path in figures:
        console.print(f"figure: {path}", markup=False)
    console.print(f"page: {page}", markup=False)


@main.command()
@click.argument("source")
@click.option("--index", type=click.IntRange(min=0), default=0, show_default=True, help="Which test image.")
@click.option(
    "--size", type=click.IntRange(min=8, max=4096), default=32, show_default=True, help="Side for an image file."
)
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
    from robustcollapse.corruptions.table import parse_selection

    names, levels = parse_selection(corruptions, severities)
    if export is not None:
        from robustcollapse.corruptions.export import export_source

        exported = export_source(
            source,
            export,
            names,
            levels,
            seed=seed,
            parameters=parameters,
            split=split,
            limit=limit,
            labels=labels,
            device=device,
            data_root=data_root,
            progress=err_console,
        )
        console.print(exported.summary())
        return
    from robustcollapse.report.plots import corruption_preview

    path = corruption_preview(
        source, names, levels, index=index, size=size, seed=seed, parameters=parameters, out=out, data_root=data_root
    )
    console.print(f"grid: {path}", markup=False)


@main.command(name="list")
@click.argument("family", required=False)
def list_(family: str | None) -> None:
    """List registered backbones, heads, data sets, test kinds and the corruptions (or one FAMILY of them)."""
    import robustcollapse.evaluate  # noqa: F401  (registers every plug-in)
    from robustcollapse.report.listing import listing

    try:
        tables = listing(family)
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
    for table in tables:
        console.print(table)
