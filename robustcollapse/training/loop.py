"""The training loop: whole data set on the device as one tensor, batches and augmentation done there, seeded."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from robustcollapse.config import Recipe
from robustcollapse.data import Dataset, Split, to_float, validation_split
from robustcollapse.errors import UserError
from robustcollapse.metrics.calibration import fit_temperature
from robustcollapse.models import Classifier, ModelSpec, build_model
from robustcollapse.models.checkpoint import save_checkpoint
from robustcollapse.training.tracking import TRACK_SAMPLES, accuracy, convergence_epoch, epoch_collapse


def augment(x: torch.Tensor, crop: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding `crop` pixels, then a random HxW window per image) and horizontal flip."""
    n, c, h, w = x.shape
    if crop > 0:
        padded = torch.nn.functional.pad(x, (crop, crop, crop, crop))
        dy = torch.randint(0, 2 * crop + 1, (n,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * crop + 1, (n,), generator=generator).to(x.device)
        rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
        cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(x.device)[:, None, None, None]
        x = torch.where(mask, x.flip(3), x)
    return x


def model_spec(recipe: Recipe, data: Dataset) -> ModelSpec:
    c, h, _ = data.image_shape
    return ModelSpec(
        backbone=recipe.backbone.name,
        backbone_kwargs=recipe.backbone.args,
        head=recipe.head.name,
        head_kwargs=recipe.head.args,
        in_channels=c,
        image_size=h,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        classes=list(data.classes),
    )


def _optimizer(recipe: Recipe, model: Classifier) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=True
        )
    cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TextColumn("loss {task.fields[loss]:.4f}  train acc {task.fields[acc]:.3f}  test acc {task.fields[test]:.3f}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _epoch(
    model: Classifier, opt: torch.optim.Optimizer, recipe: Recipe, train: Split, generator: torch.Generator, where: str
) -> tuple[float, float]:
    """One pass over a seeded permutation of `train`: (mean loss, training accuracy); `where` starts the error of a
    diverged loss."""
    n, device = len(train), train.x.device
    steps = n // recipe.batch_size if n % recipe.batch_size == 1 else math.ceil(n / recipe.batch_size)
    order = torch.randperm(n, generator=generator).to(device)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    hit_sum = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for s in range(steps):
        idx = order[s * recipe.batch_size : (s + 1) * recipe.batch_size]
        xb = augment(to_float(train.x[idx]), recipe.augment.crop, recipe.augment.flip, generator)
        yb = train.y[idx]
        z, logits = model.forward_all(xb)
        loss = model.loss(logits, z, yb)
        if not torch.isfinite(loss):
            raise UserError(f"{where} (loss {float(loss)}); lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach().double() * len(idx)
        hit_sum += (logits.detach().argmax(1) == yb).sum()
        seen += len(idx)
    return float(loss_sum) / seen, float(hit_sum) / seen


def train_model(
    recipe: Recipe, data: Dataset, device: torch.device, console: Console | None = None, train: Split | None = None
) -> tuple[Classifier, list[dict[str, float]]]:
    """Train a model from its recipe on `train` (default: the data set's whole train split); returns it (eval mode)
    and the per-epoch history."""
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    model = build_model(model_spec(recipe, data)).to(device)
    opt = _optimizer(recipe, model)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.epochs) if recipe.schedule == "cosine" else None
    train = data.train if train is None else train
    tracked = train.head(min(TRACK_SAMPLES, len(train)))  # the fixed subset whose collapse is logged every epoch
    history: list[dict[str, float]] = []
    label = f"{recipe.backbone.name}+{recipe.head.name}"
    with _progress(console) as progress:
        task = progress.add_task(label, total=recipe.epochs, loss=float("nan"), acc=0.0, test=0.0)
        for epoch in range(1, recipe.epochs + 1):
            model.train()
            model.head.set_epoch(epoch - 1)
            start = time.perf_counter()
            loss, train_acc = _epoch(
                model, opt, recipe, train, generator, f"{label}: training diverged at epoch {epoch}"
            )
            if sched is not None:
                sched.step()
            row = {
                "epoch": epoch,
                "loss": loss,
                "train_acc": train_acc,
                "test_acc": accuracy(model, data.test),
                "seconds": time.perf_counter() - start,
                **model.head.history_fields(),
                **epoch_collapse(model, tracked, data.num_classes),
            }
            history.append(row)
            progress.update(task, advance=1, loss=row["loss"], acc=row["train_acc"], test=row["test_acc"])
    return model.eval(), history


def train_to_checkpoint(
    recipe: Recipe, data: Dataset, weights: Path, device: torch.device, console: Console | None = None
) -> tuple[Classifier, dict[str, Any]]:
    """Train and save weights + sidecar (recipe, data set, classes, history); returns model and sidecar.

    With `val_fraction` the recipe's seeded validation split is held out of training; its indices (into the data
    set's train split) and the temperature fitted on it by NLL are recorded in the sidecar."""
    train, validation, indices = validation_split(data.train, recipe.val_fraction, recipe.seed)
    model, history = train_model(recipe, data, device, console, train)
    extra: dict[str, Any] = {}
    if indices:
        with torch.inference_mode():
            logits = torch.cat([model(to_float(validation.x[i : i + 1024])) for i in range(0, len(validation), 1024)])
        extra["validation"] = {"fraction": recipe.val_fraction, "n": len(indices), "indices": indices}
        extra["temperature"] = fit_temperature(logits, validation.y)
    meta = {
        **extra,
        "recipe": recipe.model_dump(mode="json"),
        "dataset": data.name,
        "classes": data.classes,
        "history": history,
        "train_metrics": {k: history[-1][k] for k in ("loss", "train_acc", "test_acc")},
        "convergence_epoch": convergence_epoch(history),
        "latent_dim": model.head.latent_dim,
    }
    return model, save_checkpoint(model, weights, meta)
