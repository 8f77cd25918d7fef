"""The 19 CIFAR-10-C / ImageNet-C common corruptions as batched torch ops, on any device, with Hendrycks' parameters.

Every operation takes float images (N, C, H, W) in [0, 1] with C = 1 or 3 and returns the same shape in [0, 1];
`corrupt(x, name, severity)` applies one by name at severity 1..5 with the CIFAR-10-C or ImageNet-C values
(`parameter_set`). Randomness is counter-based, so an image is corrupted the same way in any batch, on CPU or GPU.

What lives where:
- `table.py`: `Corruption`, the `declare` decorator, the table in benchmark order (`CORRUPTIONS`, `STANDARD`,
  `EXTRA`, `FAMILIES`) and its lookups `resolve` and `parameter_set`;
- `noise.py`, `blur.py`, `weather.py`, `digital.py`, `extra.py`: the corruptions of one family each, every one
  declared once, next to its operation: name, family and its five values in both parameter sets;
- `apply.py`: `corrupt`, which also handles grey input and the originals' uint8 ends;
- `rng.py`: the counter-based random numbers (`Rng`);
- `filters.py`: the image filters and resampling several corruptions share; `edges.py`: OpenCV's Canny, distance
  transform and histogram equalisation for spatter;
- `export.py`: `export_corrupted`, writing the CIFAR-10-C layout that `robustcollapse.data.corrupted` reads;
- the frost photographs are package data in robustcollapse/frost/.

Importing this package imports the five family modules, which declares every corruption and registers it in the
project registry as `corruption/<name>`.

A new corruption needs one file plus its tests:
1. in the module of its family (a new family also needs its name in `table.FAMILIES` and its module imported
   here), an operation `fn(x, value, rng) -> x` decorated with `@declare(name, family, cifar=(5 values),
   imagenet=(5 values))`, with `colour=True` if it acts on RGB only and `rounds=True` if the original's result
   is already rounded to uint8; its place in the benchmark order is its place in that module;
2. its tests: its name and values in the pinned order and parameters of tests/test_corruption_table.py, and
   what it does in tests/test_corruptions.py.
"""

from robustcollapse.corruptions import blur, digital, extra, noise, weather  # noqa: F401  (declares them)
from robustcollapse.corruptions.apply import corrupt
from robustcollapse.corruptions.table import (
    CORRUPTIONS,
    EXTRA,
    FAMILIES,
    PARAMETER_SETS,
    STANDARD,
    Corruption,
    parameter_set,
    resolve,
)

__all__ = [
    "CORRUPTIONS",
    "EXTRA",
    "FAMILIES",
    "PARAMETER_SETS",
    "STANDARD",
    "Corruption",
    "corrupt",
    "parameter_set",
    "resolve",
]
