"""Which torch device a run uses: one rule for the CLI, the Python API and the benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from robustcollapse.errors import UserError


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; asking for cuda without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"--device {name!r}: allowed values are auto, cpu, cuda, cuda:N")
    return torch.device(name)


@contextmanager
def exact_convolutions() -> Iterator[None]:
    """cuDNN convolutions in full float32 inside (restored after). PyTorch runs them in TF32 by default on Ampere and
    later GPUs, which rounds their inputs to 10 mantissa bits: measured on an H200, that moved up to 2.6 % of a
    blurred image's pixels by one grey level against the CPU, so a corruption would not give the CPU's images."""
    conv = getattr(torch.backends.cudnn, "conv", None)  # the per-operator flags of torch >= 2.9
    if conv is not None:
        owner, knob, exact = conv, "fp32_precision", "ieee"
    else:
        owner, knob, exact = torch.backends.cudnn, "allow_tf32", False
    saved = getattr(owner, knob)
    setattr(owner, knob, exact)
    try:
        yield
    finally:
        setattr(owner, knob, saved)
