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
from robustcollapse.metrics.binarity import sign_codes, two_means_separation
from robustcollapse.metrics.calibration import fit_temperature
from robustcollapse.metrics.collapse import collapse_report, weight_on_latent
from robustcollapse.models import Classifier, ModelSpec, build_model
from robustcollapse.models.checkpoint import save_checkpoint


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


@torch.inference_mode()
def accuracy(model: Classifier, split: Split, batch_size: int = 1024) -> float:
    """Top-1 accuracy of `model` on a split (eval mode)."""
    was_training = model.training
    model.eval()
    hits = 0
    for i in range(0, len(split), batch_size):
        logits = model(to_float(split.x[i : i + batch_size]))
        hits += int((logits.argmax(1) == split.y[i : i + batch_size]).sum())
    model.train(was_training)
    return hits / max(len(split), 1)


TRACK_SAMPLES = 1000


@torch.inference_mode()
def epoch_collapse(model: Classifier, subset: Split, num_classes: int) -> dict[str, float]:
    """Collapse figures of the current model on a fixed training subset, cheap enough to log every epoch:
    NC1, distance of the class means (and classifier rows) from the simplex ETF, NC3, sign-code agreement and the
    2-means binarity of z."""
    model.eval()
    z, logits = model.forward_all(to_float(subset.x))
    weight = weight_on_latent(model.classifier_layer(), z.shape[1])
    rep = collapse_report(z.float(), subset.y, logits.float(), weight, num_classes)
    row = {f"nc/{k}": rep[k] for k in ("nc1", "etf_means", "etf_w", "nc3") if k in rep}
    row["bin/same_code"] = sign_codes(z.float(), subset.y, num_classes)["same_code"]
    row["bin/two_means_sep"] = two_means_separation(z.float())
    return row


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
    n = len(train)
    tracked = train.head(min(TRACK_SAMPLES, n))  # the fixed subset whose collapse is logged every epoch
    steps = n // recipe.batch_size if n % recipe.batch_size == 1 else math.ceil(n / recipe.batch_size)
    history: list[dict[str, float]] = []
    label = f"{recipe.backbone.name}+{recipe.head.name}"
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TextColumn("loss {task.fields[loss]:.4f}  train acc {task.fields[acc]:.3f}  test acc {task.fields[test]:.3f}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=recipe.epochs, loss=float("nan"), acc=0.0, test=0.0)
        for epoch in range(1, recipe.epochs + 1):
            model.train()
            model.head.set_epoch(epoch - 1)
            start = time.perf_counter()
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
                    raise UserError(f"{label}: training diverged at epoch {epoch} (loss {float(loss)}); lower lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach().double() * len(idx)
                hit_sum += (logits.detach().argmax(1) == yb).sum()
                seen += len(idx)
            if sched is not None:
                sched.step()
            row = {
                "epoch": epoch,
                "loss": float(loss_sum) / seen,
                "train_acc": float(hit_sum) / seen,
                "test_acc": accuracy(model, data.test),
                "seconds": time.perf_counter() - start,
                **model.head.history_fields(),
                **epoch_collapse(model, tracked, data.num_classes),
            }
            history.append(row)
            progress.update(task, advance=1, loss=row["loss"], acc=row["train_acc"], test=row["test_acc"])
    return model.eval(), history


def convergence_epoch(history: list[dict[str, float]], threshold: float = 0.999) -> int | None:
    """First epoch whose training accuracy exceeds `threshold` (the binary-encoding paper's measure)."""
    return next((int(row["epoch"]) for row in history if row["train_acc"] > threshold), None)


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
