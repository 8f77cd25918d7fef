"""The training loop: whole data set on the device as one tensor, batches and augmentation done there, seeded."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from robustcollapse.config import Recipe
from robustcollapse.data import Dataset, Split, to_float, validation_split
from robustcollapse.distributed import all_sum, is_main, world
from robustcollapse.errors import UserError
from robustcollapse.io import check_checkpoint_output
from robustcollapse.metrics.calibration import fit_temperature
from robustcollapse.models import Classifier, ModelSpec, build_model
from robustcollapse.progress import track
from robustcollapse.training.parallel import (
    agree_buffers,
    loss_share,
    my_rows,
    save_on_main,
    sum_gradients,
    sync_batchnorm,
)
from robustcollapse.training.tracking import TRACK_SAMPLES, accuracy, convergence_epoch, epoch_collapse


@dataclass(frozen=True)
class Draws:
    """The random augmentation of one global batch, per image: crop offsets (None: no crop) and flip mask (None:
    no flip). Drawn for the whole batch on every rank, in one process's order, so that each rank's slice of it is
    the slice one process would have augmented the same way."""

    dy: torch.Tensor | None
    dx: torch.Tensor | None
    flip: torch.Tensor | None

    def rows(self, rows: slice) -> Draws:
        """The draws of a slice of the batch."""
        return Draws(*(None if t is None else t[rows] for t in (self.dy, self.dx, self.flip)))


def draw_augmentation(n: int, crop: int, flip: bool, generator: torch.Generator) -> Draws:
    """The draws of a batch of n images, in this order: crop offsets dy, then dx, then the flip mask."""
    dy = torch.randint(0, 2 * crop + 1, (n,), generator=generator) if crop > 0 else None
    dx = torch.randint(0, 2 * crop + 1, (n,), generator=generator) if crop > 0 else None
    mask = torch.rand(n, generator=generator) < 0.5 if flip else None
    return Draws(dy, dx, mask)


def augment(x: torch.Tensor, crop: int, draws: Draws) -> torch.Tensor:
    """Random crop (zero padding `crop` pixels, then the drawn HxW window per image) and horizontal flip."""
    n, c, h, w = x.shape
    if draws.dy is not None and draws.dx is not None:
        padded = torch.nn.functional.pad(x, (crop, crop, crop, crop))
        dy, dx = draws.dy.to(x.device), draws.dx.to(x.device)
        rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
        cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if draws.flip is not None:
        mask = draws.flip.to(x.device)[:, None, None, None]
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


def _step(
    model: Classifier, opt: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor, batch: int, where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on this rank's slice (xb, yb) of a global batch of `batch` images: returns the global
    batch's mean loss (the same on every rank) and the slice's logits, both detached. A non-finite loss stops
    every rank alike, before the step, with `where` starting the error."""
    z, logits = model.forward_all(xb)
    loss = model.loss(logits, z, yb)
    opt.zero_grad(set_to_none=True)
    mine = loss_share(loss, len(yb), batch)
    mine.backward()
    loss = sum_gradients([p for group in opt.param_groups for p in group["params"]], mine)
    if not torch.isfinite(loss):
        raise UserError(f"{where} (loss {float(loss)}); lower lr")
    opt.step()
    return loss, logits.detach()


def _epoch(
    model: Classifier, opt: torch.optim.Optimizer, recipe: Recipe, train: Split, generator: torch.Generator, where: str
) -> tuple[float, float]:
    """One pass over a seeded permutation of `train`: (mean loss, training accuracy) of the global batches; `where`
    starts the error of a diverged loss. Under torchrun each rank trains on its rows of every batch."""
    n, device, ranks = len(train), train.x.device, world()
    steps = n // recipe.batch_size if n % recipe.batch_size == 1 else math.ceil(n / recipe.batch_size)
    order = torch.randperm(n, generator=generator).to(device)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    hit_sum = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for s in range(steps):
        idx = order[s * recipe.batch_size : (s + 1) * recipe.batch_size]
        draws = draw_augmentation(len(idx), recipe.augment.crop, recipe.augment.flip, generator)
        rows = my_rows(len(idx), ranks)
        xb = augment(to_float(train.x[idx[rows]]), recipe.augment.crop, draws.rows(rows))
        yb = train.y[idx[rows]]
        loss, logits = _step(model, opt, xb, yb, len(idx), where)
        loss_sum += loss.double() * len(idx)
        hit_sum += (logits.argmax(1) == yb).sum()
        seen += len(idx)
    return float(loss_sum) / seen, float(all_sum(hit_sum)) / seen


def _say(console: Console | None, label: str, row: dict[str, float], epochs: int) -> None:
    """The epoch's line, on rank 0 only: readable in a log file, where a progress bar is redrawn at most rarely."""
    if console is not None and is_main():
        console.print(
            f"{label} epoch {row['epoch']}/{epochs}: loss {row['loss']:.4f}, train acc {row['train_acc']:.3f}, "
            f"test acc {row['test_acc']:.3f}",
            markup=False,
            highlight=False,
        )


def train_model(
    recipe: Recipe, data: Dataset, device: torch.device, console: Console | None = None, train: Split | None = None
) -> tuple[Classifier, list[dict[str, float]]]:
    """Train a model from its recipe on `train` (default: the data set's whole train split); returns it (eval mode)
    and the per-epoch history. Under torchrun data-parallel (see `training.parallel`): every rank returns the same
    model and the global history."""
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    model = sync_batchnorm(build_model(model_spec(recipe, data)), device).to(device)
    opt = _optimizer(recipe, model)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.epochs) if recipe.schedule == "cosine" else None
    train = data.train if train is None else train
    tracked = train.head(min(TRACK_SAMPLES, len(train)))  # the fixed subset whose collapse is logged every epoch
    history: list[dict[str, float]] = []
    label = f"{recipe.backbone.name}+{recipe.head.name}"
    with track(recipe.epochs, f"training {label}", unit="epochs") as advance:
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
            _say(console, label, row, recipe.epochs)
            advance(1)
    agree_buffers(model)
    return model.eval(), history


def train_to_checkpoint(
    recipe: Recipe, data: Dataset, weights: Path, device: torch.device, console: Console | None = None
) -> tuple[Classifier, dict[str, Any]]:
    """Train and save weights + sidecar (recipe, data set, classes, history); returns model and sidecar.

    With `val_fraction` the recipe's seeded validation split is held out of training; its indices (into the data
    set's train split) and the temperature fitted on it by NLL are recorded in the sidecar. Where the pair cannot
    be written is found before training, not after."""
    check_checkpoint_output(weights, "checkpoint")
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
    return model, save_on_main(model, weights, meta)
