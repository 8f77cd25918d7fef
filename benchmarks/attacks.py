"""PGD-20 through robustcollapse's attack runner vs torchattacks called directly, on the same batch.

Prints both times, the ratio (target <= 1.05: the wrapper must stay thin) and images/s. Both sides do the
same work: predict the clean batch, attack the clean-correct points, predict the adversarial batch; ours also
re-counts and checks the eps-ball and [0, 1] (the honesty check 7). Median of --repeats runs each, interleaved.

    python benchmarks/attacks.py                          # small CNN, mnist5k, CPU
    python benchmarks/attacks.py --backbone resnet18 --device cuda --n 1000 --batch 500   # CIFAR-shaped
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchattacks

from robustcollapse.attacks import Runner
from robustcollapse.data import load_dataset, to_float
from robustcollapse.devices import resolve_device
from robustcollapse.models import ModelSpec, build_model


def parse_args() -> argparse.Namespace:
    """The command line: model, sizes, attack budget, repeats, device."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smallcnn", choices=["smallcnn", "resnet18"])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eps", type=float, default=8 / 255)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    return parser.parse_args()


def setup(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The untrained model, frozen, and n images labelled with its own predictions (so every point is attacked)."""
    if args.backbone == "smallcnn":
        data = load_dataset("mnist5k", device=str(device))
        x = to_float(data.test.x[: args.n])
        shape, mean, std, kwargs = (1, 28), data.mean, data.std, {"width": 16}
    else:  # CIFAR-shaped random images: the attack's cost does not depend on their content
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(args.n, 3, 32, 32, generator=gen).to(device)
        shape, mean, std, kwargs = (3, 32), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), {}
    torch.manual_seed(0)
    spec = ModelSpec(
        backbone=args.backbone,
        backbone_kwargs=kwargs,
        head="linear",
        in_channels=shape[0],
        image_size=shape[1],
        num_classes=10,
        mean=mean,
        std=std,
    )
    model = build_model(spec).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.inference_mode():
        y = model(x).argmax(1)
    return model, x, y


def ours(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> None:
    """PGD through our runner, which also re-counts and checks the eps-ball and [0, 1]."""
    Runner(model, x, y, "linf", args.batch, 0, 10).run("pgd", args.eps, args.steps, args.n)


def direct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> None:
    """The same work with torchattacks alone: predict, attack the clean-correct points per batch, predict again."""
    atk = torchattacks.PGD(model, eps=args.eps, alpha=2.5 * args.eps / args.steps, steps=args.steps)
    with torch.inference_mode():
        correct = torch.cat([model(x[i : i + args.batch]).argmax(1) for i in range(0, args.n, args.batch)]) == y
    idx = torch.nonzero(correct).squeeze(1)
    adv = x.clone()
    for i in range(0, len(idx), args.batch):
        b = idx[i : i + args.batch]
        torch.manual_seed(0)
        adv[b] = atk(x[b], y[b])
    with torch.inference_mode():
        torch.cat([model(adv[i : i + args.batch]).argmax(1) for i in range(0, args.n, args.batch)])


def timed(fn: Callable[[], None], device: torch.device) -> float:
    """Wall seconds of one call of fn (CUDA synchronised before and after)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    model, x, y = setup(args, device)
    ours(model, x, y, args), direct(model, x, y, args)  # warm-up
    t_ours, t_direct = [], []
    for _ in range(args.repeats):
        t_ours.append(timed(lambda: ours(model, x, y, args), device))
        t_direct.append(timed(lambda: direct(model, x, y, args), device))
    a, b = statistics.median(t_ours), statistics.median(t_direct)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()} threads"
    print(f"device: {name}; {args.backbone}, {args.n} images, batch {args.batch}, PGD-{args.steps}, eps {args.eps:.4f}")
    print(f"robustcollapse: {a:.3f} s ({args.n / a:.0f} images/s)")
    print(f"torchattacks direct: {b:.3f} s ({args.n / b:.0f} images/s)")
    print(f"ratio ours/direct: {a / b:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
