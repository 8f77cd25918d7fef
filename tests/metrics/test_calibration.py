import math

import numpy as np
import pytest
import torch

from robustcollapse.metrics.calibration import adaptive_ece, calibration_report, classwise_ece, ece, fit_temperature


def reference_ece(conf: np.ndarray, hit: np.ndarray, n_bins: int = 15) -> tuple[float, float]:
    """Independent loop implementation: bins (i/n, (i+1)/n], 0 in the first bin."""
    total, worst = 0.0, 0.0
    for i in range(n_bins):
        lo, hi = i / n_bins, (i + 1) / n_bins
        mask = (conf > lo) & (conf <= hi) if i > 0 else (conf <= hi)
        if mask.any():
            gap = abs(hit[mask].mean() - conf[mask].mean())
            total += mask.mean() * gap
            worst = max(worst, gap)
    return total, worst


def logits_with_confidence(conf: float, n: int, k: int) -> torch.Tensor:
    """Logits whose softmax puts `conf` on class 0 and spreads the rest evenly."""
    rest = (1 - conf) / (k - 1)
    row = torch.full((k,), math.log(rest), dtype=torch.float64)
    row[0] = math.log(conf)
    return row.repeat(n, 1)


def test_constant_confidence_ece_is_gap_between_confidence_and_accuracy():
    logits = logits_with_confidence(0.8, 100, 10)
    labels = torch.zeros(100, dtype=torch.long)
    labels[:30] = 3  # accuracy 0.7
    rep = calibration_report(logits, labels)
    assert rep["acc"] == pytest.approx(0.7)
    assert rep["mean_conf"] == pytest.approx(0.8)
    assert rep["ece"] == pytest.approx(0.1, abs=1e-12)
    assert rep["aece"] == pytest.approx(0.1, abs=1e-12)
    assert rep["mce"] == pytest.approx(0.1, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_and_mce_match_reference_on_random_inputs(seed):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2000, 7, generator=gen, dtype=torch.float64) * 3
    labels = torch.randint(0, 7, (2000,), generator=gen)
    rep = calibration_report(logits, labels)
    probs = torch.softmax(logits, 1).numpy()
    conf, pred = probs.max(1), probs.argmax(1)
    ref_ece, ref_mce = reference_ece(conf, (pred == labels.numpy()).astype(float))
    assert rep["ece"] == pytest.approx(ref_ece, abs=1e-12)
    assert rep["mce"] == pytest.approx(ref_mce, abs=1e-12)
    assert sum(b["count"] for b in rep["reliability"]) == 2000


def test_bin_edges_are_right_closed():
    conf = torch.tensor([1 / 15, 1.0, 0.0])
    hit = torch.tensor([1.0, 1.0, 0.0])
    # 1/15 and 0 share the first bin: mean conf 1/30, acc 1/2; 1.0 alone in the last bin: gap 0
    assert ece(conf, hit) == pytest.approx(2 / 3 * abs(0.5 - 1 / 30))


def test_adaptive_ece_uses_equal_count_bins():
    conf = torch.linspace(0.05, 0.95, 30, dtype=torch.float64)
    hit = torch.ones(30, dtype=torch.float64)
    # 3 bins of 10 sorted samples each: gap = 1 - mean conf of each chunk, weighted 1/3
    chunks = conf.reshape(3, 10).mean(1)
    assert adaptive_ece(conf, hit, n_bins=3) == pytest.approx(float((1 - chunks).mean()))


def test_nll_and_brier_hand_computed():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]], dtype=torch.float64)
    labels = torch.tensor([0, 2])
    rep = calibration_report(probs.log(), labels)
    assert rep["nll"] == pytest.approx(-(math.log(0.7) + math.log(0.3)) / 2)
    brier0 = 0.3**2 + 0.2**2 + 0.1**2
    brier1 = 0.1**2 + 0.6**2 + 0.7**2
    assert rep["brier"] == pytest.approx((brier0 + brier1) / 2)
    assert rep["acc"] == pytest.approx(0.5)


def test_classwise_ece_of_perfectly_calibrated_one_hot_is_zero():
    labels = torch.tensor([0, 1, 2, 1])
    probs = torch.nn.functional.one_hot(labels, 3).double()
    assert classwise_ece(probs, labels) == pytest.approx(0.0)
    wrong = torch.nn.functional.one_hot(torch.tensor([1, 2, 0, 0]), 3).double()
    # every class: predicted 1 where the label is not k, and 0 where it is -> maximal miscalibration
    assert classwise_ece(wrong, labels) > 0.4


def _overconfident(n: int = 2000, scale: float = 4.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    z = torch.randn(n, 10, generator=g)
    z[torch.arange(n), y] += 1.5
    return z * scale, y


@pytest.mark.parametrize(("scale", "above_one"), [(4.0, True), (0.3, False)])
def test_temperature_equals_netcal_and_fixes_over_and_under_confidence(scale, above_one):
    """netcal's TemperatureScaling (Küppers et al.) fits the inverse temperature on the same logits."""
    netcal = pytest.importorskip("netcal.scaling")
    z, y = _overconfident(scale=scale)
    reference = netcal.TemperatureScaling()
    reference.fit(torch.softmax(z.double(), 1).numpy(), y.numpy())
    t = fit_temperature(z, y)
    assert t == pytest.approx(1 / float(reference.temperature[0]), rel=1e-3)
    assert (t > 1) == above_one
    raw, scaled = calibration_report(z, y), calibration_report(z / t, y)
    assert scaled["ece"] < raw["ece"] and scaled["nll"] < raw["nll"]
    assert scaled["acc"] == raw["acc"]  # a temperature never changes the prediction


def test_temperature_minimises_the_nll():
    """At the optimum the derivative of the NLL in 1/T vanishes: mean logit of the label = mean expected logit."""
    z, y = _overconfident(scale=3.0, seed=2)
    t = fit_temperature(z, y)
    zd = z.double()
    p = torch.softmax(zd / t, 1)
    gradient = (zd[torch.arange(len(y)), y] - (p * zd).sum(1)).mean()
    assert abs(float(gradient)) < 1e-6
