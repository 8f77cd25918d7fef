"""`corrupt`: one corruption by name, at one severity, on a batch of images.

Grey-scale input: noise, blur, weather, contrast, elastic, pixelate and JPEG act on the single channel directly
(snow's grey conversion is the identity there; brightness on the HSV value of a grey pixel is `x + c`). The
colour-only steps — saturate, spatter's coloured water and mud, frost's photographs — run on the channel replicated
three times and are converted back with the ITU-R 601 luma weights, so a grey image stays grey.
"""

from __future__ import annotations

import torch

from robustcollapse.corruptions.filters import _grey, _rgb, _round, _truncate
from robustcollapse.corruptions.rng import Rng
from robustcollapse.corruptions.table import CORRUPTIONS, parameter_set
from robustcollapse.devices import exact_convolutions


def corrupt(
    x: torch.Tensor,
    name: str,
    severity: int,
    seed: int = 0,
    index: torch.Tensor | None = None,
    parameters: str = "auto",
    quantize: bool = True,
) -> torch.Tensor:
    """Corrupt float images (N, C, H, W) in [0, 1] at severity 1..5; `index` (default 0..N−1) names the images for
    the random numbers, so image i gets the same corruption in any batch; `parameters` is auto, cifar or imagenet
    (see `parameter_set`). `quantize` ends, as the original's np.uint8(...) does before saving the .npy files, on
    whole grey levels: truncated (rounded where the original's result is already uint8), so generated images equal
    what a user reads from the files."""
    spec = CORRUPTIONS[name]
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    table = spec.values(parameter_set(x.shape[-2], x.shape[-1], parameters))
    if index is None:
        index = torch.arange(len(x), device=x.device)
    rng = Rng.for_images(seed, name, severity, index.to(x.device))
    grey = x.shape[1] == 1
    inp = _rgb(x) if grey and spec.colour else x
    with exact_convolutions():  # the CPU's images on a GPU too
        out = spec.fn(inp.float(), table[severity - 1], rng)
    if grey and spec.colour:
        out = _grey(out).clamp(0, 1)
    if quantize:
        out = _round(out) if spec.rounds else _truncate(out)
    return out
