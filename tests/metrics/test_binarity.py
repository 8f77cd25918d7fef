import pytest
import torch

from robustcollapse.metrics.binarity import gmm_binarity, sign_codes


def planted_codes(n_per_class: int = 200, k: int = 8, d: int = 6, noise: float = 0.05):
    gen = torch.Generator().manual_seed(0)
    codes = torch.tensor([[(c >> b) & 1 for b in range(d)] for c in range(k)], dtype=torch.float64) * 2 - 1
    y = torch.arange(k).repeat_interleave(n_per_class)
    z = codes[y] + noise * torch.randn(len(y), d, generator=gen, dtype=torch.float64)
    return z, y


def test_binary_latent_has_two_narrow_well_separated_peaks():
    z, y = planted_codes()
    # dims 3-5 are constant +/- per class set here only for dims whose bit varies across the 8 classes
    rep = gmm_binarity(z[:, :3])
    assert rep["peak_sep"] > 20
    assert rep["gmm_sigma"] < 0.1


def test_unimodal_latent_has_small_peak_separation():
    gen = torch.Generator().manual_seed(1)
    rep = gmm_binarity(torch.randn(3000, 5, generator=gen))
    assert rep["peak_sep"] < 2.5
    assert rep["gmm_sigma"] > 0.5


def test_sign_codes_of_planted_codes():
    z, y = planted_codes(d=3)
    rep = sign_codes(z, y, 8)
    assert rep["same_code"] == 1.0
    assert rep["class_codes"] == 8
    assert rep["patterns"] == 8


def test_sign_codes_count_samples_off_their_class_code():
    z = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    y = torch.tensor([0, 0, 0, 1])
    rep = sign_codes(z, y, 2)
    assert rep["same_code"] == pytest.approx(3 / 4)
    assert rep["class_codes"] == 2
