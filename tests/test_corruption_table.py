"""The corruption table: benchmark order, the registry, the declaration rules, and every parameter value.

The values are Hendrycks': `make_cifar_c.py` (cifar) and `make_imagenet_c.py` (imagenet), one per severity 1..5.
They are pinned here, apart from the declarations, so that moving or editing a declaration cannot reorder a
corruption's severities or change a value unnoticed (the conformance test checks the cifar values' effect
statistically, which a swap of two close rows can pass)."""

from __future__ import annotations

import pytest
import torch

from robustcollapse import registry
from robustcollapse.corruptions import CORRUPTIONS, EXTRA, FAMILIES, STANDARD, resolve
from robustcollapse.corruptions.rng import Rng
from robustcollapse.corruptions.table import declare

BENCHMARK_ORDER = {
    "noise": ["gaussian_noise", "shot_noise", "impulse_noise"],
    "blur": ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur"],
    "weather": ["snow", "frost", "fog", "brightness"],
    "digital": ["contrast", "elastic_transform", "pixelate", "jpeg_compression"],
    "extra": ["speckle_noise", "gaussian_blur", "spatter", "saturate"],
}


def test_table_keeps_the_benchmark_order_that_documents_results_and_exports_follow():
    everything = [name for names in BENCHMARK_ORDER.values() for name in names]
    assert list(CORRUPTIONS) == everything and resolve("all") == everything
    assert STANDARD == everything[:15] and EXTRA == BENCHMARK_ORDER["extra"] and FAMILIES == tuple(BENCHMARK_ORDER)
    for family, names in BENCHMARK_ORDER.items():
        assert resolve(family) == names and all(CORRUPTIONS[n].family == family for n in names)
    with pytest.raises(ValueError, match="unknown corruption 'fogg'"):
        resolve(["fogg"])


def test_every_declared_corruption_is_registered_with_five_severities_in_each_parameter_set():
    assert registry.names("corruption") == sorted(CORRUPTIONS)
    for name in registry.names("corruption"):
        spec = CORRUPTIONS[name]
        assert registry.get("corruption", name) is spec.fn and spec.name == name
        assert len(spec.values("cifar")) == 5 and len(spec.values("imagenet")) == 5


def test_declare_refuses_a_corruption_outside_its_family_module_or_without_five_severities():
    def op(x: torch.Tensor, value: float, rng: Rng) -> torch.Tensor:
        return x

    with pytest.raises(ValueError, match="the name of the module declaring it"):
        declare("test_only", "noise", cifar=(1, 2, 3, 4, 5), imagenet=(1, 2, 3, 4, 5))(op)
    op.__module__ = "robustcollapse.corruptions.noise"
    with pytest.raises(ValueError, match="5 values per parameter set"):
        declare("test_only", "noise", cifar=(1, 2, 3, 4), imagenet=(1, 2, 3, 4, 5))(op)
    assert "test_only" not in CORRUPTIONS and "test_only" not in registry.names("corruption")


def elastic(size: float, rows: tuple) -> tuple:
    """The originals' elastic parameters are fractions of the image size (224 written as 244 for ImageNet-C)."""
    return tuple((size * a, size * s, size * j) for a, s, j in rows)


PARAMETERS = {  # name: (cifar, imagenet)
    "gaussian_noise": ((0.04, 0.06, 0.08, 0.09, 0.10), (0.08, 0.12, 0.18, 0.26, 0.38)),
    "shot_noise": ((500, 250, 100, 75, 50), (60, 25, 12, 5, 3)),
    "impulse_noise": ((0.01, 0.02, 0.03, 0.05, 0.07), (0.03, 0.06, 0.09, 0.17, 0.27)),
    "defocus_blur": (
        ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
        ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    ),
    "glass_blur": (
        ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
        ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    ),
    "motion_blur": (
        ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
        ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    ),
    "zoom_blur": (
        ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)),
        ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)),
    ),
    "snow": (
        (
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        ),
        (
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        ),
    ),
    "frost": (
        ((1, 0.2, 0.2), (1, 0.3, 0.2), (0.9, 0.4, 0.2), (0.85, 0.4, 0.2), (0.75, 0.45, 0.2)),
        ((1, 0.4, 1.0), (0.8, 0.6, 1.0), (0.7, 0.7, 1.0), (0.65, 0.7, 1.0), (0.6, 0.75, 1.0)),
    ),
    "fog": (
        ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
        ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    ),
    "brightness": ((0.05, 0.1, 0.15, 0.2, 0.3), (0.1, 0.2, 0.3, 0.4, 0.5)),
    "contrast": ((0.75, 0.5, 0.4, 0.3, 0.15), (0.4, 0.3, 0.2, 0.1, 0.05)),
    "elastic_transform": (
        elastic(32, ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))),
        elastic(244, ((2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02))),
    ),
    "pixelate": ((0.95, 0.9, 0.85, 0.75, 0.65), (0.6, 0.5, 0.4, 0.3, 0.25)),
    "jpeg_compression": ((80, 65, 58, 50, 40), (25, 18, 15, 10, 7)),
    "speckle_noise": ((0.06, 0.1, 0.12, 0.16, 0.2), (0.15, 0.2, 0.35, 0.45, 0.6)),
    "gaussian_blur": ((0.4, 0.6, 0.7, 0.8, 1.0), (1, 2, 3, 4, 6)),
    "spatter": (
        (
            (0.62, 0.1, 0.7, 0.7, 0.5, 0),
            (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1),
        ),
        (
            (0.65, 0.3, 4, 0.69, 0.6, 0),
            (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1),
        ),
    ),
    "saturate": (
        ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
        ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
    ),
}


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_each_parameter_set_holds_hendrycks_values_in_severity_order(name):
    cifar, imagenet = PARAMETERS[name]
    assert CORRUPTIONS[name].values("cifar") == cifar and CORRUPTIONS[name].values("imagenet") == imagenet
    assert CORRUPTIONS[name].colour == (name in ("frost", "spatter", "saturate")), "RGB-only steps"
    assert CORRUPTIONS[name].rounds == (name in ("pixelate", "jpeg_compression")), "PIL's uint8 results"
