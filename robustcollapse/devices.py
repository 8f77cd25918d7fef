"""Which torch device a run uses: one rule for the CLI, the Python API and the benchmarks."""

from __future__ import annotations

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
