"""Our corruptions against a numpy port of Hendrycks' make_cifar_c.py (tests/cifar_c_reference.py), on natural
32x32 photographs, as the uint8 images the original saves.

Deterministic corruptions must equal the port within one grey level at every pixel, and without a bias (a missing
uint8 truncation is a +0.5 bias). The random ones cannot match pixel for pixel (other random numbers), so per image
we compare their strength, mean |corrupted − clean|, and their mean intensity: the paired differences ours − port
over the images must average to zero within 4 standard errors, or half a grey level, whichever is larger. That rule
is checked on the port against itself with other seeds (`test_the_tolerance_rule_accepts_the_port_itself`): it
accepts the original's own seed-to-seed variation, so what it rejects is a different corruption. Half a grey level
covers float round-off before a truncation (see glass_blur's docstring); a different corruption moves more.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustcollapse.corruptions import CORRUPTIONS, corrupt
from robustcollapse.corruptions.blur import glass_sources
from robustcollapse.corruptions.edges import canny, distance_to_edges, equalize_hist
from robustcollapse.corruptions.filters import TRUNCATE_SLACK, warp_affine
from tests.cifar_c_reference import FUNCTIONS, glass_shuffle, reference_corrupt

pytestmark = pytest.mark.slow  # every corruption against the original generators at every severity

cv2 = pytest.importorskip("cv2")

N_PHOTOS = 200
DETERMINISTIC = [
    "defocus_blur",
    "zoom_blur",
    "brightness",
    "contrast",
    "pixelate",
    "jpeg_compression",
    "gaussian_blur",
    "saturate",
]
STOCHASTIC = [n for n in FUNCTIONS if n not in DETERMINISTIC]
FLOOR = 0.5  # grey levels


def natural_photos(n: int = N_PHOTOS, seed: int = 0) -> np.ndarray:
    """n uint8 (32, 32, 3) crops of scikit-learn's two sample photographs shrunk 3, 4 and 5 times (box filter),
    so each crop holds a scene at roughly CIFAR's scale: edges, texture, sky, shading."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.RandomState(seed)
    images = load_sample_images().images
    per = -(-n // (3 * len(images)))
    out = []
    for img in images:
        for f in (3, 4, 5):
            size = (img.shape[1] // f, img.shape[0] // f)
            small = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BOX))
            for _ in range(per):
                top, left = rng.randint(0, small.shape[0] - 32), rng.randint(0, small.shape[1] - 32)
                out.append(small[top : top + 32, left : left + 32])
    return np.stack(out[:n])


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return natural_photos()


@pytest.fixture(scope="module")
def port(photos):
    """port(name, severity, seed) -> the port's uint8 output for every photo, cached."""
    cache: dict[tuple[str, int, int], np.ndarray] = {}

    def run(name: str, severity: int, seed: int = 1) -> np.ndarray:
        key = (name, severity, seed)
        if key not in cache:
            rs = np.random.RandomState(seed)
            cache[key] = np.stack([reference_corrupt(im.copy(), name, severity, rs) for im in photos])
        return cache[key]

    return run


def ours(photos: np.ndarray, name: str, severity: int, **kw) -> np.ndarray:
    x = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 255
    out = corrupt(x, name, severity, seed=0, parameters="cifar", **kw)
    return out.permute(0, 2, 3, 1).numpy() * 255


def per_image(images: np.ndarray, clean: np.ndarray) -> dict[str, np.ndarray]:
    images, clean = images.astype(np.float64), clean.astype(np.float64)
    return {"strength": np.abs(images - clean).mean(axis=(1, 2, 3)), "intensity": images.mean(axis=(1, 2, 3))}


def agree(a: np.ndarray, b: np.ndarray, clean: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per statistic: (mean paired difference a − b, its tolerance max(4 standard errors, FLOOR))."""
    sa, sb = per_image(a, clean), per_image(b, clean)
    out = {}
    for key in sa:
        d = sa[key] - sb[key]
        out[key] = (float(d.mean()), max(4 * float(d.std(ddof=1)) / np.sqrt(len(d)), FLOOR))
    return out


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_equal_the_original_within_a_grey_level(name, photos, port):
    for s in range(1, 6):
        diff = ours(photos, name, s) - port(name, s)
        assert np.abs(diff).mean() <= 1.0, (name, s, np.abs(diff).mean())
        assert np.abs(diff).max() <= 1.0, (name, s, "no pixel more than one level off", np.abs(diff).max())
        assert abs(diff.mean()) <= 0.2, (name, s, diff.mean())


@pytest.mark.parametrize("name", STOCHASTIC)
def test_random_corruptions_have_the_original_strength_and_intensity(name, photos, port):
    for s in range(1, 6):
        for key, (mean_diff, tol) in agree(ours(photos, name, s), port(name, s), photos).items():
            assert abs(mean_diff) <= tol, (name, s, key, mean_diff, tol)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_the_tolerance_rule_accepts_the_port_itself(name, photos, port):
    """The port with seed 2 against the port with seed 1: the original's own randomness passes the rule."""
    for s in range(1, 6):
        for key, (mean_diff, tol) in agree(port(name, s, seed=2), port(name, s), photos).items():
            assert abs(mean_diff) <= tol, (name, s, key, mean_diff, tol)


def test_generated_images_are_whole_grey_levels_truncated_like_np_uint8(photos):
    x = torch.from_numpy(photos[:20]).permute(0, 3, 1, 2).float() / 255
    for name in FUNCTIONS:
        raw = corrupt(x, name, 3, quantize=False)
        q = corrupt(x, name, 3)
        assert torch.equal(q * 255, torch.round(q * 255)), name
        if not CORRUPTIONS[name].rounds:
            assert torch.equal(q, torch.floor(raw * 255 + TRUNCATE_SLACK) / 255), name


@pytest.mark.parametrize("delta, iterations", [(1, 1), (1, 2), (2, 1), (3, 2)])
def test_glass_shuffle_is_the_originals_copy_chain(delta, iterations):
    """Same offsets, same result as the original's statement run pixel by pixel on a numpy array (a copy along
    chains that later pixels may read again, for δ >= 2), on 12x12 images of distinct pixel ids."""
    h = w = 12
    gen = np.random.RandomState(delta * 10 + iterations)
    count = len(range(h - delta, delta, -1)) * len(range(w - delta, delta, -1))
    draws = gen.randint(-delta, delta, size=(3, iterations, count, 2))
    flat = torch.arange(h * w).expand(3, h * w)
    for sweep in range(iterations):
        flat = torch.gather(flat, 1, glass_sources(torch.from_numpy(draws[:, sweep]), h, w, delta))
    for i in range(3):
        stream = iter(draws[i].reshape(-1, 2))
        ids = np.arange(h * w).reshape(h, w, 1).repeat(3, axis=2)
        expected = glass_shuffle(ids, delta, iterations, lambda s=stream: next(s))[..., 0]
        assert np.array_equal(flat[i].reshape(h, w).numpy(), expected)


def liquid_layers(n: int, seed: int) -> np.ndarray:
    """Spatter's water layers as uint8, severities 1–3 in turn: blurred N(loc, scale) zeroed below a threshold."""
    from skimage.filters import gaussian

    rng = np.random.RandomState(seed)
    params = [(0.62, 0.1, 0.7, 0.7), (0.65, 0.1, 0.8, 0.7), (0.65, 0.3, 1, 0.69)]
    out = []
    for i in range(n):
        loc, scale, sigma, threshold = params[i % 3]
        layer = gaussian(rng.normal(size=(32, 32), loc=loc, scale=scale), sigma=sigma)
        layer[layer < threshold] = 0
        out.append((layer * 255).astype(np.uint8))
    return np.stack(out)


def test_canny_and_distance_transform_equal_opencv():
    layers = np.concatenate([liquid_layers(60, 0), np.random.RandomState(1).randint(0, 256, (6, 32, 32), np.uint8)])
    x = torch.from_numpy(layers).float()[:, None]
    edges = canny(x, 50, 150)
    dist = distance_to_edges(edges, 20)
    for i, layer in enumerate(layers):
        ref_edges = cv2.Canny(layer, 50, 150)
        assert np.array_equal(edges[i, 0].numpy() * 255, ref_edges), i
        ref = cv2.threshold(cv2.distanceTransform(255 - ref_edges, cv2.DIST_L2, 5), 20, 20, cv2.THRESH_TRUNC)[1]
        np.testing.assert_allclose(dist[i, 0].numpy(), ref, atol=1e-4)


def test_equalize_hist_equals_opencv_including_a_constant_image():
    gen = np.random.RandomState(2)
    images = [gen.randint(0, 21, (32, 32)).astype(np.uint8), np.full((32, 32), 20, np.uint8)]
    for img in images:
        ours_eq = equalize_hist(torch.from_numpy(img).float()[None, None])[0, 0].numpy()
        assert np.array_equal(ours_eq, cv2.equalizeHist(img))


def test_shot_noise_ignores_the_memory_layout(photos):
    """A permuted (NHWC-backed) view and a contiguous copy of the same images give the same samples."""
    nhwc = torch.from_numpy(photos[:8]).float() / 255
    view = nhwc.permute(0, 3, 1, 2)
    assert not view.is_contiguous()
    for s in (3, 5):
        assert torch.equal(corrupt(view, "shot_noise", s), corrupt(view.contiguous(), "shot_noise", s))


def test_elastic_affine_step_equals_cv2_warp_affine_with_its_border(photos):
    """Severity 1 of elastic_transform is this warp alone (jitter up to 2.56 px pulls in pixels from outside)."""
    gen = np.random.RandomState(3)
    src = np.float32([[26, 26], [26, 6], [6, 6]])
    x = torch.from_numpy(photos[:16]).permute(0, 3, 1, 2).float() / 255
    dst = src + gen.uniform(-2.56, 2.56, size=(16, 3, 2)).astype(np.float32)
    warped = warp_affine(x, torch.from_numpy(src).expand(16, 3, 2), torch.from_numpy(dst))
    for i in range(16):
        image = photos[i].astype(np.float32) / 255
        ref = cv2.warpAffine(image, cv2.getAffineTransform(src, dst[i]), (32, 32), borderMode=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(warped[i].permute(1, 2, 0).numpy(), ref, atol=1e-4)
