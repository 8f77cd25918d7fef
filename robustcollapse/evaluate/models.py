"""Getting each suite model: load its checkpoint, or train it from its recipe and cache the checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from robustcollapse.config import ModelEntry, Recipe, Suite
from robustcollapse.data import Dataset, load_dataset
from robustcollapse.errors import UserError
from robustcollapse.models import Classifier
from robustcollapse.models.checkpoint import load_checkpoint, read_sidecar
from robustcollapse.train import train_to_checkpoint

MODELS_DIR = Path("results/models")


def checkpoint_path(suite: Suite, entry: ModelEntry) -> Path:
    """The entry's `checkpoint:` or results/models/<suite>-<model>.safetensors (relative to the working dir)."""
    return Path(entry.checkpoint) if entry.checkpoint else MODELS_DIR / f"{suite.name}-{entry.name}.safetensors"


def resolved_recipe(suite: Suite, entry: ModelEntry) -> Recipe | None:
    """The entry's recipe with its data set filled in from the suite."""
    if entry.train is None:
        return None
    return entry.train.model_copy(update={"dataset": entry.train.dataset or suite.dataset})


def _recipe_mismatch(stored: dict[str, Any], wanted: dict[str, Any], path: str = "") -> str | None:
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _recipe_mismatch(a, b, f"{path}{key}.")
            if found:
                return found
        elif a != b:
            return f"{path}{key}: checkpoint has {a!r}, suite asks {b!r}"
    return None


def obtain_model(
    suite: Suite,
    entry: ModelEntry,
    data: Dataset,
    device: torch.device,
    console: Console,
    data_root: Path | None = None,
    download: bool = False,
    retrain: bool = False,
) -> tuple[Classifier, dict[str, Any], bool]:
    """(model in eval mode, its sidecar, whether it was trained now)."""
    path = checkpoint_path(suite, entry)
    recipe = resolved_recipe(suite, entry)
    trained = False
    if path.is_file() and not retrain:
        if recipe is not None:
            stored = read_sidecar(path).get("recipe") or {}
            diff = _recipe_mismatch(stored, recipe.model_dump(mode="json"))
            if diff:
                raise UserError(
                    f"{path}: model {entry.name!r} was trained with another recipe ({diff}); "
                    "delete the checkpoint, point `checkpoint:` elsewhere, or run `robustcollapse train SUITE --force`"
                )
        model, meta = load_checkpoint(path, device)
    elif recipe is not None:
        console.print(f"[bold]training[/] {entry.name} → {path}")
        train_data = data if recipe.dataset == data.name else load_dataset(recipe.dataset, data_root, download, device)
        model, meta = train_to_checkpoint(recipe, train_data, path, device, console)
        trained = True
    else:
        raise UserError(f"model {entry.name!r}: checkpoint {path} not found and no `train:` recipe to make it")
    spec = model.spec
    if spec.num_classes != data.num_classes or (spec.in_channels, spec.image_size) != data.image_shape[:2]:
        raise UserError(
            f"model {entry.name!r} ({path}) takes {spec.in_channels}x{spec.image_size}px images with "
            f"{spec.num_classes} classes; {data.name} has {data.image_shape[0]}x{data.image_shape[1]}px, "
            f"{data.num_classes} classes"
        )
    return model, meta, trained
