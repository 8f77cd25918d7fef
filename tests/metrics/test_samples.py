"""metrics/samples.py: each batched statistic equals its one-sample reference (the suite's own metric code and
scikit-learn) on every resample row, the pool survives the document round trip, and the paired comparison pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from robustcollapse.metrics import samples
from robustcollapse.metrics.calibration import calibration_report
from robustcollapse.metrics.intervals import bootstrap_interval, paired_bootstrap
from robustcollapse.metrics.ood import fpr_at_tpr, ood_report

GEN = torch.Generator().manual_seed(0)


def rows(n: int, r: int = 5, ties: bool = False) -> torch.Tensor:
    values = torch.randn(r, n, generator=GEN, dtype=torch.float64)
    return values.round(decimals=1) if ties else values


@pytest.mark.parametrize("bins", [1, 7, 15])
def test_batched_ece_equals_the_calibration_report(bins):
    logits = torch.randn(6, 300, 10, generator=GEN) * 3
    labels = torch.randint(10, (6, 300), generator=GEN)
    probs = logits.softmax(-1)
    conf, pred = probs.max(-1)
    got = samples.statistic_of(f"ece:{bins}")(conf, pred == labels)
    worst = samples.statistic_of(f"mce:{bins}")(conf, pred == labels)
    for r in range(6):
        report = calibration_report(logits[r], labels[r], n_bins=bins)
        assert float(got[r]) == pytest.approx(report["ece"], abs=1e-6)
        assert float(worst[r]) == pytest.approx(report["mce"], abs=1e-6)


def test_batched_relative_drop_is_the_corruption_tests_formula():
    clean = torch.rand(4, 50, generator=GEN) > 0.2
    shifted = torch.rand(4, 50, generator=GEN, dtype=torch.float64)
    got = samples.statistic_of("rel_drop")(clean, shifted)
    for r in range(4):
        base = clean[r].double().mean()
        assert float(got[r]) == pytest.approx(float((base - shifted[r].mean()) / base), abs=1e-12)
    assert float(samples.statistic_of("rel_drop")(torch.zeros(1, 5, dtype=torch.bool), shifted[:1, :5])[0]) == 0.0


@pytest.mark.parametrize("ties", [False, True])
def test_batched_ood_metrics_equal_scikit_learn_and_metrics_ood(ties):
    id_s, ood_s = rows(120, ties=ties) - 0.5, rows(90, ties=ties) + 0.5
    for name, reference in (
        ("auroc", lambda i, o: roc_auc_score(np.r_[np.zeros(len(i)), np.ones(len(o))], np.r_[i, o])),
        ("aupr_out", lambda i, o: average_precision_score(np.r_[np.zeros(len(i)), np.ones(len(o))], np.r_[i, o])),
        ("aupr_in", lambda i, o: average_precision_score(np.r_[np.ones(len(i)), np.zeros(len(o))], -np.r_[i, o])),
        ("fpr95", lambda i, o: fpr_at_tpr(torch.from_numpy(i), torch.from_numpy(o))),
    ):
        got = samples.statistic_of(name)(id_s, ood_s)
        for r in range(id_s.shape[0]):
            assert float(got[r]) == pytest.approx(reference(id_s[r].numpy(), ood_s[r].numpy()), abs=1e-12), name


def test_the_ood_statistics_agree_with_the_ood_report_the_test_writes():
    id_s, ood_s = rows(200, r=1)[0], rows(150, r=1)[0] + 1
    report = ood_report(id_s, ood_s)
    for name in ("auroc", "aupr_in", "aupr_out", "fpr95"):
        assert float(samples.statistic_of(name)(id_s[None], ood_s[None])[0]) == pytest.approx(report[name], abs=1e-12)


def test_the_pool_round_trips_through_the_document():
    hits = torch.rand(1001, generator=GEN) > 0.3
    scores = torch.randn(77, generator=GEN)
    assert torch.equal(samples.decode(samples.encode(hits)), hits)
    assert torch.equal(samples.decode(samples.encode(scores)), scores.to(torch.float32))
    assert len(samples.encode(hits)["bits"]) == 2 * 126  # 1001 bits in 126 bytes


def test_a_proportion_interval_is_wilson_on_the_recorded_n():
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    hits = torch.zeros(250, dtype=torch.bool)
    hits[:160] = True
    pool = {"hit": hits}
    expected = proportion.proportion_confint(160, 250, alpha=0.05, method="wilson")
    assert samples.interval(samples.proportion("hit"), pool, 0.95, 0) == pytest.approx(expected, abs=1e-12)
    assert samples.size(samples.proportion("hit"), pool) == 250


def test_paired_comparisons_pair_and_refuse_what_is_not_paired():
    contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
    a = torch.rand(400, generator=GEN) > 0.3
    b = a.clone()
    b[:30] = ~b[:30]
    found = samples.paired(samples.proportion("x"), {"x": a}, samples.proportion("x"), {"x": b}, 0.95, 0)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    assert found.p == pytest.approx(contingency.mcnemar(table, exact=True).pvalue, abs=1e-12)
    assert found.difference == pytest.approx(float(b.double().mean() - a.double().mean()))
    shorter = {"x": b[:300]}
    assert samples.paired(samples.proportion("x"), {"x": a}, samples.proportion("x"), shorter, 0.95, 0) is None
    scores_a = {"i": torch.randn(100, generator=GEN), "o": torch.randn(80, generator=GEN) + 2}
    scores_b = {"i": scores_a["i"], "o": scores_a["o"] - 2}
    sample = samples.ood("auroc", "i", "o")
    worse = samples.paired(sample, scores_a, sample, scores_b, 0.95, 0)
    assert worse.method == "paired bootstrap" and worse.high < 0 and worse.n == 180


def test_the_shared_ood_bootstrap_gives_each_metric_its_own_bounds():
    """One sort per resample serves the four OOD metrics: the batched intervals and paired comparisons equal
    those computed key by key (the same seeded resamples)."""
    pool_a = {"i": torch.randn(150, generator=GEN), "o": torch.randn(120, generator=GEN) + 1}
    pool_b = {"i": pool_a["i"] * 0.5, "o": pool_a["o"] + torch.randn(120, generator=GEN)}
    evidence = {f"ood/x/{k}": samples.ood(k, "i", "o") for k in samples.OOD_STATISTICS}
    evidence["acc"] = samples.mean("i")
    together = samples.intervals(evidence, pool_a, 0.9, 3)
    for key, sample in evidence.items():
        assert together[key] == pytest.approx(samples.interval(sample, pool_a, 0.9, 3), abs=1e-12), key
    pairs = samples.paired_all(evidence, pool_a, evidence, pool_b, 0.9, 3)
    for key, sample in evidence.items():
        alone = samples.paired(sample, pool_a, sample, pool_b, 0.9, 3)
        got = pairs[key]
        assert (got.difference, got.low, got.high, got.p) == pytest.approx(
            (alone.difference, alone.low, alone.high, alone.p), abs=1e-12
        ), key


COVERAGE = (0.93, 0.97)  # 0.95 -/+ 4 Monte-Carlo sd at 2,000 draws


@pytest.mark.slow  # 2,000 bootstraps, one call each: about 10 s
def test_the_stratified_auroc_bootstrap_covers_the_true_auroc():
    """Coverage simulation with known truth: ID scores N(0, 1), OOD scores N(1, 1), AUROC = Phi(1 / sqrt 2)."""
    from scipy import stats

    truth = float(stats.norm.cdf(1 / np.sqrt(2)))
    gen = torch.Generator().manual_seed(11)
    hits = 0
    for draw in range(2000):
        pool = {"i": torch.randn(100, generator=gen), "o": torch.randn(100, generator=gen) + 1}
        low, high = bootstrap_interval(
            samples.statistic_of("auroc"), (), resamples=200, seed=draw, groups=[[pool["i"]], [pool["o"]]]
        )
        hits += low <= truth <= high
    assert COVERAGE[0] <= hits / 2000 <= COVERAGE[1], hits / 2000


def test_the_paired_bootstrap_covers_the_true_difference():
    """Paired data (B = A + N(0.2, 0.5) per example): the paired interval of mean(B) - mean(A) covers 0.2."""
    gen = torch.Generator().manual_seed(12)
    hits = 0
    for draw in range(2000):
        a = torch.randn(120, generator=gen, dtype=torch.float64)
        b = a + 0.2 + 0.5 * torch.randn(120, generator=gen, dtype=torch.float64)
        _, low, high, _ = paired_bootstrap(samples.statistic_of("mean"), (a,), (b,), resamples=300, seed=draw)
        hits += low <= 0.2 <= high
    assert COVERAGE[0] <= hits / 2000 <= COVERAGE[1], hits / 2000


def test_intervals_and_paired_comparisons_are_the_bootstraps_of_metrics_intervals():
    """The cached per-model distributions give exactly `bootstrap_interval` and `paired_bootstrap` (same seeded
    resamples: B's distribution minus A's is the paired one), for a one-group and a two-group statistic."""
    a, b = torch.randn(90, generator=GEN, dtype=torch.float64), torch.randn(90, generator=GEN, dtype=torch.float64)
    pool_a, pool_b = {"x": a, "i": a[:40], "o": a[40:] + 1}, {"x": b, "i": b[:40], "o": b[40:] + 1}
    mean = samples.mean("x")
    assert samples.interval(mean, pool_a, 0.9, 4) == pytest.approx(
        bootstrap_interval(samples.statistic_of("mean"), (a,), confidence=0.9, resamples=samples.RESAMPLES, seed=4),
        abs=1e-12,
    )
    got = samples.paired(mean, pool_a, mean, pool_b, 0.9, 4)
    expected = paired_bootstrap(
        samples.statistic_of("mean"), (a,), (b,), confidence=0.9, resamples=samples.RESAMPLES, seed=4
    )
    assert (got.difference, got.low, got.high, got.p) == pytest.approx(expected, abs=1e-12)
    auroc = samples.ood("auroc", "i", "o")
    got = samples.paired(auroc, pool_a, auroc, pool_b, 0.9, 4)
    expected = paired_bootstrap(
        samples.statistic_of("auroc"),
        (),
        (),
        confidence=0.9,
        resamples=samples.RESAMPLES,
        seed=4,
        groups=([[pool_a["i"]], [pool_a["o"]]], [[pool_b["i"]], [pool_b["o"]]]),
    )
    assert (got.difference, got.low, got.high, got.p) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("bins", "ties"), [(1, False), (10, False), (15, True)])
def test_batched_adaptive_and_classwise_ece_equal_the_calibration_functions(bins, ties):
    from robustcollapse.metrics.calibration import adaptive_ece, classwise_ece

    logits = torch.randn(4, 200, 5, generator=GEN, dtype=torch.float64) * 2
    if ties:  # repeated confidences: quantile edges coincide and adaptive_ece drops the duplicates
        logits = logits.round()
    probs = logits.softmax(-1)
    # labels drawn from the model's own probabilities: calibrated in expectation, so the bins' gaps have both
    # signs and a confidence put into the wrong bin changes the sum (one-signed gaps would hide it)
    labels = torch.multinomial(probs.reshape(-1, 5), 1, generator=GEN).reshape(4, 200)
    conf, pred = probs.max(-1)
    aece = samples.statistic_of(f"aece:{bins}")(conf, pred == labels)
    cwece = samples.statistic_of(f"cwece:{bins}")(*probs.unbind(-1), labels.double())
    for r in range(4):
        assert float(aece[r]) == pytest.approx(adaptive_ece(conf[r], pred[r] == labels[r], bins), abs=1e-12)
        assert float(cwece[r]) == pytest.approx(classwise_ece(probs[r], labels[r], bins), abs=1e-12)


def test_batched_mean_ece_and_ood_means_are_the_means_of_their_parts():
    conf = torch.rand(3, 4, 80, generator=GEN, dtype=torch.float64)
    hit = torch.rand(3, 4, 80, generator=GEN) > 0.3
    got = samples.statistic_of("ece_mean:10")(*(t for c in range(3) for t in (conf[c], hit[c])))
    each = torch.stack([samples.statistic_of("ece:10")(conf[c], hit[c]) for c in range(3)])
    assert torch.allclose(got, each.mean(0), atol=1e-15, rtol=0)
    id_s, sets = rows(60), [rows(40) + 0.5, rows(50) + 1.0]
    for name in samples.OOD_STATISTICS:
        mean_of = samples.statistic_of(f"ood_mean:{name}")(id_s, id_s, *sets)
        parts = torch.stack([samples.statistic_of(name)(id_s, o) for o in sets]).mean(0)
        assert torch.allclose(mean_of, parts, atol=1e-15, rtol=0), name


def test_chunked_resampling_gives_the_same_distribution(monkeypatch):
    """Resamples gathered in chunks (to bound memory) are the same resamples: the same distribution exactly."""
    from robustcollapse.metrics import intervals

    conf, hit = torch.rand(300, generator=GEN, dtype=torch.float64), torch.rand(300, generator=GEN) > 0.4
    whole = intervals.bootstrap_distribution(samples.statistic_of("ece:10"), [[conf, hit]], 200, seed=3)
    monkeypatch.setattr(intervals, "GATHER_BYTES", 8 * 2 * 300 * 7)  # 7 resamples at a time
    chunked = intervals.bootstrap_distribution(samples.statistic_of("ece:10"), [[conf, hit]], 200, seed=3)
    assert torch.equal(whole, chunked)
