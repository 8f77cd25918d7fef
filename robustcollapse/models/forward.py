"""One batched forward pass of a model over images: its latent features z, logits and labels, read by every metric."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustcollapse.data import to_float
from robustcollapse.models.classifier import Classifier


@dataclass
class Pass:
    """Latent features z, logits and labels of one model over one split: computed once, read by every metric."""

    z: torch.Tensor
    logits: torch.Tensor
    y: torch.Tensor


@torch.inference_mode()
def forward_pass(model: Classifier, images: torch.Tensor, batch_size: int, labels: torch.Tensor | None = None) -> Pass:
    """z and logits of images (uint8, or float in [0, 1]), batched, in eval mode; labels -1 when not given."""
    model.eval()
    zs, logits = [], []
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size]
        z, out = model.forward_all(to_float(batch) if batch.dtype == torch.uint8 else batch)
        zs.append(z.float())
        logits.append(out.float())
    y = labels if labels is not None else torch.full((len(images),), -1, dtype=torch.long, device=images.device)
    return Pass(torch.cat(zs), torch.cat(logits), y)
