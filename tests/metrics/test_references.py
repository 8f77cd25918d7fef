"""Detectors and metrics against independent references: pytorch-ood's detectors on the same features and logits,
torchmetrics' calibration errors, and the published neural-collapse formulas on features with a closed-form
answer (a simplex ETF with exact within-class covariance sigma^2 I)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from robustcollapse.metrics.binarity import gmm_binarity, sign_codes
from robustcollapse.metrics.calibration import calibration_report
from robustcollapse.metrics.collapse import collapse_report
from robustcollapse.metrics.ood import ood_report, roc_points
from robustcollapse.models.forward import Pass
from robustcollapse.ood import DetectorOptions, make_detector
from tests.metrics.test_collapse import simplex_etf

pytorch_ood = pytest.importorskip("pytorch_ood")
torchmetrics = pytest.importorskip("torchmetrics")
from pytorch_ood import detector as ref  # noqa: E402


class Head(nn.Module):
    """The 'image' is the feature vector; a linear layer gives the logits (so ODIN and ViM see the same net)."""

    def __init__(self, d: int, k: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(d, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    def classifier_layer(self) -> nn.Linear:
        return self.fc


@pytest.fixture(scope="module")
def features():
    gen = torch.Generator().manual_seed(0)
    k, d = 5, 12
    centres = 2 * torch.randn(k, d, generator=gen)
    y_train = torch.arange(600) % k
    z_train = centres[y_train] + torch.randn(600, d, generator=gen)
    z_test = torch.cat(
        [centres[torch.arange(100) % k] + torch.randn(100, d, generator=gen), 3 * torch.randn(100, d, generator=gen)]
    )
    head = Head(d, k).eval()
    with torch.no_grad():
        train = Pass(z_train, head(z_train), y_train)
        test = Pass(z_test, head(z_test), torch.full((200,), -1))
    return head, train, test


def ours(name: str, head, train, test, **options) -> torch.Tensor:
    det = make_detector(name, DetectorOptions(**options))
    det.fit(train, head, train.logits.shape[1])
    return det.score(test, test.z, head).double()


@pytest.mark.parametrize(
    "name, reference",
    [
        ("msp", lambda logits: ref.MaxSoftmax.score(logits)),
        ("maxlogit", lambda logits: ref.MaxLogit.score(logits)),
        ("energy", lambda logits: ref.EnergyBased.score(logits, 1.0)),
    ],
)
def test_logit_detectors_equal_pytorch_ood(features, name, reference):
    head, train, test = features
    assert torch.allclose(ours(name, head, train, test), reference(test.logits).double(), atol=1e-6)


def test_energy_temperature_equals_pytorch_ood(features):
    head, train, test = features
    assert torch.allclose(
        ours("energy", head, train, test, energy_t=3.0), ref.EnergyBased.score(test.logits, 3.0).double(), atol=1e-5
    )


def test_knn_equals_pytorch_ood_kth_neighbour(features):
    head, train, test = features
    reference = ref.KNN(None, k=7).fit_features(train.z, train.y).predict_features(test.z)
    assert torch.allclose(ours("knn", head, train, test, knn_k=7), reference.double(), atol=1e-5)
    # the first neighbour would be a different detector
    first = ref.KNN(None, k=1).fit_features(train.z, train.y).predict_features(test.z)
    assert not torch.allclose(ours("knn", head, train, test, knn_k=7), first.double(), atol=1e-2)


def test_mahalanobis_is_the_distance_pytorch_ood_ranks_by(features):
    # pytorch-ood scores 0.5 d^2 under the *summed* scatter matrix (N Sigma): 2 N score = d^2
    head, train, test = features
    det = ref.Mahalanobis(None)
    det.fit_features(train.z, train.y)
    reference = det.predict_features(test.z)
    distance = ours("mahalanobis", head, train, test)
    assert torch.allclose(distance**2, 2 * len(train.z) * reference.double(), rtol=1e-3)


def test_vim_equals_pytorch_ood(features):
    head, train, test = features
    w, b = head.fc.weight.detach(), head.fc.bias.detach()
    det = ref.ViM(None, d=6, w=w, b=b).fit_features(train.z, train.y)
    assert torch.allclose(
        ours("vim", head, train, test, vim_dim=6), det.predict_features(test.z).double(), rtol=1e-4, atol=1e-4
    )


def test_odin_equals_pytorch_ood(features):
    import copy

    head = copy.deepcopy(features[0]).double()  # in float64 the step's effect (~1e-6 at T = 1000) is resolved
    gen = torch.Generator().manual_seed(2)
    images = 0.05 + 0.9 * torch.rand(50, 12, generator=gen, dtype=torch.float64)  # our [0, 1] clamp never bites
    for eps in (0.0014, 0.03):
        reference = ref.ODIN(head, eps=eps, temperature=1000.0).predict(images)
        det = make_detector("odin", DetectorOptions(odin_eps=eps))
        ours_scores = det.score(Pass(images, head(images), None), images, head)
        assert torch.allclose(ours_scores, reference, rtol=0, atol=1e-12)
    # the step goes up the max softmax: the reversed step scores every point as more OOD
    reversed_step = ref.ODIN(head, eps=-0.03, temperature=1000.0).predict(images)
    assert (reversed_step > ours_scores).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_calibration_equals_torchmetrics(seed):
    from torchmetrics.functional.classification import binary_calibration_error, multiclass_calibration_error

    gen = torch.Generator().manual_seed(seed)
    k = 6
    logits = 3 * torch.randn(2000, k, generator=gen, dtype=torch.float64)
    labels = torch.where(
        torch.rand(2000, generator=gen) < 0.7, logits.argmax(1), torch.randint(k, (2000,), generator=gen)
    )
    rep = calibration_report(logits, labels)
    probs = logits.softmax(1)
    assert rep["ece"] == pytest.approx(
        float(multiclass_calibration_error(probs, labels, k, n_bins=15, norm="l1")), abs=1e-6
    )
    assert rep["mce"] == pytest.approx(
        float(multiclass_calibration_error(probs, labels, k, n_bins=15, norm="max")), abs=1e-6
    )
    # classwise ECE (Kull et al. 2019): the mean over classes of the binary ECE of p_k against 1[y = k]
    classwise = np.mean(
        [float(binary_calibration_error(probs[:, c], (labels == c).long(), n_bins=15)) for c in range(k)]
    )
    assert rep["cwece"] == pytest.approx(classwise, abs=1e-6)


def etf_with_exact_noise(k: int, d: int, r: float, sigma: float, repeats: list[int]):
    """Class means r * (simplex ETF) and, around each, the 2d points +-sigma sqrt(d) e_j (each set repeated
    repeats[k] times): class means exact, Sigma_W = sigma^2 I exactly, whatever the class sizes."""
    means = r * simplex_etf(k, d, seed=3)
    offsets = sigma * math.sqrt(d) * torch.cat([torch.eye(d), -torch.eye(d)]).double()
    h = torch.cat([means[c] + offsets.repeat(repeats[c], 1) for c in range(k)])
    y = torch.cat([torch.full((2 * d * repeats[c],), c) for c in range(k)])
    return h, y, means


@pytest.mark.parametrize("repeats", [[1, 1, 1, 1], [1, 5, 2, 9]])
def test_nc1_and_within_between_have_the_closed_form_on_an_etf(repeats):
    k, d, r, sigma = 4, 6, 2.0, 0.3
    h, y, _ = etf_with_exact_noise(k, d, r, sigma, repeats)
    rep = collapse_report(h, y, torch.zeros(len(y), k), None, k)
    # Sigma_B = M M^T / K has K-1 eigenvalues r^2 / (K-1); Sigma_W = sigma^2 I
    assert rep["nc1"] == pytest.approx(sigma**2 * (k - 1) ** 2 / (k * r**2), rel=1e-10)
    assert rep["within_between"] == pytest.approx(sigma**2 * d / r**2, rel=1e-10)
    for key in ("equinorm", "equiangular", "maxangle", "etf_means"):  # centred on the mean of class means
        assert rep[key] == pytest.approx(0.0, abs=1e-10), key


def test_nc1_equals_the_published_formula_with_a_dense_pseudo_inverse():
    h, y, _ = etf_with_exact_noise(5, 7, 1.5, 0.4, [2, 1, 3, 1, 4])
    gen = torch.Generator().manual_seed(0)
    h = h + 0.2 * torch.randn(h.shape, generator=gen, dtype=torch.float64)
    k = 5
    hn, yn = h.numpy(), y.numpy()
    mu = np.stack([hn[yn == c].mean(0) for c in range(k)])
    mu_g = mu.mean(0)  # Papyan et al.'s reference code: the mean of the class means
    sigma_w = (hn - mu[yn]).T @ (hn - mu[yn]) / len(hn)
    sigma_b = (mu - mu_g).T @ (mu - mu_g) / k
    rep = collapse_report(h, y, torch.zeros(len(y), k), None, k)
    assert rep["nc1"] == pytest.approx(np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / k, rel=1e-8)
    assert rep["within_between"] == pytest.approx(np.trace(sigma_w) / np.trace(sigma_b), rel=1e-10)


def test_sign_codes_cut_each_coordinate_between_its_two_modes():
    # coordinate 0 is +1 for one class of eight and -1 for the rest: the global mean (-0.75) sits beside the larger
    # mode, and noise around -1 crosses it; the midpoint of the modes (0) is where the code changes
    gen = torch.Generator().manual_seed(0)
    k, per = 8, 100
    codes = -torch.ones(k, 2, dtype=torch.float64)
    codes[0, 0] = 1.0
    codes[::2, 1] = 1.0
    y = torch.arange(k).repeat_interleave(per)
    z = codes[y] + 0.3 * torch.randn(len(y), 2, generator=gen, dtype=torch.float64)
    rep = sign_codes(z, y, k)
    by_midpoint = (z > 0).long()
    expected = np.mean(
        [
            float((by_midpoint[y == c] == torch.mode(by_midpoint[y == c], 0).values).all(1).double().mean())
            for c in range(k)
        ]
    )
    assert rep["same_code"] == pytest.approx(expected, abs=1e-12)
    assert rep["same_code"] > 0.99


def sklearn_converged(col: np.ndarray) -> tuple[float, float, float]:
    """scikit-learn's GaussianMixture run to convergence: mean log-likelihood, mean sigma, peak separation."""
    from sklearn.mixture import GaussianMixture

    col = ((col - col.mean()) / col.std())[:, None]
    gmm = GaussianMixture(2, random_state=0, reg_covar=1e-6, tol=1e-14, max_iter=100000).fit(col)
    sig = np.sqrt(gmm.covariances_.reshape(2))
    return gmm.score(col), sig.mean(), abs(gmm.means_[0, 0] - gmm.means_[1, 0]) / sig.mean()


def test_gmm_binarity_equals_scikit_learn_run_to_convergence():
    gen = torch.Generator().manual_seed(4)
    codes = torch.randint(0, 2, (3000, 3), generator=gen).double() * 2 - 1
    z = torch.cat(
        [
            codes + 0.2 * torch.randn(3000, 3, generator=gen, dtype=torch.float64),  # binary coordinates
            torch.where(torch.rand(3000, 1, generator=gen) < 0.8, 0.0, 1.6).double()  # unbalanced, overlapping modes
            + 0.5 * torch.randn(3000, 1, generator=gen, dtype=torch.float64),
        ],
        1,
    )
    reference = np.array([sklearn_converged(z[:, j].numpy()) for j in range(z.shape[1])])
    rep = gmm_binarity(z)
    assert rep["gmm_loglik"] == pytest.approx(reference[:, 0].mean(), rel=1e-4)
    assert rep["gmm_sigma"] == pytest.approx(reference[:, 1].mean(), rel=1e-3)
    assert rep["peak_sep"] == pytest.approx(reference[:, 2].mean(), rel=1e-3)
    # the unbalanced coordinate alone: where scikit-learn's default tolerance (1e-3) stops ~10 % short
    assert gmm_binarity(z[:, 3:])["peak_sep"] == pytest.approx(reference[3, 2], rel=1e-2)


def test_infinite_scores_rank_at_their_own_end():
    id_scores = torch.tensor([0.1, 0.2, 0.3, -math.inf])
    ood_scores = torch.tensor([0.25, 0.4, 0.5, math.inf])
    # -inf is the most in-distribution score there is: every OOD sample ranks above it
    rep = ood_report(id_scores, ood_scores)
    assert rep["auroc"] == pytest.approx(15 / 16)
    curve = roc_points(id_scores, ood_scores)
    assert curve["tpr"][0] == 0.75 and curve["tpr"][-1] == 1.0  # at FPR 0, three OOD samples sit above every ID one
