"""One batched forward pass of a model over images: its latent features z, logits and labels, read by every metric."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustcollapse.data import to_float
from robustcollapse.distributed import map_chunks
from robustcollapse.models.classifier import Classifier
from robustcollapse.progress import track


@dataclass
class Pass:
    """Latent features z, logits and labels of one model over one split: computed once, read by every metric."""

    z: torch.Tensor
    logits: torch.Tensor
    y: torch.Tensor


@torch.inference_mode()
def forward_pass(model: Classifier, images: torch.Tensor, batch_size: int, labels: torch.Tensor | None = None) -> Pass:
    """z and logits of images (uint8, or float in [0, 1]), batched, in eval mode; labels -1 when not given.

    Under torchrun each rank computes its share of the batches and every rank gets all of them, in order."""
    model.eval()

    def batch(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        return forward_batch(model, images[start:stop])

    with track(len(images), "forward pass", unit="images") as advance:
        z, logits = map_chunks(len(images), batch_size, batch, count=2, advance=advance)
    y = labels if labels is not None else torch.full((len(images),), -1, dtype=torch.long, device=images.device)
    return Pass(z.to(images.device), logits.to(images.device), y)


@torch.inference_mode()
def forward_batch(model: Classifier, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z and logits (float32) of one batch on this process alone: for loops that are already split between ranks."""
    z, out = model.forward_all(to_float(images) if images.dtype == torch.uint8 else images)
    return z.float(), out.float()
