"""Suite models from their recipes: train what is missing (and cache the checkpoint), load what exists; what
`robustcollapse train` and `inspect` do, as plain functions a notebook can call too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

from robustcollapse.config import (
    ConfigError,
    ModelEntry,
    Recipe,
    Suite,
    check_recipe,
    load_recipe,
    load_suite,
    load_yaml,
    validate,
)
from robustcollapse.data import Dataset, hold_out, load_dataset
from robustcollapse.devices import resolve_device
from robustcollapse.distributed import broadcast_object, is_main
from robustcollapse.errors import UserError
from robustcollapse.models import Classifier
from robustcollapse.models.checkpoint import recover_checkpoint
from robustcollapse.models.robustbench import DEFAULT_MODEL_DIR
from robustcollapse.models.zoo import (
    check_fits,
    checkpoint_path,
    describe_model,
    external_model,
    load_suite_checkpoint,
    model_view,
    resolved_recipe,
)
from robustcollapse.progress import main_only
from robustcollapse.training.loop import train_to_checkpoint


def training_data(recipe: Recipe, data_root: Path | None, download: bool, device: torch.device) -> Dataset:
    """The recipe's data set on the device, without its held-out classes, with coarse labels if it asks."""
    data = load_dataset(recipe.dataset, data_root, download, str(device))
    return model_view(recipe, hold_out(data, recipe.heldout)[0])


def obtain_model(
    suite: Suite,
    entry: ModelEntry,
    data: Dataset,
    device: torch.device,
    console: Console,
    data_root: Path | None = None,
    download: bool = False,
    retrain: bool = False,
    instance: torch.nn.Module | None = None,
    model_dir: Path = DEFAULT_MODEL_DIR,
) -> tuple[Classifier, dict[str, Any], bool]:
    """(model in eval mode, its sidecar, whether it was trained now); `instance` is a module from the Python API,
    `model_dir` where RobustBench weights are read (fetched there only with `download`)."""
    if entry.external:
        model, meta = external_model(entry, data, suite.folder, instance, model_dir, download)
        model = model.to(device)
        check_fits(model, data, entry.name, entry.source)
        return model, meta, False
    path = checkpoint_path(suite, entry)
    recipe = resolved_recipe(suite, entry)
    trained = False
    recovered = recover_checkpoint(path) if is_main() else None  # one rank repairs; N at once would race
    if recovered:
        console.print(f"checkpoint {path}: an interrupted save was {recovered}", markup=False)
    if broadcast_object(path.is_file()) and not retrain:  # rank 0's view: all ranks load, or all train together
        model, meta = load_suite_checkpoint(path, entry, recipe, data, device)
    elif recipe is not None:
        console.print(f"[bold]training[/] {escape(entry.name)} → {escape(str(path))}")
        same = recipe.dataset == data.name and recipe.heldout == suite.heldout
        train_data = model_view(recipe, data) if same else training_data(recipe, data_root, download, device)
        model, meta = train_to_checkpoint(recipe, train_data, path, device, console)
        trained = True
    elif path.exists():
        raise UserError(f"model {entry.name!r}: checkpoint {path} is not a regular file (a folder, FIFO or device)")
    else:
        raise UserError(f"model {entry.name!r}: checkpoint {path} not found and no `train:` recipe to make it")
    check_fits(model, model_view(recipe, data), entry.name, str(path))
    return model, meta, trained


def inspect_suite(
    suite: Suite, data: Dataset, device: torch.device, console: Console, model_dir: Path = DEFAULT_MODEL_DIR
) -> dict[str, dict[str, Any]]:
    """describe_model for every model of a suite that exists (nothing is trained or downloaded)."""
    found: dict[str, dict[str, Any]] = {}
    for entry in suite.models:
        path = checkpoint_path(suite, entry)
        if path is not None and not path.is_file():
            found[entry.name] = {"status": f"not trained yet ({path}); `robustcollapse train` makes it"}
            continue
        model, _, _ = obtain_model(suite, entry, data, device, console, model_dir=model_dir)
        found[entry.name] = {"status": "ok", **describe_model(model, data)}
    return found


def inspect_file(
    path: Path,
    model: str | None = None,
    device: str = "auto",
    data_root: Path | None = None,
    console: Console | None = None,
    model_dir: Path = DEFAULT_MODEL_DIR,
) -> tuple[Suite, dict[str, dict[str, Any]]]:
    """`inspect_suite` of a suite file's models (or only `model`) on its data set, held-out classes removed.
    Returns the suite inspected (only `model` when given) and each model's description."""
    suite = load_suite(path)
    if model is not None:
        names = [m.name for m in suite.models]
        if model not in names:
            raise UserError(f"{path}: no model {model!r}; models: {', '.join(names)}")
        suite = suite.model_copy(update={"models": [m for m in suite.models if m.name == model]})
        suite._source = Path(path)
    dev = resolve_device(device)
    data = hold_out(load_dataset(suite.dataset, data_root, False, str(dev)), suite.heldout)[0]
    return suite, inspect_suite(suite, data, dev, console or Console(emoji=False), model_dir)


def train_from_file(
    path: Path, force: bool, device: torch.device, data_root: Path | None, download: bool, console: Console
) -> list[Path]:
    """Train every `train:` model of a suite file (skipping existing checkpoints unless `force`), or one recipe."""
    console = main_only(console)
    data, _ = load_yaml(Path(path))
    if "models" not in data:
        recipe = load_recipe(path)
        return [_train_recipe(recipe, None, device, data_root, download, console)]
    suite = load_suite(path)
    dataset = hold_out(load_dataset(suite.dataset, data_root, download, str(device)), suite.heldout)[0]
    written = []
    for entry in suite.models:
        if entry.train is None:
            continue
        ckpt = checkpoint_path(suite, entry)
        if ckpt.is_file() and not force:
            console.print(f"[dim]✓ {escape(entry.name)}: {escape(str(ckpt))} exists (use --force to retrain)[/]")
        obtain_model(suite, entry, dataset, device, console, data_root, download, retrain=force)
        written.append(ckpt)
    console.print("checkpoints: " + ", ".join(str(p) for p in written), markup=False)
    return written


def _train_recipe(
    recipe: Recipe, out: Path | None, device: torch.device, data_root: Path | None, download: bool, console: Console
) -> Path:
    assert recipe.dataset is not None
    out = out or Path("results/models") / (
        f"{recipe.dataset}-{recipe.backbone.name}-{recipe.head.name}-s{recipe.seed}.safetensors"
    )
    train_to_checkpoint(recipe, training_data(recipe, data_root, download, device), out, device, console)
    console.print(f"checkpoint: [bold]{escape(str(out))}[/]")
    return out


def train_from_flags(
    dataset: str | None,
    backbone: str | None,
    head: str | None,
    epochs: int | None,
    seed: int | None,
    out: Path | None,
    device: torch.device,
    data_root: Path | None,
    download: bool,
    console: Console,
) -> Path:
    """Train one model described by command-line flags."""
    console = main_only(console)
    missing = [flag for flag, v in (("--dataset", dataset), ("--backbone", backbone), ("--head", head)) if not v]
    if missing:
        raise UserError(f"training from flags needs {', '.join(missing)} too (see `robustcollapse list`)")
    fields = {"dataset": dataset, "backbone": backbone, "head": head}
    if epochs is not None:
        fields["epochs"] = epochs
    if seed is not None:
        fields["seed"] = seed
    recipe = validate(Recipe, fields, Path("<flags>"), {})
    try:
        check_recipe(recipe, Path("<flags>"), {}, ())
    except ConfigError as exc:
        raise UserError(str(exc).replace("<flags>:1 ", "--")) from None
    return _train_recipe(recipe, out, device, data_root, download, console)
