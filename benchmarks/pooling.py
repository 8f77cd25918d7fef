"""The main job's network without a graph: torch's `nn.MaxPool2d` against the backbones' `MaxPool2d` (pools in
channels-last memory when no graph is built), same weights, same batches, interleaved.

Prints the median time of a gradient-free forward pass per batch size, the ratio ours / torch's (target < 1:
the change exists for speed; 1.0 would mean it only adds code) and whether both gave the same logits bit for
bit (they must). Batch 75 is AutoAttack's and Square's on the main job, 1000 the corruption and OOD tests'.

    python benchmarks/pooling.py
    python benchmarks/pooling.py --batches 20 75 300 1000 --repeats 30
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from robustcollapse.models.backbones import MaxPool2d, convnet


def parse_args() -> argparse.Namespace:
    """The command line: batch sizes and repeats."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[75, 1000])
    parser.add_argument("--repeats", type=int, default=20)
    return parser.parse_args()


def with_torch_pooling(backbone: nn.Module) -> nn.Module:
    """A copy of `backbone` whose pooling layers are torch's own `nn.MaxPool2d` (the reference)."""
    reference = copy.deepcopy(backbone)
    layers = reference.net
    for i, layer in enumerate(layers):
        if isinstance(layer, MaxPool2d):
            layers[i] = nn.MaxPool2d(layer.kernel_size)
    return reference


def seconds(model: nn.Module, x: torch.Tensor) -> float:
    """Wall time of one gradient-free forward pass."""
    with torch.no_grad():
        start = time.perf_counter()
        model(x)
        return time.perf_counter() - start


def main() -> None:
    """Time both networks on each batch size and print the ratio."""
    args = parse_args()
    torch.manual_seed(0)
    ours = convnet(1, 28).eval()
    reference = with_torch_pooling(ours)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, convnet (main job), 28x28x1")
    for batch in args.batches:
        x = torch.rand(batch, 1, 28, 28)
        with torch.no_grad():
            identical = torch.equal(ours(x), reference(x))
        times: dict[str, list[float]] = {"torch": [], "ours": []}
        for _ in range(args.repeats):
            times["torch"].append(seconds(reference, x))
            times["ours"].append(seconds(ours, x))
        theirs, mine = (statistics.median(times[k]) for k in ("torch", "ours"))
        print(
            f"batch {batch:5d}: torch {theirs * 1e3:8.2f} ms  ours {mine * 1e3:8.2f} ms  "
            f"ratio {mine / theirs:.2f} (target < 1)  identical: {identical}"
        )


if __name__ == "__main__":
    main()
