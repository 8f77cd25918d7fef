"""Data-parallel runs under `torchrun`: thin wrappers over torch.distributed that are the identity in one process.

`torchrun --nproc_per_node=N -m robustcollapse eval ...` starts N processes and tells each its place through the
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). `setup` joins them into one process group —
NCCL when the run is on CUDA, one GPU per process (`cuda:LOCAL_RANK`), gloo on the CPU — and every helper here
does nothing when there is one process, so the same code path serves a laptop and a cluster:

- `share(n)`: this rank's contiguous block of `range(n)`; the blocks of ranks 0..N−1 laid end to end are range(n).
- `gather(t)`: the blocks' per-example results concatenated in rank order, on every rank — so a gathered tensor is
  the very tensor one process would have computed, and the document from N processes equals the one from 1.
- `map_chunks(n, size, fn)`: a batched loop over range(n) split between the ranks by whole batches, gathered.
- `all_sum(t)`, `broadcast_object(obj)`, `barrier()`.
- `batch_mean(x)`: the mean over the global batch (every rank's slice of it) of a loss term that is not a mean of
  per-example terms, differentiable: how a head's batch-level penalty sees the whole batch in data-parallel training.

A lost peer must not hang a run forever: the process group has a timeout (ROBUSTCOLLAPSE_DIST_TIMEOUT seconds,
default 300), and a collective that fails — the peer's socket closed, or the timeout ran out — becomes a one-line
`UserError` naming this rank and the step. (With NCCL the watchdog may abort the process at the timeout instead;
torchrun stops the other ranks when one fails either way.)
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from robustcollapse.errors import UserError

TIMEOUT_ENV = "ROBUSTCOLLAPSE_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0
MAX_DIMS = 8  # gather's shape header: enough for (N, C, H, W) and more
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16)
_DTYPES += (torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128)

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among `size` processes, and its index on its own node (`local_rank`)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> World:
        """The place torchrun (or srun with the same variables) gives this process; one process when unset."""
        env = os.environ if env is None else env
        try:
            world = cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))
        except ValueError as exc:
            raise UserError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers: {exc}") from None
        if world.size < 1 or not 0 <= world.rank < world.size or world.local_rank < 0:
            values = f"RANK={world.rank}, WORLD_SIZE={world.size}, LOCAL_RANK={world.local_rank}"
            raise UserError(f"bad torchrun environment: {values} (need 0 <= RANK < WORLD_SIZE)")
        return world

    @property
    def is_main(self) -> bool:
        """Rank 0 alone prints and writes files."""
        return self.rank == 0

    def __str__(self) -> str:
        """'rank 1 of 4': how error messages name this process."""
        return f"rank {self.rank} of {self.size}"


def world() -> World:
    """This process's World: the process group's when one is running, else the environment's (before `setup`,
    so that `is_main()` already silences ranks > 0)."""
    env = World.from_env()
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), env.local_rank)
    return env


def is_main() -> bool:
    """True on rank 0 and in a single process: the one that prints, draws progress bars and writes."""
    return world().is_main


def timeout() -> datetime.timedelta:
    """How long a collective waits for a peer before failing: ROBUSTCOLLAPSE_DIST_TIMEOUT seconds (default 300)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise UserError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None
    if not seconds > 0:
        raise UserError(f"{TIMEOUT_ENV}={raw!r}: must be a positive number of seconds")
    return datetime.timedelta(seconds=seconds)


def setup(device: torch.device) -> torch.device:
    """Join the torchrun process group when there are several processes, and return the device this one uses.

    On CUDA each process takes its own GPU, `cuda:LOCAL_RANK` (whatever index `device` named), and the group uses
    NCCL; otherwise gloo. The rendezvous is env:// (MASTER_ADDR/MASTER_PORT, as torchrun sets them). One process:
    `device` is returned unchanged and nothing else happens."""
    here = World.from_env()
    if here.size == 1:
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if here.local_rank >= count:
            raise UserError(
                f"{here}: LOCAL_RANK {here.local_rank} but this node has {count} CUDA device(s); "
                f"start at most {count} processes per node (torchrun --nproc_per_node={count})"
            )
        device = torch.device("cuda", here.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        _join(here, device)
    return device


def _join(here: World, device: torch.device) -> None:
    """init_process_group over env:// — NCCL for a GPU, gloo otherwise; a rendezvous that fails (a rank never
    came within the timeout, MASTER_ADDR unset) is one line."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    extra: dict[str, Any] = {"device_id": device} if backend == "nccl" else {}
    limit = timeout()
    try:
        dist.init_process_group(
            backend, init_method="env://", timeout=limit, rank=here.rank, world_size=here.size, **extra
        )
    except (RuntimeError, ValueError) as exc:
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        raise UserError(
            f"{here}: could not join the {here.size} processes at {where} within {limit.total_seconds():g} s "
            f"({_reason(exc)}); start every rank with torchrun"
        ) from exc


def teardown() -> None:
    """Leave the process group (a no-op in one process); never raises, as it runs while unwinding from errors."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except (RuntimeError, ValueError):
            pass


def share(n: int, where: World | None = None) -> range:
    """This rank's contiguous block of range(n): sizes differ by at most one, the first n % size ranks one larger,
    and the blocks of ranks 0..size−1 laid end to end are range(n) in order (so `gather` restores it)."""
    w = world() if where is None else where
    if n < 0:
        raise ValueError(f"share: n must be >= 0, got {n}")
    base, extra = divmod(n, w.size)
    start = w.rank * base + min(w.rank, extra)
    return range(start, start + base + (1 if w.rank < extra else 0))


@contextmanager
def _failures(step: str) -> Iterator[None]:
    """A collective that fails (a peer's connection closed, the timeout ran out) becomes one line to the user."""
    try:
        yield
    except RuntimeError as exc:  # gloo raises plain RuntimeError, NCCL DistBackendError (a subclass)
        raise UserError(f"{world()}: peer lost during {step} ({_reason(exc)}); re-run to resume") from exc


def _reason(exc: BaseException) -> str:
    """The first sentence of a torch.distributed error, without gloo's "[/path/pair.cc:545] " source prefix."""
    first = (str(exc).strip().splitlines() or ["no detail"])[0]
    return first.split("] ", 1)[-1].split(". ")[0][:160]


def _group_device() -> torch.device:
    """Where the group's tensors must live: the current GPU for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _several() -> bool:
    """True when collectives are needed; an error when torchrun started several processes but `setup` was not run
    (each rank would otherwise silently report its own share as the whole)."""
    if World.from_env().size == 1 and not dist.is_initialized():
        return False
    if not dist.is_initialized():
        raise RuntimeError("robustcollapse.distributed.setup() must run before collectives when WORLD_SIZE > 1")
    return dist.get_world_size() > 1


def _header(t: torch.Tensor) -> torch.Tensor:
    """(dtype code, ndim, *shape padded to MAX_DIMS) of a tensor, to check every rank sends the same kind."""
    if not 1 <= t.dim() <= MAX_DIMS:
        raise ValueError(f"gather: tensors need 1..{MAX_DIMS} dimensions, got shape {tuple(t.shape)}")
    if t.dtype not in _DTYPES:
        raise ValueError(f"gather: unsupported dtype {t.dtype}")
    shape = list(t.shape) + [0] * (MAX_DIMS - t.dim())
    return torch.tensor([_DTYPES.index(t.dtype), t.dim(), *shape], dtype=torch.int64)


def gather(t: torch.Tensor) -> torch.Tensor:
    """Every rank's block concatenated along dim 0 in rank order, returned on every rank (on `t`'s device).

    Blocks may differ in length, even be empty; dtype and trailing shape must agree. gloo's all_gather needs one
    shape on all ranks, so the lengths are exchanged first, each block is padded to the longest, and the padding
    is cut off again. Bool travels as uint8 (not every backend reduces or gathers bool)."""
    if not _several():
        return t
    size, device = dist.get_world_size(), _group_device()
    rows = _exchange_headers(t, size, device)
    lengths = [r[2] for r in rows]
    ref = next((r for r in rows if r[2] > 0), rows[0])  # an empty block takes its kind from a non-empty one
    dtype = _DTYPES[ref[0]]
    wire = t.to(device=device, dtype=torch.uint8 if dtype == torch.bool else dtype).contiguous()
    padded = torch.zeros((max(lengths), *ref[3 : 2 + ref[1]]), dtype=wire.dtype, device=device)
    padded[: len(t)] = wire.reshape(len(t), *padded.shape[1:])
    blocks = [torch.empty_like(padded) for _ in range(size)]
    with _failures("gather"):
        dist.all_gather(blocks, padded)
    out = torch.cat([block[:n] for block, n in zip(blocks, lengths, strict=True)])
    return out.to(device=t.device, dtype=dtype)


def _exchange_headers(t: torch.Tensor, size: int, device: torch.device) -> list[list[int]]:
    """Every rank's (dtype, ndim, shape) header; the non-empty blocks must agree on dtype and trailing shape."""
    header = _header(t).to(device)
    headers = [torch.empty_like(header) for _ in range(size)]
    with _failures("gather's shape exchange"):
        dist.all_gather(headers, header)
    rows = [h.tolist() for h in headers]
    full = [r for r in rows if r[2] > 0]
    if any(r[:2] != full[0][:2] or r[3:] != full[0][3:] for r in full):
        shapes = [f"rank {i}: dtype #{r[0]} shape {r[2 : 2 + r[1]]}" for i, r in enumerate(rows)]
        raise ValueError(f"gather: ranks disagree on dtype or trailing shape ({'; '.join(shapes)})")
    return rows


def map_chunks(
    n: int,
    size: int,
    fn: Callable[[int, int], tuple[torch.Tensor, ...]],
    count: int = 1,
    advance: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, ...]:
    """`fn(start, stop)` over the chunks [0, size), [size, 2 size), … of range(n), this rank taking its `share` of
    the chunks; each of the `count` tensors fn returns, concatenated in chunk order on every rank.

    A chunk is computed exactly as the one-process loop computes it (same start, same stop, same seed inside fn),
    so the gathered tensors are the ones one process makes, whatever the number of ranks. `fn` must not itself
    call collectives (every rank runs a different number of chunks). `advance(k)` is told of each chunk's items,
    scaled by the number of ranks (rank 0's share stands for everyone's: the ranks run in step)."""
    chunks = range(0, n, size)
    mine = []
    for start in (chunks[k] for k in share(len(chunks))):
        mine.append(fn(start, min(start + size, n)))
        if advance is not None:
            advance((min(start + size, n) - start) * world().size)
    local = [torch.cat([m[i] for m in mine]) if mine else torch.empty(0) for i in range(count)]
    return tuple(gather(t) for t in local)  # gather is the identity in one process


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """The elementwise sum over ranks, written into `t` and returned (identity in one process).

    For results that must equal one process's exactly, sum integer counts (int64) or gather and reduce on every
    rank: a float sum over ranks adds in another order than one process does and can differ in the last bits."""
    if not _several():
        return t
    wire = t.to(_group_device()).contiguous()  # `t` itself when it is already a contiguous tensor there
    with _failures("all_sum"):
        dist.all_reduce(wire, op=dist.ReduceOp.SUM)
    if wire is not t:
        t.copy_(wire)
    return t


def broadcast_object(obj: T) -> T:
    """Rank 0's `obj` (anything picklable) on every rank: the value other ranks passed is ignored."""
    if not _several():
        return obj
    box: list[Any] = [obj]
    with _failures("broadcast"):
        dist.broadcast_object_list(box, src=0, device=_group_device())
    return box[0]


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) that autograd goes through: every rank's output depends on every rank's input with weight 1,
    so the gradient reaching a rank's input is the sum over ranks of the gradients reaching their outputs."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of `t` (a fresh tensor: autograd must not see an in-place change of its input)."""
        return all_sum(t.detach().clone(memory_format=torch.contiguous_format))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of the gradients of the output."""
        return all_sum(grad.clone(memory_format=torch.contiguous_format))


def batch_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of `x`'s elements over every rank's `x`, differentiable; exactly `x.mean()` in one process.

    For loss terms of a whole batch that are not a mean of per-example terms (the binary head's
    exp(mean z²)): with each rank holding a slice of the global batch, a term computed on the slice alone would be
    another function. The sum and the element count travel in one float64 all-reduce (counts stay exact, the sum
    loses nothing to the reduction order that float32 would). The training loop weights each rank's loss by its
    share of the batch, so the gradients summed over ranks are those of the global batch's loss: the backward's
    all-reduce adds the weights back up to 1."""
    if not _several():
        return x.mean()
    local = torch.stack([x.sum().double(), torch.tensor(float(x.numel()), dtype=torch.float64, device=x.device)])
    total = _SumOverRanks.apply(local)
    return (total[0] / total[1]).to(x.dtype)


def barrier() -> None:
    """Wait until every rank gets here (identity in one process)."""
    if _several():
        with _failures("barrier"):
            dist.barrier()


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "TIMEOUT_ENV",
    "World",
    "all_sum",
    "barrier",
    "batch_mean",
    "broadcast_object",
    "gather",
    "is_main",
    "map_chunks",
    "setup",
    "share",
    "teardown",
    "timeout",
    "world",
]
