"""Our motion blur (a port of ImageMagick's MotionBlurImage kernel) against ImageMagick itself, per CIFAR severity.

make_cifar_c.py blurs through Wand (ImageMagick's MagickMotionBlurImage); `convert -motion-blur RxS+A` calls the
same function. Prints the mean and largest |ours − ImageMagick| in grey levels on natural 32x32 photographs (the
conformance tests' crops of scikit-learn's sample images), at a random angle U(−45°, 45°) per image.

    apt-get install imagemagick       # benchmark only
    python benchmarks/imagemagick_motion_blur.py --n 60
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robustcollapse.corruptions import CORRUPTIONS  # noqa: E402
from robustcollapse.corruptions.filters import _truncate, motion_blur_batch  # noqa: E402
from tests.test_cifar_c_conformance import natural_photos  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="photographs")
    parser.add_argument("--convert", default="/usr/bin/convert", help="ImageMagick's convert")
    args = parser.parse_args()
    version = subprocess.run([args.convert, "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(version)
    photos = natural_photos(args.n)
    rng = np.random.RandomState(0)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.png"), Path(tmp, "out.png")
        for s, (radius, sigma) in enumerate(CORRUPTIONS["motion_blur"].params, 1):
            diffs = []
            for image in photos:
                angle = rng.uniform(-45, 45)
                Image.fromarray(image).save(src)
                subprocess.run([args.convert, str(src), "-motion-blur", f"{radius}x{sigma}+{angle}", f"PNG24:{dst}"])
                ref = np.asarray(Image.open(dst).convert("RGB")).astype(np.float64)
                x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
                ours = _truncate(motion_blur_batch(x, radius, sigma, torch.tensor([angle])).clamp(0, 1))
                diffs.append(np.abs(ours[0].permute(1, 2, 0).numpy() * 255 - ref))
            d = np.stack(diffs)
            print(f"severity {s} ({radius}x{sigma}): |ours - ImageMagick| mean {d.mean():.3f}, max {d.max():.0f}")


if __name__ == "__main__":
    main()
