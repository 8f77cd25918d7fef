"""The corruption table: `declare` puts each corruption in it from next to its operation; lookups over it.

Each corruption has two parameter tables, one value per severity 1..5 (hendrycks/robustness): `params`, from
`make_cifar_c.py` (32x32 images), and `imagenet`, from `make_imagenet_c.py` (224x224 images). `parameter_set` picks
the ImageNet-C table for images whose shorter side is at least 128 pixels and the CIFAR one below (`auto`), or the
one it is told. Parameters in pixels (blur radii, elastic displacements) are used as they are, not rescaled to the
image size: a 64x64 image gets the CIFAR values, a 512x512 one the ImageNet ones.

Order: `CORRUPTIONS`, `STANDARD` and `EXTRA` follow Hendrycks' benchmark order, which documents, result keys and
exported files follow: families in `FAMILIES` order, and within a family the order of declaration. A family's
corruptions are declared in the module of its name (noise.py, blur.py, weather.py, digital.py, extra.py; `declare`
refuses any other), so the order is that of the source, whatever order the modules happen to be imported in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from robustcollapse.errors import UserError
from robustcollapse.registry import register

FAMILIES = ("noise", "blur", "weather", "digital", "extra")
SEVERITIES = 5
Op = Callable[..., torch.Tensor]  # (x, the severity's value, rng) -> x


@dataclass(frozen=True)
class Corruption:
    """One corruption: its operation and its value per severity 1..5 in each parameter set."""

    name: str
    family: str
    fn: Op
    params: tuple  # make_cifar_c.py, one entry per severity 1..5
    imagenet: tuple  # make_imagenet_c.py, one entry per severity 1..5
    colour: bool = False  # acts on RGB only: grey input is replicated, corrupted, converted back to luma
    rounds: bool = False  # the original's result is already uint8, rounded by PIL: not truncated

    def values(self, parameters: str) -> tuple:
        """The table of a parameter set: 'cifar' or 'imagenet'."""
        return self.imagenet if parameters == "imagenet" else self.params


CORRUPTIONS: dict[str, Corruption] = {}  # name -> Corruption, in benchmark order; filled by `declare`
STANDARD: list[str] = []  # the 15 of CIFAR-10-C / ImageNet-C, in benchmark order
EXTRA: list[str] = []  # the held-out four (family extra)


def declare(
    name: str, family: str, cifar: tuple, imagenet: tuple, colour: bool = False, rounds: bool = False
) -> Callable[[Op], Op]:
    """Decorator: the operation it wraps is corruption `name` of `family`, with `cifar` and `imagenet` its values for
    severities 1..5; `colour` and `rounds` as in `Corruption`. Adds it to the table in benchmark order and registers
    the operation as `corruption/name` in the project registry. A misplaced or malformed declaration is a
    programming error, raised at import."""

    def wrap(fn: Op) -> Op:
        module = fn.__module__.rpartition(".")[2]
        if family not in FAMILIES or module != family:
            raise ValueError(
                f"corruption {name!r}: family {family!r} must be one of {', '.join(FAMILIES)} and the name of the "
                f"module declaring it (robustcollapse/corruptions/<family>.py), not {module!r}"
            )
        if len(cifar) != SEVERITIES or len(imagenet) != SEVERITIES:
            raise ValueError(
                f"corruption {name!r}: {SEVERITIES} values per parameter set (severities 1..{SEVERITIES}), got "
                f"{len(cifar)} cifar and {len(imagenet)} imagenet"
            )
        register("corruption", name)(fn)
        _insert(Corruption(name, family, fn, tuple(cifar), tuple(imagenet), colour, rounds))
        return fn

    return wrap


def _insert(spec: Corruption) -> None:
    """Add `spec` and keep the views in benchmark order: a stable sort by family keeps each family's declaration
    order."""
    specs = sorted([*CORRUPTIONS.values(), spec], key=lambda c: FAMILIES.index(c.family))
    CORRUPTIONS.clear()
    CORRUPTIONS.update((c.name, c) for c in specs)
    STANDARD[:] = [c.name for c in specs if c.family != "extra"]
    EXTRA[:] = [c.name for c in specs if c.family == "extra"]


def resolve(selection: str | list[str]) -> list[str]:
    """'all', a family name, or a list of corruption names -> corruption names in benchmark order."""
    if isinstance(selection, str):
        if selection == "all":
            return list(CORRUPTIONS)
        if selection in FAMILIES:
            return [c.name for c in CORRUPTIONS.values() if c.family == selection]
        selection = [selection]
    for name in selection:
        if name not in CORRUPTIONS:
            raise ValueError(
                f"unknown corruption {name!r}; known: all, {', '.join(FAMILIES)}, {', '.join(CORRUPTIONS)}"
            )
    return list(selection)


def parse_selection(corruptions: str, severities: str) -> tuple[list[str], list[int]]:
    """`robustcollapse corrupt`'s --corruptions ('all', a family or comma-separated names) and --severities
    ('1,3,5') as corruption names and severities; a wrong one is a one-line UserError naming the flag."""
    selection = corruptions if "," not in corruptions else [c.strip() for c in corruptions.split(",")]
    try:
        names = resolve(selection)
        levels = [int(s) for s in severities.split(",")]
    except ValueError as exc:
        raise UserError(f"--corruptions/--severities: {exc}") from None
    if not levels or any(not 1 <= s <= SEVERITIES for s in levels):
        raise UserError(f"--severities: {severities!r}; allowed: comma-separated values from 1, 2, 3, 4, 5")
    return names, levels


PARAMETER_SETS = ("auto", "cifar", "imagenet")
IMAGENET_FROM = 128  # shorter side, in pixels, from which `auto` picks the ImageNet-C parameters


def parameter_set(height: int, width: int, parameters: str = "auto") -> str:
    """'cifar' or 'imagenet': the one asked for, or for 'auto' the one made for images of this size."""
    if parameters not in PARAMETER_SETS:
        raise ValueError(f"unknown parameter set {parameters!r}; allowed: {', '.join(PARAMETER_SETS)}")
    if parameters != "auto":
        return parameters
    return "imagenet" if min(height, width) >= IMAGENET_FROM else "cifar"
