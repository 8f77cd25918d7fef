"""How a suite model is obtained without training it: its checkpoint (checked against the suite's recipe and
data), an import path, torchvision or timm; plus what a model is shown as (`inspect`) and its weights' digest.

Training a missing recipe model is the training package's job (`training.recipes.obtain_model`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from robustcollapse.config import ConfigError, ModelEntry, Normalize, Recipe, Suite, check_recipe
from robustcollapse.data import Dataset, coarsen, to_float
from robustcollapse.data.hierarchy import coarse_groups
from robustcollapse.errors import UserError
from robustcollapse.models.checkpoint import load_checkpoint, read_sidecar, sha256_file, weights_bytes
from robustcollapse.models.classifier import Classifier
from robustcollapse.models.external import build_external
from robustcollapse.models.robustbench import DEFAULT_MODEL_DIR

MODELS_DIR = Path("results/models")


def checkpoint_path(suite: Suite, entry: ModelEntry) -> Path | None:
    """The entry's `checkpoint:` or results/models/<suite>-<model>.safetensors (relative to the working dir);
    None for external (`module:`/`torchvision:`/`timm:`) models."""
    if entry.external:
        return None
    return Path(entry.checkpoint) if entry.checkpoint else MODELS_DIR / f"{suite.name}-{entry.name}.safetensors"


def resolved_recipe(suite: Suite, entry: ModelEntry) -> Recipe | None:
    """The entry's recipe with its data set filled in from the suite."""
    if entry.train is None:
        return None
    update: dict[str, Any] = {"dataset": entry.train.dataset or suite.dataset}
    if "heldout" not in entry.train.model_fields_set:
        update["heldout"] = list(suite.heldout)
    calibration = suite.calibration_of(entry)
    if calibration.temperature and "val_fraction" not in entry.train.model_fields_set:
        update["val_fraction"] = calibration.val_fraction  # the temperature's validation split, kept out of training
    return entry.train.model_copy(update=update)


def recipe_groups(recipe: Recipe | None, classes: list[str]) -> list[list[int]] | None:
    """The class groups a recipe trains on as coarse labels, or None for a fine-label model."""
    return None if recipe is None or recipe.coarse is None else coarse_groups(recipe.coarse, classes)


def model_view(recipe: Recipe | None, data: Dataset) -> Dataset:
    """The data set as a model sees it: coarse labels when its recipe trains on them, else unchanged."""
    groups = recipe_groups(recipe, data.classes)
    return data if groups is None else coarsen(data, groups)


def normalised_recipe(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored recipe with today's defaults filled in, so a field added since it was trained (at its default)
    does not count as a difference; a recipe that no longer validates is compared as stored."""
    try:
        recipe = Recipe.model_validate(stored)
        check_recipe(recipe, Path("<checkpoint>"), {}, ())  # fills the components' argument defaults
    except (ValidationError, ConfigError):
        return stored
    return recipe.model_dump(mode="json")


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


def load_suite_checkpoint(
    path: Path, entry: ModelEntry, recipe: Recipe | None, data: Dataset, device: torch.device
) -> tuple[Classifier, dict[str, Any]]:
    """A suite model's existing checkpoint, refused when it was trained with another recipe or on other data."""
    if recipe is not None:
        stored = normalised_recipe(read_sidecar(path).get("recipe") or {})
        diff = _recipe_mismatch(stored, recipe.model_dump(mode="json"))
        if diff:
            raise UserError(
                f"{path}: model {entry.name!r} was trained with another recipe ({diff}); "
                "delete the checkpoint, point `checkpoint:` elsewhere, or run `robustcollapse train SUITE --force`"
            )
    model, meta = load_checkpoint(path, device)
    check_trained_on(meta, model_view(recipe, data), entry, path)
    return model, meta


def _describe_data(name: Any, classes: list[str], shape: tuple[int, ...]) -> str:
    shown = ", ".join(map(str, classes[:4])) + (", …" if len(classes) > 4 else "")
    return f"{name} ({len(classes)} classes: {shown}; {'x'.join(map(str, shape))} images)"


def check_trained_on(meta: dict[str, Any], data: Dataset, entry: ModelEntry, path: Path) -> None:
    """The checkpoint's sidecar must describe the data the suite evaluates: same data set (unless the entry says
    `other_dataset: true`), same classes in the same order (fine or coarse label space) and same image shape."""
    spec = meta.get("model") or {}
    shape = (spec.get("in_channels"), spec.get("image_size"), spec.get("image_size"))
    classes = list(meta.get("classes") or spec.get("classes") or [])
    trained = _describe_data(meta.get("dataset", "?"), classes, shape)
    wanted = _describe_data(data.name, list(data.classes), data.image_shape)
    hint = f"{path}: model {entry.name!r} was trained on {trained}; the suite evaluates {wanted}"
    if None not in shape and shape != tuple(data.image_shape):
        raise UserError(f"{hint}: the image shapes differ")
    if classes and classes != list(data.classes):
        raise UserError(f"{hint}: the classes differ (names, order, or coarse vs fine labels)")
    if meta.get("dataset") not in (None, data.name) and not entry.other_dataset:
        raise UserError(f"{hint}; set `other_dataset: true` on the model if it is meant to be evaluated there")


def check_fits(model: torch.nn.Module, data: Dataset, name: str, source: str) -> None:
    """Two test images through the model: it must accept their shape and give one logit per class."""
    c, h, w = data.image_shape
    try:
        with torch.inference_mode():
            z, logits = model.forward_all(to_float(data.test.x[:2]))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a shape mismatch inside any user network is reported on one line
        raise UserError(
            f"model {name!r} ({source}) cannot take {data.name}'s {c}x{h}x{w} images: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from None
    if tuple(logits.shape) != (2, data.num_classes):
        raise UserError(
            f"model {name!r} ({source}) gives {logits.shape[1]} logits; {data.name} has {data.num_classes} classes"
        )


def state_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's weights as a checkpoint would store them: identifies an in-memory model for the resume
    cache as a checkpoint's sha256 identifies a saved one."""
    return hashlib.sha256(weights_bytes(module)).hexdigest()


def files_digest(files: list[Path]) -> str:
    """sha256 of one weights file; of an ensemble's files, the sha256 of their digests in member order."""
    if len(files) == 1:
        return sha256_file(files[0])
    return hashlib.sha256("".join(sha256_file(f) for f in files).encode()).hexdigest()


def external_model(
    entry: ModelEntry,
    data: Dataset,
    folder: Path | None,
    instance: torch.nn.Module | None = None,
    model_dir: Path = DEFAULT_MODEL_DIR,
    download: bool = False,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """An import-path / torchvision / timm / RobustBench model wrapped for the suite (normalisation, features), and
    its sidecar-like description; `instance` is a module handed over from the Python API. A RobustBench model's
    weights come from `model_dir`, fetched only with `download`."""
    channels = data.image_shape[0]
    if entry.normalize is None:
        entry = entry.model_copy(update={"normalize": Normalize(mean=[0.0] * channels, std=[1.0] * channels)})
    if len(entry.normalize.mean) != channels:
        raise UserError(
            f"model {entry.name!r}: normalize has {len(entry.normalize.mean)} channels, "
            f"{data.name} images have {channels}"
        )
    model, files = build_external(entry, data.num_classes, folder, channels, instance, model_dir, download)
    meta = {
        "sha256": files_digest(files) if files else (state_digest(instance) if instance is not None else None),
        "model": {
            "module": entry.module,
            "torchvision": entry.torchvision,
            "timm": entry.timm,
            "robustbench": (
                {"name": entry.robustbench, "dataset": entry.dataset, "threat_model": entry.threat_model}
                if entry.robustbench
                else None
            ),
            "kwargs": entry.kwargs,
            "weights": str(files[0]) if len(files) == 1 else [str(f) for f in files] or None,
            "features": model.features_name,
            "normalize": entry.normalize.model_dump(),
        },
        "recipe": None,
    }
    return model, meta


def describe_model(model: torch.nn.Module, data: Dataset) -> dict[str, Any]:
    """What the suite sees of a model: input shape, classes, feature dimension, classifier layer, size."""
    with torch.inference_mode():
        z, logits = model.forward_all(to_float(data.test.x[:2]))
    linear = model.classifier_layer()
    name = "head.classifier" if isinstance(model, Classifier) else model.features_name
    layer = f"{name} {tuple(linear.weight.shape)}" if linear is not None else f"{name} (not nn.Linear: no NC3)"
    return {
        "input": "x".join(str(v) for v in data.image_shape),
        "classes": int(logits.shape[1]),
        "feature_dim": int(z.shape[1]),
        "classifier": layer,
        "parameters": sum(p.numel() for p in model.parameters()),
        "normalisation": f"mean {[round(float(v), 4) for v in model.mean.flatten()]}, "
        f"std {[round(float(v), 4) for v in model.std.flatten()]}",
    }
