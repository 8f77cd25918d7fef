"""All 19 corruptions x 5 severities: robustcollapse's batched torch ops vs `imagecorruptions` (per image, numpy).

Prints, for the same --size x --size RGB images, our time for the full 19 x 5 pass with the parameters `auto`
picks for that size (CIFAR-10-C at 32), images/s (one image at one severity of one corruption = one image), and
the ratio against `imagecorruptions` 1.1.2 on the corruptions it can run (target >= 50x). imagecorruptions applies
the ImageNet-C parameters at every size, so the ratio times ours with the ImageNet-C set too: the same work on
both sides. It is slow, so it is timed on --ref-n of the images per (corruption, severity) and scaled to --n;
corruptions it crashes on are listed and left out of both sides of the ratio.

    pip install imagecorruptions     # benchmark only: scikit-image, opencv
    python benchmarks/corruptions.py                      # 1,000 32x32 images on the CPU
    python benchmarks/corruptions.py --size 224 --n 100 --batch 100 --ref-n 3
    python benchmarks/corruptions.py --device cuda --n 10000
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from robustcollapse.corruptions import CORRUPTIONS, corrupt, parameter_set
from robustcollapse.train import resolve_device


def images(n: int, size: int) -> torch.Tensor:
    """n smooth random colour images (bicubic-upsampled 4x4 noise), size x size, in [0, 1]."""
    gen = torch.Generator().manual_seed(0)
    return F.interpolate(torch.rand(n, 3, 4, 4, generator=gen), size=(size, size), mode="bicubic").clamp(0, 1)


def ours(x: torch.Tensor, names: list[str], batch: int, parameters: str = "auto") -> dict[str, float]:
    """Seconds per corruption for all 5 severities over every image."""
    times = {}
    for name in names:
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for s in range(1, 6):
            for i in range(0, len(x), batch):
                index = torch.arange(i, min(i + batch, len(x)), device=x.device)
                corrupt(x[i : i + batch], name, s, index=index, parameters=parameters)
        if x.is_cuda:
            torch.cuda.synchronize()
        times[name] = time.perf_counter() - start
    return times


def reference(x: torch.Tensor, n_ref: int) -> tuple[dict[str, float], dict[str, str]]:
    """Seconds per image for all 5 severities, per corruption, and the corruptions that raised."""
    from imagecorruptions import corrupt as ic_corrupt

    arr = (x[:n_ref].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    per_image, failed = {}, {}
    for name in CORRUPTIONS:
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for img in arr:
                    for s in range(1, 6):
                        ic_corrupt(img, corruption_name=name, severity=s)
        except Exception as exc:  # noqa: BLE001 - the reference breaks on current numpy/scikit-image
            failed[name] = f"{type(exc).__name__}: {str(exc)[:60]}"
            continue
        per_image[name] = (time.perf_counter() - start) / n_ref
    return per_image, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--ref-n", type=int, default=20, help="images imagecorruptions is timed on")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-reference", action="store_true", help="time ours only (no imagecorruptions)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    x = images(args.n, args.size)
    names = list(CORRUPTIONS)
    chosen = parameter_set(args.size, args.size)
    ours(x[:8].to(device), names, args.batch)  # warm-up: kernels, JPEG codec
    mine = ours(x.to(device), names, args.batch)
    total = sum(mine.values())
    count = args.n * len(names) * 5
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'})")
    print(
        f"ours, {chosen} parameters: {args.n} images {args.size}x{args.size} x 19 corruptions x 5 severities "
        f"in {total:.2f} s = {count / total:,.0f} images/s"
    )
    for name, t in mine.items():
        print(f"  {name:18s} {t:7.3f} s")
    if args.no_reference:
        return
    if chosen != "imagenet":
        mine = ours(x.to(device), names, args.batch, "imagenet")
        print(f"ours, imagenet parameters (as imagecorruptions uses at every size): {sum(mine.values()):.2f} s")
    ref, failed = reference(x, args.ref_n)
    runnable = list(ref)
    ref_total = sum(ref.values()) * args.n
    ours_same = sum(mine[n] for n in runnable)
    print(f"imagecorruptions (timed on {args.ref_n} images, scaled to {args.n}): {len(runnable)} corruptions runnable")
    print(f"  per image per severity: {1000 * sum(ref.values()) / (5 * len(runnable)):.1f} ms on average")
    for name in runnable:
        scaled = ref[name] * args.n
        print(f"  {name:18s} {scaled:8.1f} s   ours {mine[name]:7.3f} s   x{scaled / mine[name]:,.0f}")
    for name, why in failed.items():
        print(f"  {name:18s} crashed: {why}")
    print(
        f"ratio on the {len(runnable)} it runs: {ref_total:.1f} s / {ours_same:.2f} s = {ref_total / ours_same:,.0f}x "
        f"(target >= 50x)"
    )


if __name__ == "__main__":
    main()
