"""What `robustcollapse train` does, as plain functions (a notebook can call them too)."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape

from robustcollapse.config import ConfigError, Recipe, load_recipe, load_suite, load_yaml
from robustcollapse.data import hold_out, load_dataset
from robustcollapse.errors import UserError
from robustcollapse.evaluate.models import checkpoint_path, obtain_model, training_data
from robustcollapse.train import train_to_checkpoint


def train_from_file(
    path: Path, force: bool, device: torch.device, data_root: Path | None, download: bool, console: Console
) -> list[Path]:
    """Train every `train:` model of a suite file (skipping existing checkpoints unless `force`), or one recipe."""
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
    missing = [flag for flag, v in (("--dataset", dataset), ("--backbone", backbone), ("--head", head)) if not v]
    if missing:
        raise UserError(f"training from flags needs {', '.join(missing)} too (see `robustcollapse list`)")
    fields = {"dataset": dataset, "backbone": backbone, "head": head}
    if epochs is not None:
        fields["epochs"] = epochs
    if seed is not None:
        fields["seed"] = seed
    from robustcollapse.config import check_recipe, validate

    recipe = validate(Recipe, fields, Path("<flags>"), {})
    try:
        check_recipe(recipe, Path("<flags>"), {}, ())
    except ConfigError as exc:
        raise UserError(str(exc).replace("<flags>:1 ", "--")) from None
    return _train_recipe(recipe, out, device, data_root, download, console)
