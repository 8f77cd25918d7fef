"""Small known answers that pin what the reference comparisons leave open (found by mutation testing: each test
kills mutants that survived the others)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from robustcollapse.metrics.binarity import gmm_binarity, sign_codes
from robustcollapse.metrics.calibration import adaptive_ece, calibration_report, classwise_ece, ece
from robustcollapse.metrics.collapse import collapse_report, etf_error
from robustcollapse.metrics.ood import ood_report, roc_points
from tests.metrics.test_collapse import simplex_etf


def test_equal_width_bins_are_closed_on_the_right_at_exact_edges():
    edge = float(torch.linspace(0, 1, 16, dtype=torch.float64)[1])  # exactly the first inner edge
    conf = torch.tensor([edge, 0.1, 1.0], dtype=torch.float64)
    hit = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    # the edge belongs to the first bin (0, 1/15], alone: gaps 1 - 1/15 and 0.1 (0.1 alone in the second), 0
    assert ece(conf, hit) == pytest.approx((1 - edge) / 3 + 0.1 / 3)


def test_calibration_report_passes_its_bin_count_on_and_lists_the_bins():
    gen = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(500, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(4, (500,), generator=gen)
    probs = logits.softmax(1)
    conf, pred = probs.max(1)
    hit = (pred == labels).double()
    rep = calibration_report(logits, labels, n_bins=7)
    assert rep["ece"] == pytest.approx(ece(conf, hit, 7))
    assert rep["aece"] == pytest.approx(adaptive_ece(conf, hit, 7)) and rep["aece"] != adaptive_ece(conf, hit, 15)
    assert rep["cwece"] == pytest.approx(classwise_ece(probs, labels, 7))
    from torchmetrics.functional.classification import binary_calibration_error

    per_class = [float(binary_calibration_error(probs[:, c], (labels == c).long(), n_bins=7)) for c in range(4)]
    assert classwise_ece(probs, labels, 7) == pytest.approx(np.mean(per_class), abs=1e-6)
    bins = rep["reliability"]
    assert [b["lo"] for b in bins] == pytest.approx([i / 7 for i in range(7)])
    assert [b["hi"] for b in bins] == pytest.approx([(i + 1) / 7 for i in range(7)])
    in_bin = [(conf > b["lo"]) & (conf <= b["hi"]) for b in bins]
    assert [b["count"] for b in bins] == [int(m.sum()) for m in in_bin]
    for b, m in zip(bins, in_bin, strict=True):
        if b["count"]:
            assert b["conf"] == pytest.approx(float(conf[m].mean())) and b["acc"] == pytest.approx(float(hit[m].mean()))


def test_adaptive_ece_edges_are_closed_on_the_right():
    conf = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    hit = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    # two equal-mass bins, edge at the median (0.25): {0.1, 0.2} and {0.3, 0.4}
    assert adaptive_ece(conf, hit, 2) == pytest.approx(0.5 * abs(0.5 - 0.15) + 0.5 * abs(0.5 - 0.35))
    conf = torch.tensor([0.1, 0.2, 0.2, 0.4], dtype=torch.float64)
    # the median is the tied 0.2: both copies stay together in the lower bin (x <= edge)
    assert adaptive_ece(conf, hit, 2) == pytest.approx(0.75 * abs(1 / 3 - 0.5 / 3) + 0.25 * abs(1 - 0.4))


def test_equinorm_equiangularity_and_nc3_known_values():
    # three classes of one sample each, unequal norms and angles about their centre; a classifier not aligned
    h = torch.tensor([[-1.0, 0.0], [3.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    rep = collapse_report(h, y, h @ w.T, w, 3)
    centred = h - h.mean(0)
    norms = centred.norm(dim=1)
    assert rep["equinorm"] == pytest.approx(float(norms.std(unbiased=False) / norms.mean()))
    unit = centred / norms[:, None]
    cos = (unit @ unit.T)[~torch.eye(3, dtype=torch.bool)]
    assert rep["equiangular"] == pytest.approx(float(cos.std(unbiased=False)))
    assert rep["maxangle"] == pytest.approx(float((cos + 0.5).abs().mean()))
    w_norms = w.norm(dim=1)
    assert rep["w_equinorm"] == pytest.approx(float(w_norms.std(unbiased=False) / w_norms.mean()))
    assert rep["nc3"] == pytest.approx(float(((w / w.norm() - centred / centred.norm()) ** 2).sum()))


def test_tiny_features_and_singleton_classes_keep_their_values():
    # features of norm 1e-3 (no clamping of small norms) and one sample per class (means are the samples)
    etf = simplex_etf(4, 5) * 1e-3
    rep = collapse_report(etf, torch.arange(4), torch.eye(4), None, 4)
    for key in ("nc1", "within_between", "equinorm", "equiangular", "maxangle", "etf_means"):
        assert rep[key] == pytest.approx(0.0, abs=1e-9), key
    assert etf_error(1e-4 * (etf @ etf.T)) == pytest.approx(0.0, abs=1e-9)


def test_absent_classes_and_identical_means():
    h = torch.tensor([[0.0, 1.0], [0.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 2])  # class 1 absent
    rep = collapse_report(h, y, torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]]), None, 3)
    assert rep["nc1"] == pytest.approx(0.0) and rep["equinorm"] == pytest.approx(0.0) and rep["nc4"] == 0.0
    w = torch.tensor([[-1.0, 0.5], [5.0, 5.0], [1.0, -0.5]], dtype=torch.float64)  # class 1 row: anything
    assert collapse_report(h, y, h @ w.T, w, 3)["nc3"] == pytest.approx(0.0, abs=1e-12)  # rows of present classes
    last_absent = collapse_report(h[1:], torch.tensor([0, 1]), torch.eye(3)[:2], None, 3)  # the last class absent
    assert last_absent["nc1"] == pytest.approx(0.0) and last_absent["equinorm"] == pytest.approx(0.0)
    same = collapse_report(torch.ones(4, 2, dtype=torch.float64), torch.tensor([0, 0, 1, 1]), torch.ones(4, 2), None, 2)
    assert same["within_between"] == math.inf


def test_ood_metrics_keep_finite_extremes_in_order():
    id_scores = torch.tensor([5.0, 6.0, -math.inf])
    ood_scores = torch.tensor([7.0, math.inf, 4.0])
    rep = ood_report(id_scores, ood_scores)
    # +inf ranks above 7 and -inf below 4 however large the finite scores: 7 of 9 pairs ordered
    assert rep["auroc"] == pytest.approx(7 / 9)
    labels = np.array([0, 0, 0, 1, 1, 1])
    ranked = np.array([5.0, 6.0, 3.0, 7.0, 8.0, 4.0])
    assert rep["aupr_in"] == pytest.approx(average_precision_score(1 - labels, -ranked))
    assert rep["aupr_out"] == pytest.approx(average_precision_score(labels, ranked))
    negative = ood_report(torch.tensor([-5.0, -6.0, -math.inf]), torch.tensor([-3.0, math.inf, -7.0]))
    assert negative["auroc"] == pytest.approx(7 / 9)  # -inf below -7, not at a fixed -1
    everything = ood_report(torch.full((2,), -math.inf), torch.full((2,), math.inf))
    assert everything["auroc"] == 1.0 and everything["fpr95"] == 0.0


def test_roc_points_grid_and_rounding():
    id_scores = torch.arange(7, dtype=torch.float64)
    ood_scores = torch.tensor([2.5, 4.5, 6.5, 9.0, 9.5, 10.0, 11.0], dtype=torch.float64)
    curve = roc_points(id_scores, ood_scores, points=11)
    assert list(curve) == ["fpr", "tpr"]
    assert curve["fpr"] == [round(i / 10, 4) for i in range(11)]
    assert curve["tpr"][0] == round(5 / 7, 4) == 0.7143  # five OOD scores above every ID one
    assert curve["tpr"][2] == 0.7143 and curve["tpr"][3] == round(6 / 7, 4)  # FPR 2/7 <= 0.3 lets 4.5 in


def test_two_modes_and_the_spread_of_peak_separation():
    from robustcollapse.metrics.binarity import two_modes

    lo, hi = two_modes(torch.tensor([[1.0], [1.0], [1.0], [10.0]], dtype=torch.float64))
    assert (float(lo[0]), float(hi[0])) == (1.0, 10.0)
    gen = torch.Generator().manual_seed(0)
    z = torch.cat([torch.randn(400, 1, generator=gen), torch.sign(torch.randn(400, 2, generator=gen))], 1).double()
    z[:, 1:] += 0.1 * torch.randn(400, 2, generator=gen, dtype=torch.float64)
    rep = gmm_binarity(z)
    assert set(rep) == {"gmm_loglik", "gmm_sigma", "peak_sep", "peak_sep_std"}
    per_dim = [gmm_binarity(z[:, j : j + 1])["peak_sep"] for j in range(3)]
    assert rep["peak_sep"] == pytest.approx(np.mean(per_dim)) and rep["peak_sep_std"] == pytest.approx(np.std(per_dim))


def test_binarity_of_constant_dimensions_and_cut_between_unequal_modes():
    assert gmm_binarity(torch.ones(50, 3)) == {
        "gmm_loglik": pytest.approx(float("nan"), nan_ok=True),
        "gmm_sigma": pytest.approx(float("nan"), nan_ok=True),
        "peak_sep": 0.0,
        "peak_sep_std": 0.0,
    }
    # modes at 1.5 and 10: the cut is at 5.75, so 4.0 is on the lower side (a cut at a third, 3.8, would not be)
    z = torch.tensor([[0.0], [0.5], [4.0], [9.5], [10.0], [10.5]], dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    assert sign_codes(z, y, 3) == {"same_code": 1.0, "class_codes": 2.0, "patterns": 2.0}  # class 2 absent
