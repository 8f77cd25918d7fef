"""A numpy port of Hendrycks' CIFAR-10-C generator (`ImageNet-C/create_c/make_cifar_c.py`, hendrycks/robustness),
for tests only: the yardstick robustcollapse's torch corruptions are measured against.

Written from reading the original, with the libraries it calls (scipy, scikit-image, OpenCV, Pillow). Two changes,
both forced: the random numbers come from a passed `numpy.random.RandomState` instead of the global one, and
ImageMagick's motion blur (the original calls it through Wand) is replaced by `magick_motion_blur`, a port of
MagickCore's MotionBlurImage kernel. Each function takes a uint8 (32, 32, 3) RGB image and returns what the
original returns; `reference_corrupt` then applies the original's `np.uint8(...)` before saving.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import skimage as sk
from PIL import Image
from scipy.ndimage import map_coordinates
from scipy.ndimage import zoom as scizoom
from skimage.filters import gaussian

FROST_DIR = Path(__file__).resolve().parents[1] / "robustcollapse" / "frost"
FROST_FILES = ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg"]


def _blur(x: np.ndarray, sigma: float, **kw) -> np.ndarray:
    """skimage `gaussian(..., multichannel=True)` in today's spelling."""
    return gaussian(x, sigma=sigma, channel_axis=-1 if x.ndim == 3 else None, **kw)


def disk(radius: float, alias_blur: float) -> np.ndarray:
    half, ksize = (8, (3, 3)) if radius <= 8 else (int(radius), (5, 5))
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    kernel = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    kernel /= kernel.sum()
    return cv2.GaussianBlur(kernel, ksize=ksize, sigmaX=alias_blur)


def magick_motion_blur(img: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """MagickCore MotionBlurImage on a uint8 (H, W) or (H, W, C) image, returned as uint8 like the PNG the original
    reads back: 2·ceil(radius)+1 taps, one-sided weights exp(−i²/2σ²) normalised, tap i at the integer offset
    (ceil(i·cos a − ½), ceil(i·sin a − ½)), edge virtual pixels, the result truncated to 8 bits (what
    `convert -motion-blur` of ImageMagick 6.9.11 Q16 writes, measured: rounding would be half a level off)."""
    width = int(2 * np.ceil(radius) + 1)
    taps = np.arange(width)
    weights = np.exp(-(taps.astype(np.float64) ** 2) / (2 * sigma * sigma))
    weights /= weights.sum()
    a = np.deg2rad(angle)
    off_x = np.ceil(taps * np.cos(a) - 0.5).astype(int)
    off_y = np.ceil(taps * np.sin(a) - 0.5).astype(int)
    h, w = img.shape[:2]
    rows, cols = np.arange(h), np.arange(w)
    src = img.astype(np.float64)
    out = np.zeros_like(src)
    for k in range(width):
        r = np.clip(rows + off_y[k], 0, h - 1)
        c = np.clip(cols + off_x[k], 0, w - 1)
        out += weights[k] * src[r][:, c]
    return np.floor(np.clip(out, 0, 255) + 1e-6).astype(np.uint8)


def plasma_fractal(rng: np.random.RandomState, mapsize: int = 32, wibbledecay: float = 3) -> np.ndarray:
    """Diamond-square height map in [0, 1], the original's order of draws."""
    grid = np.empty((mapsize, mapsize), dtype=np.float64)
    grid[0, 0] = 0
    step, wibble = mapsize, 100.0

    def wibbled(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:mapsize:step, 0:mapsize:step]
        acc = corners + np.roll(corners, shift=-1, axis=0)
        acc += np.roll(acc, shift=-1, axis=1)
        grid[half:mapsize:step, half:mapsize:step] = wibbled(acc)
        dr = grid[half:mapsize:step, half:mapsize:step]
        ul = grid[0:mapsize:step, 0:mapsize:step]
        grid[0:mapsize:step, half:mapsize:step] = wibbled(dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1))
        grid[half:mapsize:step, 0:mapsize:step] = wibbled(dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0))
        step //= 2
        wibble /= wibbledecay
    grid -= grid.min()
    return grid / grid.max()


def clipped_zoom(img: np.ndarray, factor: float) -> np.ndarray:
    h = img.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    img = scizoom(img[top : top + ch, top : top + ch], (factor, factor, 1), order=1)
    trim = (img.shape[0] - h) // 2
    return img[trim : trim + h, trim : trim + h]


def gaussian_noise(x, severity, rng):
    c = [0.04, 0.06, 0.08, 0.09, 0.10][severity - 1]
    x = x / 255.0
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x, severity, rng):
    c = [500, 250, 100, 75, 50][severity - 1]
    x = x / 255.0
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


def impulse_noise(x, severity, rng):
    c = [0.01, 0.02, 0.03, 0.05, 0.07][severity - 1]
    x = sk.util.random_noise(x / 255.0, mode="s&p", amount=c, rng=rng.randint(2**31))
    return np.clip(x, 0, 1) * 255


def speckle_noise(x, severity, rng):
    c = [0.06, 0.1, 0.12, 0.16, 0.2][severity - 1]
    x = x / 255.0
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1) * 255


def gaussian_blur(x, severity, rng):
    c = [0.4, 0.6, 0.7, 0.8, 1][severity - 1]
    return np.clip(_blur(x / 255.0, c), 0, 1) * 255


def glass_shuffle(x: np.ndarray, delta: int, iterations: int, draw) -> np.ndarray:
    """The original's loop, its statement kept as it is: `draw()` gives (dx, dy)."""
    h, w = x.shape[:2]
    for _ in range(iterations):
        for i in range(h - delta, delta, -1):
            for j in range(w - delta, delta, -1):
                dx, dy = draw()
                ip, jp = i + dy, j + dx
                x[i, j], x[ip, jp] = x[ip, jp], x[i, j]
    return x


def glass_blur(x, severity, rng):
    c = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][severity - 1]
    x = np.uint8(_blur(x / 255.0, c[0]) * 255)
    x = glass_shuffle(x, c[1], c[2], lambda: rng.randint(-c[1], c[1], size=(2,)))
    return np.clip(_blur(x / 255.0, c[0]), 0, 1) * 255


def defocus_blur(x, severity, rng):
    c = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    x = x / 255.0
    kernel = disk(c[0], c[1])
    channels = np.stack([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)], axis=-1)
    return np.clip(channels, 0, 1) * 255


def motion_blur(x, severity, rng):
    c = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    return magick_motion_blur(x, c[0], c[1], rng.uniform(-45, 45))


def zoom_blur(x, severity, rng):
    stop = [1.06, 1.11, 1.16, 1.21, 1.26][severity - 1]
    factors = np.arange(1, stop, 0.01)
    x = (x / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for f in factors:
        out += clipped_zoom(x, f)
    return np.clip((x + out) / (len(factors) + 1), 0, 1) * 255


def fog(x, severity, rng):
    c = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    x = x / 255.0
    peak = x.max()
    x += c[0] * plasma_fractal(rng, wibbledecay=c[1])[:32, :32][..., np.newaxis]
    return np.clip(x * peak / (peak + c[0]), 0, 1) * 255


def frost(x, severity, rng, files: list[str] = FROST_FILES):
    c = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][severity - 1]
    name = files[rng.randint(5)]
    photo = cv2.resize(cv2.imread(str(FROST_DIR / name)), (0, 0), fx=0.2, fy=0.2)
    top, left = rng.randint(0, photo.shape[0] - 32), rng.randint(0, photo.shape[1] - 32)
    photo = photo[top : top + 32, left : left + 32][..., [2, 1, 0]]
    return np.clip(c[0] * x + c[1] * photo, 0, 255)


def snow(x, severity, rng):
    c = [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ][severity - 1]
    x = x.astype(np.float32) / 255.0
    layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    layer = clipped_zoom(layer[..., np.newaxis], c[2])
    layer[layer < c[3]] = 0
    layer = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    layer = magick_motion_blur(layer, c[4], c[5], rng.uniform(-135, -45)) / 255.0
    layer = layer[..., np.newaxis]
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(32, 32, 1)
    x = c[6] * x + (1 - c[6]) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255


def spatter(x, severity, rng):
    c = [
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ][severity - 1]
    x = x.astype(np.float32) / 255.0
    liquid = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    liquid = gaussian(liquid, sigma=c[2])
    liquid[liquid < c[3]] = 0
    if c[5] == 0:
        liquid = (liquid * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(liquid, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)
        dist = cv2.filter2D(dist, cv2.CV_8U, emboss)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = cv2.cvtColor(liquid * dist, cv2.COLOR_GRAY2BGRA)
        m /= np.max(m, axis=(0, 1))
        m *= c[4]
        colour = np.concatenate(
            [v / 255.0 * np.ones_like(m[..., :1]) for v in (175, 238, 238)],
            axis=2,
        )
        colour = cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA)
        x = cv2.cvtColor(x, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(np.clip(x + m * colour, 0, 1), cv2.COLOR_BGRA2BGR) * 255
    m = np.where(liquid > c[3], 1, 0)
    m = gaussian(m.astype(np.float32), sigma=c[4])
    m[m < 0.8] = 0
    colour = np.concatenate([v / 255.0 * np.ones_like(x[..., :1]) for v in (63, 42, 20)], axis=2)
    colour *= m[..., np.newaxis]
    x *= 1 - m[..., np.newaxis]
    return np.clip(x + colour, 0, 1) * 255


def contrast(x, severity, rng):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][severity - 1]
    x = x / 255.0
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def brightness(x, severity, rng):
    c = [0.05, 0.1, 0.15, 0.2, 0.3][severity - 1]
    hsv = sk.color.rgb2hsv(x / 255.0)
    hsv[:, :, 2] = np.clip(hsv[:, :, 2] + c, 0, 1)
    return np.clip(sk.color.hsv2rgb(hsv), 0, 1) * 255


def saturate(x, severity, rng):
    c = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)][severity - 1]
    hsv = sk.color.rgb2hsv(x / 255.0)
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * c[0] + c[1], 0, 1)
    return np.clip(sk.color.hsv2rgb(hsv), 0, 1) * 255


def jpeg_compression(x, severity, rng):
    c = [80, 65, 58, 50, 40][severity - 1]
    buffer = BytesIO()
    Image.fromarray(x).save(buffer, "JPEG", quality=c)
    return np.asarray(Image.open(buffer))


def pixelate(x, severity, rng):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    img = Image.fromarray(x).resize((int(32 * c), int(32 * c)), Image.Resampling.BOX)
    return np.asarray(img.resize((32, 32), Image.Resampling.BOX))


def elastic_transform(x, severity, rng):
    size = 32
    c = [
        (size * 0, size * 0, size * 0.08),
        (size * 0.05, size * 0.2, size * 0.07),
        (size * 0.08, size * 0.06, size * 0.06),
        (size * 0.1, size * 0.04, size * 0.05),
        (size * 0.1, size * 0.03, size * 0.03),
    ][severity - 1]
    image = x.astype(np.float32) / 255.0
    shape = image.shape
    centre = np.float32(shape[:2]) // 2
    half = min(shape[:2]) // 3
    pts1 = np.float32([centre + half, [centre[0] + half, centre[1] - half], centre - half])
    pts2 = pts1 + rng.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
    affine = cv2.getAffineTransform(pts1, pts2)
    image = cv2.warpAffine(image, affine, shape[:2][::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (gaussian(rng.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dy = (gaussian(rng.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    cols, rows, chans = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = (
        np.reshape(rows + dy[..., None], (-1, 1)),
        np.reshape(cols + dx[..., None], (-1, 1)),
        np.reshape(chans, (-1, 1)),
    )
    return np.clip(map_coordinates(image, indices, order=1, mode="reflect").reshape(shape), 0, 1) * 255


FUNCTIONS = {
    f.__name__: f
    for f in (
        gaussian_noise,
        shot_noise,
        impulse_noise,
        defocus_blur,
        glass_blur,
        motion_blur,
        zoom_blur,
        snow,
        frost,
        fog,
        brightness,
        contrast,
        elastic_transform,
        pixelate,
        jpeg_compression,
        speckle_noise,
        gaussian_blur,
        spatter,
        saturate,
    )
}


def reference_corrupt(image: np.ndarray, name: str, severity: int, rng: np.random.RandomState) -> np.ndarray:
    """One uint8 (32, 32, 3) image as make_cifar_c.py writes it to <name>.npy: np.uint8 of the corruption."""
    return np.uint8(FUNCTIONS[name](image, severity, rng))
