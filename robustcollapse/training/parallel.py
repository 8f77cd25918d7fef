"""Data-parallel training under torchrun: what the loop does differently on N ranks, the identity in one process.

Every rank draws the same seeded permutation and, per global batch, the same augmentation; each takes its
contiguous block (`distributed.share`) of the batch and computes its slice's mean loss, weighted by the slice's
share of the batch. After backward, one flattened all-reduce sums every rank's gradients and weighted losses, so
each rank holds the gradient of the global batch's mean loss and that loss itself, takes the same optimiser step
and keeps the same weights (an all-reduce's result is bitwise the same on every rank). The global batch size, and
so the recipe's meaning, does not change with the number of processes.

Why not torch's DistributedDataParallel: it averages gradients over ranks, which is the batch's mean only when
every slice is the same size (the last batch of an epoch seldom is); it hooks `forward` while the loop calls
`forward_all`; and it would not carry the loss in the same message. One all-reduce after backward costs the
overlap of communication with backward that DDP's buckets give — nothing for the small models trained here, a
few per cent for a ResNet across GPUs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch

from robustcollapse.distributed import World, all_sum, broadcast_object, is_main, share, world
from robustcollapse.models import Classifier
from robustcollapse.models.checkpoint import save_checkpoint


def my_rows(batch: int, where: World) -> slice:
    """This rank's rows of a global batch of `batch` examples: all of them in one process."""
    block = share(batch, where)
    return slice(block.start, block.stop)


def loss_share(loss: torch.Tensor, rows: int, batch: int) -> torch.Tensor:
    """This rank's part of the global batch's mean loss: its slice's mean `loss` times rows/batch.

    `loss` itself when the slice is the whole batch (one process: not even a multiplication by 1), and a zero
    that still back-propagates (zero gradients, and the head's collectives ran) for an empty slice, a batch
    smaller than the number of ranks, whose mean is nan."""
    if rows == batch:
        return loss
    if rows == 0:
        return loss.nan_to_num(0.0) * 0.0
    return loss * (rows / batch)


def sum_gradients(params: list[torch.nn.Parameter], share_of_loss: torch.Tensor) -> torch.Tensor:
    """Sum every rank's gradients of `params` and its `share_of_loss` in one all-reduce; returns the global batch's
    mean loss (detached), the same on every rank. One process: nothing to do, `share_of_loss` is returned."""
    if world().size == 1:
        return share_of_loss.detach()
    grads = [torch.zeros_like(p).reshape(-1) if p.grad is None else p.grad.reshape(-1) for p in params]
    flat = all_sum(torch.cat([*grads, share_of_loss.detach().reshape(1).to(grads[0].dtype)]))
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat[-1]


def sync_batchnorm(model: Classifier, device: torch.device) -> Classifier:
    """BatchNorm over the global batch: torch's SyncBatchNorm when there are several ranks on CUDA.

    SyncBatchNorm runs on GPUs only (its forward refuses CPU tensors), so with gloo on the CPU every rank
    normalises its slice with the slice's own statistics, as DistributedDataParallel without SyncBatchNorm does:
    a backbone with BatchNorm then trains a little differently from one process, beyond rounding (the shipped
    smoke and mnist backbones have none), and the running statistics every rank keeps are rank 0's
    (`agree_buffers`). The state dict's keys are BatchNorm's either way, so checkpoints load as usual."""
    if world().size > 1 and device.type == "cuda":
        return cast(Classifier, torch.nn.SyncBatchNorm.convert_sync_batchnorm(model))  # the root is no BN: itself
    return model


def agree_buffers(model: Classifier) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics), which are not all-reduced like gradients
    and differ between ranks when BatchNorm is not synchronised; nothing in one process."""
    if world().size == 1:
        return
    theirs = broadcast_object({name: b.detach().cpu() for name, b in model.named_buffers()})
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(theirs[name])


def save_on_main(model: Classifier, weights: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Rank 0 alone writes the checkpoint; every rank returns its sidecar. The broadcast of the sidecar is the
    barrier: ranks > 0 wait in it until the files are on disk, and keep their model, identical to the saved one."""
    written = save_checkpoint(model, weights, meta) if is_main() else None
    return broadcast_object(written)
