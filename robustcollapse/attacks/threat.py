"""The threat model: a norm (L-inf or L2) and a perturbation budget eps, on the [0, 1] pixel scale.

How eps is written in a suite ('8/255', 0.03) and in a metric key ('8_255', '0.3'), how large a perturbation is,
and when it still counts as within eps: float round-off is allowed (1e-5 for L-inf, 1e-4 relative for L2), so an
attack that lands exactly on the ball's surface is not rejected by a last-bit rounding difference.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch

LINF_SLACK = 1e-5
L2_SLACK = 1e-4


def parse_eps(value: Any) -> float:
    """'8/255', 0.03 or '0.03' -> float."""
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"eps {value!r} is not a number or a fraction like 8/255") from None
    return value


def eps_label(eps: float) -> str:
    """A key-safe eps: short decimals as written (0.3 -> '0.3', 1 -> '1'), multiples of 1/255 as '8_255'."""
    decimal = f"{eps:.6g}"
    if len(decimal) <= 6 and float(decimal) == eps:
        return decimal
    k = eps * 255
    return f"{round(k)}_255" if abs(k - round(k)) < 1e-6 and 0 < round(k) < 255 else decimal


def perturbation_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example L-inf or L2 size of a batch of perturbations."""
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def eps_bound(eps: float, norm: str) -> float:
    """The largest perturbation size that still counts as within eps (float round-off allowed)."""
    return eps + LINF_SLACK if norm == "linf" else eps * (1 + L2_SLACK)


def within(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Which perturbations of a batch count as within eps."""
    return perturbation_norm(delta, norm) <= eps_bound(eps, norm)


def in_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Which inputs of a batch lie inside the [0, 1] pixel range."""
    flat = x.flatten(1)
    return (flat.amin(1) >= 0) & (flat.amax(1) <= 1)
