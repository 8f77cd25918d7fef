"""All 19 corruptions x 5 severities: robustcollapse's batched torch ops vs the numpy generators, per corruption.

Two references, timed in the same run on the same images:

- the numpy port of Hendrycks' make_cifar_c.py in tests/cifar_c_reference.py (the generator of CIFAR-10-C, one
  image at a time; ImageMagick's motion blur replaced by a numpy port of its kernel, which is faster than calling
  ImageMagick through Wand): the same CIFAR-10-C parameters on both sides, all 19 corruptions. The headline ratio
  is the full 19 x 5 pass (target >= 50x on the CPU);
- `imagecorruptions` 1.1.2 (bethgelab's packaging of the ImageNet-C code): it applies the ImageNet-C parameters at
  every size, so ours runs with the ImageNet-C set for this ratio, on the corruptions it still runs (several
  crash on current numpy/scikit-image; they are listed). Its `pkg_resources` import is given a stand-in.

Images: natural 32x32 photographs (crops of scikit-learn's sample images, as the conformance tests use).

    pip install --no-deps imagecorruptions      # benchmark only (scikit-image, opencv come with the test extra)
    python benchmarks/corruptions.py                         # 1,000 images on the CPU
    python benchmarks/corruptions.py --device cuda --n 10000 --ref-n 1000
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robustcollapse.corruptions import CORRUPTIONS, corrupt  # noqa: E402
from robustcollapse.devices import resolve_device  # noqa: E402
from tests.cifar_c_reference import reference_corrupt  # noqa: E402
from tests.test_cifar_c_conformance import natural_photos  # noqa: E402


def ours(x: torch.Tensor, names: list[str], batch: int, parameters: str) -> dict[str, float]:
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


def port(photos: np.ndarray, names: list[str]) -> dict[str, float]:
    """Seconds per image for all 5 severities, per corruption, with the numpy port of make_cifar_c.py."""
    rng = np.random.RandomState(0)
    per_image = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            start = time.perf_counter()
            for img in photos:
                for s in range(1, 6):
                    reference_corrupt(img, name, s, rng)
            per_image[name] = (time.perf_counter() - start) / len(photos)
    return per_image


def _imagecorruptions():
    """imagecorruptions' corrupt(), its `from pkg_resources import resource_filename` (gone from setuptools 81)
    answered by a stand-in that finds files next to the named module."""
    if importlib.util.find_spec("pkg_resources") is None:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda module, name: str(Path(importlib.util.find_spec(module).origin).parent / name)
        sys.modules["pkg_resources"] = shim
    from imagecorruptions import corrupt as ic_corrupt

    return ic_corrupt


def imagecorruptions(photos: np.ndarray, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """Seconds per image for all 5 severities, per corruption, and the corruptions that raised."""
    ic_corrupt = _imagecorruptions()
    per_image, failed = {}, {}
    for name in names:
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for img in photos:
                    for s in range(1, 6):
                        ic_corrupt(img, corruption_name=name, severity=s)
        except Exception as exc:  # noqa: BLE001 - the reference breaks on current numpy/scikit-image
            failed[name] = f"{type(exc).__name__}: {str(exc)[:60]}"
            continue
        per_image[name] = (time.perf_counter() - start) / len(photos)
    return per_image, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images ours corrupts")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--ref-n", type=int, default=1000, help="of them, images the numpy port is timed on")
    parser.add_argument("--ic-n", type=int, default=200, help="of them, images imagecorruptions is timed on")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    photos = natural_photos(args.n)
    x = torch.from_numpy(photos).permute(0, 3, 1, 2).float().div(255).to(device)
    names = list(CORRUPTIONS)
    ours(x[:8], names, args.batch, "cifar")  # warm-up: kernels, JPEG codec, frost photographs
    ours(x[:8], names, args.batch, "imagenet")
    mine = ours(x, names, args.batch, "cifar")
    mine_in = ours(x, names, args.batch, "imagenet")
    ref = port(photos[: args.ref_n], names)
    ic, failed = imagecorruptions(photos[: args.ic_n], names)
    count = args.n * len(names) * 5
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device} ({label}); {args.n} natural 32x32 photographs x 19 corruptions x 5 severities")
    print(f"ours, CIFAR-10-C parameters: {sum(mine.values()):.2f} s = {count / sum(mine.values()):,.0f} images/s")
    print(f"numpy port of make_cifar_c.py: timed on {args.ref_n} images; imagecorruptions: on {args.ic_n}; both scaled")
    head = ("corruption", "ours", "port", "ratio", "ours (in)", "imagecorr.", "ratio")
    print("{:18s} {:>8s} {:>9s} {:>7s}   {:>9s} {:>10s} {:>7s}".format(*head))
    for name in names:
        scaled = ref[name] * args.n
        row = f"{name:18s} {mine[name]:7.3f}s {scaled:8.1f}s {scaled / mine[name]:6.0f}x   {mine_in[name]:8.3f}s"
        if name in ic:
            row += f" {ic[name] * args.n:9.1f}s {ic[name] * args.n / mine_in[name]:6.0f}x"
        else:
            row += f" {'crashed':>10s}"
        print(row)
    total_ref = sum(ref.values()) * args.n
    print(
        f"full 19 x 5 pass vs the numpy port: {total_ref:.1f} s / {sum(mine.values()):.2f} s = "
        f"{total_ref / sum(mine.values()):,.0f}x (target >= 50x)"
    )
    ic_total, ours_same = sum(ic.values()) * args.n, sum(mine_in[n] for n in ic)
    print(
        f"vs imagecorruptions on the {len(ic)} it runs (ImageNet-C parameters both sides): {ic_total:.1f} s / "
        f"{ours_same:.2f} s = {ic_total / ours_same:,.0f}x"
    )
    for name, why in failed.items():
        print(f"  imagecorruptions {name}: {why}")


if __name__ == "__main__":
    main()
