import numpy as np
import pytest
import torch

from robustcollapse.metrics.collapse import collapse_report, etf_error


def simplex_etf(k: int, d: int, seed: int = 0) -> torch.Tensor:
    """K unit-norm vectors in d dims with pairwise cosine -1/(K-1), randomly rotated (K x d)."""
    gen = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(d, k, generator=gen, dtype=torch.float64))
    m = (torch.eye(k, dtype=torch.float64) - 1.0 / k) * (k / (k - 1)) ** 0.5
    return (basis @ m).T


def test_etf_vectors_have_the_analytic_gram_matrix():
    etf = simplex_etf(6, 9)
    gram = etf @ etf.T
    expected = torch.full((6, 6), -1 / 5, dtype=torch.float64).fill_diagonal_(1.0)
    assert torch.allclose(gram, expected, atol=1e-12)
    assert etf_error(gram) == pytest.approx(0.0, abs=1e-12)


def test_perfectly_collapsed_features_on_simplex_etf():
    k, d, per_class = 5, 8, 20
    means = simplex_etf(k, d) * 3.0 + 0.7  # any scale and global offset
    y = torch.arange(k).repeat_interleave(per_class)
    h = means[y]
    logits = h @ (means - means.mean(0)).T
    rep = collapse_report(h, y, logits, classifier=(means - means.mean(0)), num_classes=k)
    assert rep["nc1"] == pytest.approx(0.0, abs=1e-20)
    for key in ("equinorm", "equiangular", "maxangle", "etf_means", "nc3", "w_equinorm", "etf_w"):
        assert rep[key] == pytest.approx(0.0, abs=1e-10), key
    assert rep["nc4"] == 0.0


def test_nc1_matches_dense_pseudo_inverse_reference_on_balanced_data():
    gen = torch.Generator().manual_seed(3)
    k, d, per_class = 4, 6, 50
    centres = torch.randn(k, d, generator=gen, dtype=torch.float64) * 2
    y = torch.arange(k).repeat_interleave(per_class)
    h = centres[y] + 0.5 * torch.randn(k * per_class, d, generator=gen, dtype=torch.float64)
    rep = collapse_report(h, y, torch.randn(k * per_class, k, generator=gen), None, k)
    hn, yn = h.numpy(), y.numpy()
    mu = np.stack([hn[yn == c].mean(0) for c in range(k)])
    mu_g = hn.mean(0)
    sigma_w = sum(np.outer(v, v) for v in hn - mu[yn]) / len(hn)
    sigma_b = (mu - mu_g).T @ (mu - mu_g) / k
    reference = np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / k
    assert rep["nc1"] == pytest.approx(reference, rel=1e-9)
    assert "nc3" not in rep  # no classifier given


def test_nc4_counts_disagreement_with_nearest_class_centre():
    means = torch.eye(3, dtype=torch.float64) * 5
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    h = means[y]
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 1, 2, 0]), 3).double()
    rep = collapse_report(h, y, logits, None, 3)
    assert rep["nc4"] == pytest.approx(2 / 6)


def test_absent_classes_are_ignored_not_fatal():
    means = simplex_etf(3, 4)
    y = torch.tensor([0, 0, 2, 2, 3, 3])  # class 1 absent, 4 classes declared
    h = torch.cat([means, means])[torch.tensor([0, 0, 1, 1, 2, 2])]
    logits = torch.zeros(6, 4)
    logits[torch.arange(6), y] = 1
    rep = collapse_report(h, y, logits, None, 4)
    assert rep["nc1"] == pytest.approx(0.0, abs=1e-20)
    assert rep["nc4"] == 0.0
