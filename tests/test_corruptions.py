"""The 19 corruptions: shape, range, seeding, severity order, and the statistics their CIFAR parameters imply."""

from __future__ import annotations

import colorsys
import math
from importlib.resources import files

import numpy as np
import pytest
import torch
from scipy import ndimage

from robustcollapse.corruptions import CORRUPTIONS, corrupt, parameter_set
from robustcollapse.corruptions.blur import disk_kernel, zoom_factors
from robustcollapse.corruptions.filters import _truncate, gaussian_blur2d, motion_blur_batch, pil_box_matrix
from robustcollapse.corruptions.rng import Rng
from robustcollapse.corruptions.weather import frost_photos
from robustcollapse.data import load_dataset

ALL = list(CORRUPTIONS)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """100 real 28x28 grey MNIST digits in [0, 1]."""
    return load_dataset("mnist5k").test.x[:100].float() / 255


@pytest.fixture(scope="module")
def colour() -> torch.Tensor:
    """Smooth random colour images (bicubic upsampled 4x4 noise), 32x32, like natural images' low frequencies."""
    gen = torch.Generator().manual_seed(0)
    small = torch.rand(16, 3, 4, 4, generator=gen)
    return torch.nn.functional.interpolate(small, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)


def const(value: float, n: int = 4, c: int = 3, size: int = 32) -> torch.Tensor:
    return torch.full((n, c, size, size), value)


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt())


@pytest.mark.parametrize("name", ALL)
def test_shape_range_and_seeding(name, colour, digits):
    for x in (colour, digits[:16]):
        for s in (1, 5):
            y = corrupt(x, name, s, seed=3)
            assert y.shape == x.shape and y.dtype == torch.float32
            assert float(y.min()) >= 0 and float(y.max()) <= 1
            assert torch.equal(y, corrupt(x, name, s, seed=3)), "a rerun must be identical"
            # image i is corrupted the same way whichever batch it arrives in
            part = corrupt(x[5:9], name, s, seed=3, index=torch.arange(5, 9))
            assert torch.allclose(part, y[5:9], atol=1e-6)


RANDOM = [n for n in ALL if n not in ("defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate",
                                      "jpeg_compression", "gaussian_blur", "saturate")]  # fmt: skip


@pytest.mark.parametrize("name", RANDOM)
def test_seed_changes_the_random_corruptions(name, colour):
    assert not torch.equal(corrupt(colour, name, 3, seed=0), corrupt(colour, name, 3, seed=1))


# The CIFAR tables are not monotone for these; each gets its own test of what its parameters do imply.
NOT_MONOTONE = {"glass_blur", "elastic_transform", "saturate", "frost", "spatter"}  # the originals' tables


@pytest.mark.parametrize("name", [n for n in ALL if n not in NOT_MONOTONE])
def test_distance_from_clean_grows_with_severity(name, digits):
    d = [rms(corrupt(digits, name, s), digits) for s in range(1, 6)]
    # motion blur and snow draw a new random angle per severity, so neighbouring severities may tie
    assert all(b > a * 0.97 for a, b in zip(d, d[1:], strict=False)), d
    assert d[4] > 1.2 * d[0], d


def test_non_monotone_tables_do_what_their_parameters_say(digits, colour):
    glass = [rms(corrupt(digits, "glass_blur", s), digits) for s in range(1, 6)]
    assert glass[3] > glass[1] and glass[4] > glass[2], "two shuffle passes move more than one at the same sigma"
    sat = [rms(corrupt(colour, "saturate", s), colour) for s in range(1, 6)]
    assert sat[1] > sat[0] and sat[2] < sat[3] < sat[4], "desaturation 0.3 -> 0.1, then 1.5x, 2x+0.1, 2.5x+0.2"
    # elastic: the affine jitter shrinks (2.56 -> 0.96 px) while the smooth displacement grows: severity 1 is
    # purely affine, so a constant image is untouched and a structured one moves
    assert torch.allclose(corrupt(const(0.3), "elastic_transform", 1, quantize=False), const(0.3), atol=1e-6)
    frost = [rms(corrupt(digits, "frost", s), digits) for s in range(1, 6)]
    assert frost[4] > frost[0]


def test_gaussian_and_speckle_noise_std_match_the_sigma_table():
    x = const(0.5, n=8)
    for s, sigma in enumerate(CORRUPTIONS["gaussian_noise"].params, 1):
        std = float((corrupt(x, "gaussian_noise", s) - x).std())
        assert std == pytest.approx(sigma, rel=0.03)
    for s, sigma in enumerate(CORRUPTIONS["speckle_noise"].params, 1):
        std = float((corrupt(x, "speckle_noise", s) - x).std())
        assert std == pytest.approx(0.5 * sigma, rel=0.03)


def test_shot_noise_is_poisson_with_the_lambda_table():
    x = const(0.5, n=8)
    for s, lam in enumerate(CORRUPTIONS["shot_noise"].params, 1):
        y = corrupt(x, "shot_noise", s, quantize=False)
        assert float(y.mean()) == pytest.approx(0.5, abs=0.003)
        assert float(y.std()) == pytest.approx(math.sqrt(0.5 / lam), rel=0.04)
        assert torch.allclose(y * lam, torch.round(y * lam), atol=1e-4), "counts / lambda"


@pytest.mark.parametrize("mean", [0.3, 3.0, 20.0, 40.0])
def test_poisson_sampler_moments(mean):
    rng = Rng.for_images(0, "p", 1, torch.arange(4))
    k = rng.poisson(0, torch.full((4, 1, 100, 100), mean))
    assert float(k.mean()) == pytest.approx(mean, rel=0.03, abs=0.01)
    assert float(k.var()) == pytest.approx(mean, rel=0.06)


def test_impulse_noise_flips_the_amount_half_salt_half_pepper():
    x = const(0.5, n=8)
    for s, amount in enumerate(CORRUPTIONS["impulse_noise"].params, 1):
        y = corrupt(x, "impulse_noise", s, quantize=False)
        flipped = y != 0.5
        assert float(flipped.float().mean()) == pytest.approx(amount, rel=0.1)
        assert float((y[flipped] == 1).float().mean()) == pytest.approx(0.5, abs=0.05)


def test_gaussian_blur_equals_scipy_with_nearest_border(colour):
    for s, sigma in enumerate(CORRUPTIONS["gaussian_blur"].params, 1):
        ours = corrupt(colour, "gaussian_blur", s, quantize=False).numpy()
        ref = ndimage.gaussian_filter(colour.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)
        np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_defocus_is_the_aliased_disk_with_reflect101_border(colour):
    for s, (radius, alias) in enumerate(CORRUPTIONS["defocus_blur"].params, 1):
        kernel = disk_kernel(radius, alias)
        assert kernel.shape[0] % 2 == 1 and float(kernel.sum()) == pytest.approx(1, abs=1e-6)
        assert torch.allclose(kernel, kernel.T) and torch.allclose(kernel, kernel.flip(0))
        ours = corrupt(colour, "defocus_blur", s, quantize=False).numpy()
        ref = ndimage.correlate(colour.numpy(), kernel.numpy()[None, None], mode="mirror")
        np.testing.assert_allclose(ours, np.clip(ref, 0, 1), atol=1e-5)


def test_pixelate_matches_the_downsample_factor():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for s, factor in enumerate(CORRUPTIONS["pixelate"].params, 1):
        y = corrupt(x, "pixelate", s)
        columns = torch.unique(y[0, 0], dim=1).shape[1]
        rows = torch.unique(y[0, 0], dim=0).shape[0]
        assert columns == rows == int(32 * factor)
    # an integer factor is plain block averaging
    assert torch.equal(pil_box_matrix(32, 16), torch.eye(16).repeat_interleave(2, dim=1) / 2)


def test_brightness_and_saturate_match_hsv_from_the_standard_library(colour):
    pixels = colour[0].permute(1, 2, 0).reshape(-1, 3)[::37]
    for name, s, change in (("brightness", 4, lambda h, sat, v: (h, sat, min(v + 0.2, 1))),
                            ("saturate", 5, lambda h, sat, v: (h, min(sat * 2.5 + 0.2, 1), v))):  # fmt: skip
        out = corrupt(colour[:1], name, s, quantize=False)[0].permute(1, 2, 0).reshape(-1, 3)[::37]
        for p, o in zip(pixels.tolist(), out.tolist(), strict=True):
            expected = colorsys.hsv_to_rgb(*change(*colorsys.rgb_to_hsv(*p)))
            assert o == pytest.approx(expected, abs=1e-4)


def test_contrast_scales_the_deviation_from_the_channel_mean():
    x = 0.5 + 0.1 * (torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) - 0.5)
    for s, c in enumerate(CORRUPTIONS["contrast"].params, 1):
        y = corrupt(x, "contrast", s, quantize=False)
        assert torch.allclose(y.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-6)
        assert torch.allclose(y.std(dim=(2, 3)), c * x.std(dim=(2, 3)), rtol=1e-4)


def test_jpeg_error_falls_with_quality(colour):
    errors = [rms(corrupt(colour, "jpeg_compression", s), colour) for s in range(1, 6)]
    assert errors == sorted(errors) and errors[0] > 1 / 255


def test_glass_blur_copies_from_up_or_left_at_tiny_sigma(colour):
    """Severity 1 blurs with σ = 0.05 (kernel radius 0): each pixel is then its own quantised value or one copied
    from the pixel above, to the left or above-left (randint(−1, 1) is −1 or 0), never one from below or right.
    A swap would also move pixels down and right."""
    y = corrupt(colour[:4], "glass_blur", 1)
    quantised = _truncate(colour[:4])
    padded = torch.nn.functional.pad(quantised, (1, 0, 1, 0), value=-1)
    up_left = [padded[..., 1 - dy : 33 - dy, 1 - dx : 33 - dx] for dy in (0, 1) for dx in (0, 1)]
    assert bool(torch.stack([(y == c).all(1) for c in up_left]).any(0).all())
    assert not torch.equal(y, quantised)


def test_blurs_keep_constant_images_and_motion_blur_conserves_mass():
    for name in ("defocus_blur", "motion_blur", "zoom_blur", "gaussian_blur", "glass_blur"):
        assert torch.allclose(corrupt(const(0.4), name, 5), const(0.4), atol=2 / 255), name
    dot = torch.zeros(3, 1, 64, 64)
    dot[:, :, 32, 32] = 1
    blurred = motion_blur_batch(dot, 6, 1.5, torch.tensor([0.0, 30.0, -45.0]))
    assert torch.allclose(blurred.sum(dim=(1, 2, 3)), torch.ones(3), atol=1e-5)
    assert int((blurred[0] > 0).sum()) <= 13 and float(blurred[0, 0, 32, 32]) == blurred[0].max()
    # output(p) gathers x(p + offset): with angle 0 a dot trails towards -x, one-sided, as ImageMagick's
    assert float(blurred[0, 0, 32, :32].sum()) > 0.5 and float(blurred[0, 0, 32, 33:].sum()) == 0


def test_fog_adds_a_plasma_fractal_scaled_by_the_image_peak():
    x = const(0.5, n=3, c=1)
    for s, (strength, _) in enumerate(CORRUPTIONS["fog"].params, 1):
        y = corrupt(x, "fog", s, quantize=False)
        plasma = (y * (0.5 + strength) / 0.5 - 0.5) / strength
        assert float(plasma.amin()) == pytest.approx(0, abs=1e-5) and float(plasma.amax()) == pytest.approx(1, abs=1e-5)
    assert torch.equal(corrupt(const(0.0), "fog", 3), const(0.0)), "a black image stays black"


def test_snow_and_water_only_brighten_and_mud_pulls_towards_brown(colour):
    for s in range(1, 6):
        assert bool((corrupt(colour, "snow", s, quantize=False) >= colour - 1e-6).all())
    for s in (1, 2, 3):
        assert bool((corrupt(colour, "spatter", s, quantize=False) >= colour - 1e-6).all())
    brown = torch.tensor([63, 42, 20]).view(1, 3, 1, 1) / 255
    mud = corrupt(colour, "spatter", 5, quantize=False)
    moved = (mud - colour).abs().sum(1, keepdim=True) > 1e-4
    assert bool(moved.any())
    closer = (mud - brown).abs().sum(1, keepdim=True) <= (colour - brown).abs().sum(1, keepdim=True) + 1e-5
    assert bool(closer[moved].all())


def test_frost_uses_hendrycks_photographs_and_grey_input_stays_grey(digits):
    """The five photographs at 0.2 (cv2.resize picks pixel 5i+2 of each 5): their sizes, and their brightness
    (mean about 0.64 of white: procedural stand-ins were 0.42)."""
    from PIL import Image

    photos = frost_photos(0.2)
    assert [tuple(p.shape[1:]) for p in photos] == [(120, 180), (63, 112), (63, 112), (70, 105), (99, 132)]
    with Image.open(files("robustcollapse") / "frost" / "frost4.jpg") as img:
        full = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1).float()
    assert torch.equal(photos[3], full[:, 2::5, 2::5][:, :70, :105])
    assert 0.55 < float(torch.cat([p.reshape(3, -1) for p in photos], 1).mean()) / 255 < 0.75
    for name in ("frost", "spatter", "saturate"):
        assert corrupt(digits[:4], name, 5).shape == (4, 1, 28, 28)
    saturated = corrupt(digits[:4], "saturate", 3, quantize=False)
    assert torch.allclose(saturated, digits[:4], atol=1e-5), "no saturation to scale in a grey image"


def test_uniform_numbers_are_uniform_and_differ_per_image():
    rng = Rng.for_images(0, "u", 1, torch.arange(3))
    u = rng.uniform(0, 100_000)
    assert float(u.mean()) == pytest.approx(0.5, abs=0.005) and float(u.var()) == pytest.approx(1 / 12, rel=0.02)
    assert float((u[0] - u[1]).abs().mean()) > 0.3
    z = rng.normal(0, 100_000)
    assert float(z.mean()) == pytest.approx(0, abs=0.01) and float(z.std()) == pytest.approx(1, rel=0.01)


@pytest.mark.parametrize("bits", [0, 0xFFFFFFFF])
def test_extreme_hash_values_map_strictly_inside_the_unit_interval(bits, monkeypatch):
    """A uniform of exactly 1.0 would stall the Poisson walk and give log(0) in Box-Muller."""
    monkeypatch.setattr("robustcollapse.corruptions.rng._mix32", lambda v: torch.full_like(v, bits))
    u = Rng(torch.zeros(2, dtype=torch.int64)).uniform(0, 4)
    assert 0 < float(u.min()) and float(u.max()) < 1


def test_poisson_tail_is_poisson_with_no_runaway_values():
    """15M draws at mean 3: the maximum stays where a Poisson(3) puts it (P(X >= 18) per draw ~ 1e-9)."""
    rng = Rng.for_images(0, "p", 1, torch.arange(100))
    out = rng.poisson(0, torch.full((100, 3, 224, 224), 3.0))
    assert float(out.mean()) == pytest.approx(3, abs=0.002) and float(out.var()) == pytest.approx(3, rel=0.002)
    assert float(out.max()) <= 17
    counts = torch.bincount(out.long().reshape(-1), minlength=12)[:12].double() / out.numel()
    pmf = torch.tensor([math.exp(-3) * 3**k / math.factorial(k) for k in range(12)], dtype=torch.float64)
    assert torch.allclose(counts, pmf, atol=3e-4)


def test_pixelate_and_jpeg_match_pillow():
    from PIL import Image

    gen = torch.Generator().manual_seed(4)
    x = torch.randint(0, 256, (2, 3, 32, 32), generator=gen, dtype=torch.uint8)
    for s, factor in enumerate(CORRUPTIONS["pixelate"].params, 1):
        ours = corrupt(x.float() / 255, "pixelate", s)
        for i in range(2):
            img = Image.fromarray(x[i].permute(1, 2, 0).numpy())
            small = img.resize((int(32 * factor), int(32 * factor)), Image.Resampling.BOX)
            ref = torch.from_numpy(np.asarray(small.resize((32, 32), Image.Resampling.BOX)).copy()).permute(2, 0, 1)
            assert torch.equal(torch.round(ours[i] * 255), ref.float()), (s, i)


# ---------------------------------------------------------------------------------------------------------------
# The ImageNet-C parameter set, for larger images


def test_both_tables_have_five_severities_and_auto_picks_by_size():
    assert all(len(c.params) == 5 and len(c.imagenet) == 5 for c in CORRUPTIONS.values())
    assert parameter_set(32, 32) == "cifar" and parameter_set(28, 28) == "cifar"
    assert parameter_set(224, 224) == "imagenet" and parameter_set(128, 500) == "imagenet"
    assert parameter_set(127, 500) == "cifar" and parameter_set(224, 224, "cifar") == "cifar"
    assert parameter_set(32, 32, "imagenet") == "imagenet"
    with pytest.raises(ValueError, match="unknown parameter set 'tiny'; allowed: auto, cifar, imagenet"):
        parameter_set(32, 32, "tiny")


@pytest.mark.parametrize("table", ["params", "imagenet"])
def test_zoom_factors_are_what_numpy_arange_gives_the_originals(table):
    """arange(1, 1.06, 0.01) has 7 elements in float64: the generators zoom up to 1.06, not 1.05."""
    for stop, step in getattr(CORRUPTIONS["zoom_blur"], table):
        ref = np.arange(1, stop, step)
        assert zoom_factors(stop, step) == ref.tolist(), "to the last bit: 1.2500000000000002 zooms to 33 px"
    assert len(zoom_factors(1.06, 0.01)) == 7 and len(zoom_factors(1.26, 0.02)) == 13


def test_large_images_get_the_imagenet_values():
    """Grey 0.5 images: the Gaussian noise std is the table's sigma, 0.08 at 224 px vs 0.04 at 32 px."""
    big = const(0.5, n=2, size=224)
    kw = {"quantize": False}
    assert float((corrupt(big, "gaussian_noise", 1, **kw) - 0.5).std()) == pytest.approx(0.08, rel=0.02)
    assert float((corrupt(big, "gaussian_noise", 1, parameters="cifar", **kw) - 0.5).std()) == pytest.approx(
        0.04, rel=0.02
    )
    small = const(0.5, n=8)
    assert float((corrupt(small, "gaussian_noise", 1, parameters="imagenet", **kw) - 0.5).std()) == pytest.approx(
        0.08, rel=0.03
    )
    # contrast keeps c of the deviation from the channel mean: 0.4 for ImageNet-C severity 1 (0.75 for CIFAR)
    ramp = torch.linspace(0.2, 0.8, 224).expand(1, 3, 224, 224)
    assert float((corrupt(ramp, "contrast", 1, quantize=False) - 0.5).abs().max()) == pytest.approx(0.4 * 0.3, rel=1e-3)


@pytest.mark.parametrize("radius, alias", [(8, 0.5), (10, 0.5), (12, 0.3)])
def test_defocus_disk_above_radius_8_grows_and_smooths_5x5(radius, alias):
    """make_imagenet_c's disk: (2r+1)² grid and a 5x5 cv2 Gaussian for r > 8 (17x17 and 3x3 up to 8)."""
    half, smooth = (8, 1) if radius <= 8 else (radius, 2)
    grid = np.arange(-half, half + 1)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    taps = np.arange(-smooth, smooth + 1)
    g = np.exp(-(taps**2) / (2 * alias**2))
    g /= g.sum()
    ref = ndimage.correlate(disk, np.outer(g, g), mode="mirror")
    ours = disk_kernel(radius, alias).numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_every_corruption_runs_with_the_imagenet_values_on_large_images():
    """128x128: shape, range, a real change, and the same result for an image whatever its batch."""
    gen = torch.Generator().manual_seed(1)
    x = torch.nn.functional.interpolate(torch.rand(3, 3, 8, 8, generator=gen), size=(128, 128), mode="bicubic")
    x = x.clamp(0, 1)
    for name in ALL:
        out = corrupt(x, name, 3)
        assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1, name
        assert rms(out, x) > 0.01, name
        alone = corrupt(x[2:], name, 3, index=torch.tensor([2]))
        assert torch.allclose(alone, out[2:], atol=1e-5), name


@pytest.mark.parametrize("mode", ["nearest", "reflect"])
@pytest.mark.parametrize("sigma, truncate", [(0.8, 4.0), (6.0, 4.0), (170.8, 3.0)])
def test_gaussian_blur_equals_scipy_for_kernels_narrower_and_wider_than_the_image(sigma, truncate, mode):
    """Narrow kernels run as convolutions, wide ones (2r+1 > side) as folded matrices: both are scipy's filter."""
    x = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(3))
    ours = gaussian_blur2d(x, sigma, mode=mode, truncate=truncate).numpy()
    ref = ndimage.gaussian_filter(x.double().numpy(), sigma=(0, 0, sigma, sigma), mode=mode, truncate=truncate)
    np.testing.assert_allclose(ours, ref, atol=2e-6)


def conv_precision() -> object:
    conv = getattr(torch.backends.cudnn, "conv", None)
    return conv.fp32_precision if conv is not None else torch.backends.cudnn.allow_tf32


def test_corruptions_run_their_convolutions_without_tf32_and_restore_the_setting(monkeypatch, colour):
    """cuDNN's default TF32 moved up to 2.6 % of blurred pixels by a grey level on an H200 against the CPU (the GPU
    parity test): every corruption runs with full float32 convolutions, and the user's setting is back after it,
    also when the corruption raises."""
    import dataclasses

    import robustcollapse.corruptions.apply as apply

    before, seen = conv_precision(), []

    def spy(x, value, rng):
        seen.append(conv_precision())
        if len(seen) == 2:
            raise RuntimeError("planted")
        return x

    spec = dataclasses.replace(CORRUPTIONS["gaussian_blur"], fn=spy)
    monkeypatch.setitem(apply.CORRUPTIONS, "gaussian_blur", spec)
    corrupt(colour[:2], "gaussian_blur", 1)
    assert conv_precision() == before
    with pytest.raises(RuntimeError, match="planted"):
        corrupt(colour[:2], "gaussian_blur", 1)
    assert conv_precision() == before
    assert seen == ["ieee", "ieee"] if hasattr(torch.backends.cudnn, "conv") else [False, False]
