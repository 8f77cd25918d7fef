"""metrics/intervals.py held to its references (statsmodels, scipy, the R package contingencytables' published
output), to coverage simulations with known truth, and to the bugs it must not let through (wrong n, a one-sided
bootstrap, unpaired counts)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

proportion = pytest.importorskip("statsmodels.stats.proportion")
contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
multitest = pytest.importorskip("statsmodels.stats.multitest")

from robustcollapse.metrics import intervals  # noqa: E402
from robustcollapse.metrics.intervals import (  # noqa: E402
    batched_mean,
    bootstrap_interval,
    holm,
    mcnemar_exact,
    paired_bootstrap,
    paired_difference_interval,
    t_interval,
    verdict,
    welch,
)

DRAWS = 2000  # coverage draws: Monte-Carlo sd of a 0.95 coverage is sqrt(.95 * .05 / 2000) = 0.005
COVERAGE = (0.93, 0.97)  # 0.95 -/+ 4 Monte-Carlo sd


def coverage(bounds: list[tuple[float, float]], truth: float) -> float:
    return float(np.mean([low <= truth <= high for low, high in bounds]))


def paired_vectors(n11: int, n10: int, n01: int, n00: int) -> tuple[np.ndarray, np.ndarray]:
    """A-correct and B-correct vectors with n11 both right, n10 A right B wrong, n01 A wrong B right, n00 both
    wrong."""
    a = np.repeat([True, True, False, False], [n11, n10, n01, n00])
    b = np.repeat([True, False, True, False], [n11, n10, n01, n00])
    return a, b


# ------------------------------------------------------------------------------------------------------- wilson


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_matches_statsmodels(confidence):
    for n in (1, 2, 7, 50, 200, 10_000):
        for k in sorted({0, 1, n // 3, n - 1, n}):
            expected = proportion.proportion_confint(k, n, alpha=1 - confidence, method="wilson")
            assert intervals.wilson(k, n, confidence) == pytest.approx(expected, abs=1e-9), (k, n)


def test_wilson_from_the_wrong_n_is_caught():
    """Planted bug: the interval computed from n - 1 (an example dropped from the count) misses the reference."""
    expected = proportion.proportion_confint(60, 200, alpha=0.05, method="wilson")
    assert intervals.wilson(60, 200) == pytest.approx(expected, abs=1e-9)
    assert intervals.wilson(60, 199) != pytest.approx(expected, abs=1e-9)
    assert intervals.wilson(60, 201) != pytest.approx(expected, abs=1e-9)


def test_wilson_edge_cases():
    assert all(math.isnan(v) for v in intervals.wilson(0, 0))
    for n in (1, 3, 10, 100, 1000):  # rounding would put these ends just outside [0, 1]
        assert intervals.wilson(0, n)[0] == 0.0 and intervals.wilson(n, n)[1] == 1.0
    for successes, n in ((11, 10), (-1, 10)):
        with pytest.raises(ValueError, match="successes"):
            intervals.wilson(successes, n)


def test_wilson_coverage():
    p, n = 0.3, 200
    counts = np.random.default_rng(0).binomial(n, p, size=DRAWS)
    assert COVERAGE[0] <= coverage([intervals.wilson(int(k), n) for k in counts], p) <= COVERAGE[1]
    # the exact coverage at this (p, n), summed over all outcomes, is 0.9466
    ks = np.arange(n + 1)
    hit = [low <= p <= high for low, high in (intervals.wilson(int(k), n) for k in ks)]
    assert float(stats.binom.pmf(ks, n, p) @ np.array(hit)) == pytest.approx(0.9466, abs=1e-4)


# ------------------------------------------------------------------------------------------------------ bootstrap


def test_bootstrap_interval_is_the_percentiles_of_the_documented_resamples():
    """The documented recipe, redone with numpy: seeded index matrix, statistic per row, linear percentiles."""
    gen = np.random.default_rng(1)
    x, w = gen.normal(size=300), gen.uniform(0.5, 2.0, size=300)
    index = torch.randint(300, (700, 300), generator=torch.Generator().manual_seed(5)).numpy()
    means = (x[index] * w[index]).sum(1) / w[index].sum(1)
    expected = np.percentile(means, [5.0, 95.0], method="linear")

    def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return (values * weights).sum(-1) / weights.sum(-1)

    got = bootstrap_interval(weighted_mean, (x, torch.from_numpy(w)), confidence=0.9, resamples=700, seed=5)
    assert got == pytest.approx(tuple(expected), abs=1e-12)


SCIPY_N, SCIPY_RESAMPLES = 400, 20_000


@pytest.fixture(scope="module")
def scipy_reference() -> tuple[np.ndarray, tuple[float, float], float]:
    """n = 400 standard normal draws, scipy's percentile interval of their mean and the tolerance of a comparison.

    The two bootstraps use different RNGs, so their endpoints differ by Monte-Carlo error only. A bootstrap
    quantile at level q from B resamples has sd ~ sqrt(q (1 - q) / B) / f(xi_q); the bootstrap distribution of the
    mean is ~ N(mean, se^2) with se = s / sqrt(n), so f(xi_q) = phi(z_q) / se. Two independent runs differ with sd
    sqrt(2) times that: 0.027 se at B = 20000, and the tolerance is 5 of those sd (0.13 se, 0.0067 s). Moving a
    quantile from 2.5% to 5% shifts the endpoint by (1.960 - 1.645) se = 0.31 se, 12 sd: well outside."""
    x = np.random.default_rng(2).normal(size=SCIPY_N)
    result = stats.bootstrap(
        (x,), np.mean, method="percentile", confidence_level=0.95, n_resamples=SCIPY_RESAMPLES, rng=3
    )
    q = 0.025
    se = x.std(ddof=1) / math.sqrt(SCIPY_N)
    mc_sd = math.sqrt(2 * q * (1 - q) / SCIPY_RESAMPLES) / stats.norm.pdf(stats.norm.ppf(q)) * se
    ci = result.confidence_interval
    return x, (float(ci.low), float(ci.high)), 5 * mc_sd


def gap_to_scipy(reference: tuple[np.ndarray, tuple[float, float], float]) -> float:
    """Largest endpoint gap between bootstrap_interval and scipy, in units of the Monte-Carlo tolerance."""
    x, expected, tolerance = reference
    got = bootstrap_interval(batched_mean, (torch.from_numpy(x),), resamples=SCIPY_RESAMPLES, seed=4)
    return max(abs(g - e) for g, e in zip(got, expected, strict=True)) / tolerance


def test_bootstrap_interval_agrees_with_scipy(scipy_reference):
    assert gap_to_scipy(scipy_reference) < 1


def test_a_one_sided_bootstrap_is_caught(scipy_reference, monkeypatch):
    """Planted bug: only the lower quantile moved (to 1 - c, as for a one-sided bound); scipy disagrees."""

    def moved_lower(distribution: torch.Tensor, confidence: float) -> tuple[float, float]:
        levels = torch.tensor([1 - confidence, (1 + confidence) / 2], dtype=torch.float64)
        low, high = torch.quantile(distribution, levels).tolist()
        return low, high

    monkeypatch.setattr(intervals, "_percentile_interval", moved_lower)
    assert gap_to_scipy(scipy_reference) > 1


def test_bootstrap_interval_is_reproducible_from_its_seed():
    x = torch.randn(150, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    first = bootstrap_interval(batched_mean, (x,), seed=7)
    assert bootstrap_interval(batched_mean, (x,), seed=7) == first
    assert bootstrap_interval(batched_mean, (x.numpy(),), seed=7) == first
    assert bootstrap_interval(batched_mean, (x,), seed=8) != first


def test_a_constant_statistic_has_a_zero_width_interval():
    x = torch.randn(50, generator=torch.Generator().manual_seed(0))
    assert bootstrap_interval(lambda v: torch.full((v.shape[0],), 3.0), (x,)) == (3.0, 3.0)
    assert bootstrap_interval(batched_mean, (torch.full((50,), 0.25),)) == (0.25, 0.25)


def test_arrays_are_resampled_jointly():
    """mean(x) - mean(y) with y == x is 0 on every resample only if both arrays take the same indices."""
    x = torch.randn(80, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert bootstrap_interval(lambda u, v: batched_mean(u) - batched_mean(v), (x, x.clone())) == (0.0, 0.0)


def test_bootstrap_interval_refuses_bad_input():
    x = torch.randn(20)
    with pytest.raises(ValueError, match="shape"):
        bootstrap_interval(lambda v: v.mean(dim=0), (x,))  # reduced over the batch, not the examples
    with pytest.raises(ValueError, match="equal lengths"):
        bootstrap_interval(lambda u, v: batched_mean(u), (x, torch.randn(21)))
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_interval(batched_mean, (x,), resamples=0)
    assert all(math.isnan(v) for v in bootstrap_interval(batched_mean, (torch.zeros(0),)))


def test_bootstrap_coverage_of_a_mean():
    n, resamples = 200, 400
    data = torch.randn(DRAWS, n, generator=torch.Generator().manual_seed(11), dtype=torch.float64) + 1.5
    bounds = [bootstrap_interval(batched_mean, (row,), resamples=resamples, seed=i) for i, row in enumerate(data)]
    assert COVERAGE[0] <= coverage(bounds, 1.5) <= COVERAGE[1]


# ------------------------------------------------------------------------------------------------ paired compare


def test_mcnemar_matches_statsmodels():
    gen = np.random.default_rng(3)
    tables = [(5, 0, 0, 7), (5, 3, 3, 7), (0, 1, 0, 0), (40, 12, 2, 30), (10, 0, 9, 1)]
    tables += [tuple(int(c) for c in gen.multinomial(gen.integers(1, 300), gen.dirichlet([1] * 4))) for _ in range(30)]
    for n11, n10, n01, n00 in tables:
        a, b = paired_vectors(n11, n10, n01, n00)
        b01, b10, p = mcnemar_exact(a, b)
        expected = contingency.mcnemar([[n11, n10], [n01, n00]], exact=True).pvalue
        assert (b01, b10) == (n10, n01)
        assert p == pytest.approx(expected, abs=1e-9), (n11, n10, n01, n00)


def test_mcnemar_known_answer():
    """Cavo et al. (2012), as printed by the tests of R contingencytables: exact conditional P = 0.052479."""
    a, b = paired_vectors(59, 16, 6, 80)
    assert mcnemar_exact(torch.from_numpy(a), torch.from_numpy(b)) == (16, 6, pytest.approx(0.052479, abs=1e-6))
    assert mcnemar_exact([True, False], [True, False]) == (0, 0, 1.0)


def test_unpaired_counts_are_refused():
    """Planted bug: correctness vectors of two different example sets (different lengths) are not paired."""
    with pytest.raises(ValueError, match="one length"):
        mcnemar_exact(np.ones(100, bool), np.ones(99, bool))
    with pytest.raises(ValueError, match="one length"):
        paired_difference_interval(np.ones(100, bool), np.ones(99, bool))
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap(batched_mean, (torch.ones(100),), (torch.ones(99),))
    with pytest.raises(ValueError, match="booleans"):
        mcnemar_exact(np.array([0, 1, 2]), np.array([0, 1, 1]))  # predictions, not correctness


def newcombe_reference(n11: int, n10: int, n01: int, n00: int, confidence: float) -> tuple[float, float, float]:
    """Newcombe's method 10 for B - A written from the table, with statsmodels' Wilson limits: B's accuracy is the
    first proportion (rows: B right / wrong; columns: A right / wrong), as in contingencytables."""
    n = n11 + n10 + n01 + n00
    table = np.array([[n11, n01], [n10, n00]])  # [B right, B wrong] x [A right, A wrong]
    rows, cols = table.sum(1), table.sum(0)
    p1, p2 = rows[0] / n, cols[0] / n
    l1, u1 = proportion.proportion_confint(rows[0], n, alpha=1 - confidence, method="wilson")
    l2, u2 = proportion.proportion_confint(cols[0], n, alpha=1 - confidence, method="wilson")
    det = table[0, 0] * table[1, 1] - table[0, 1] * table[1, 0]
    psi = 0.0
    if np.prod(rows) * np.prod(cols) > 0 and not 0 <= det <= n / 2:
        psi = (det - n / 2 if det > 0 else det) / math.sqrt(np.prod(rows) * np.prod(cols))
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * psi * (p1 - l1) * (u2 - p2))
    high = p1 - p2 + math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * psi * (p2 - l2) * (u1 - p1))
    return p1 - p2, low, high


def test_paired_difference_known_answer():
    """Cavo et al. (2012) in R contingencytables' tests: estimate -0.0621, 95% CI -0.1186 to -0.0046."""
    difference, low, high = paired_difference_interval(*paired_vectors(59, 16, 6, 80))
    assert (difference, low, high) == pytest.approx((-0.0621, -0.1186, -0.0046), abs=5e-5)


def test_paired_difference_matches_the_formula_written_independently():
    gen = np.random.default_rng(4)
    # phi branches: det > n/2, 0 <= det <= n/2, det < 0, an empty margin, no discordant pairs
    tables = [(59, 16, 6, 80), (10, 10, 10, 10), (2, 30, 25, 3), (0, 12, 8, 0), (30, 5, 0, 0), (20, 0, 0, 5)]
    tables += [tuple(int(c) for c in gen.multinomial(gen.integers(1, 400), gen.dirichlet([1] * 4))) for _ in range(40)]
    for table in tables:
        for confidence in (0.9, 0.95):
            got = paired_difference_interval(*paired_vectors(*table), confidence=confidence)
            assert got == pytest.approx(newcombe_reference(*table, confidence), abs=1e-12), table
            swapped = paired_difference_interval(*paired_vectors(*table)[::-1], confidence=confidence)
            assert swapped == pytest.approx((-got[0], -got[2], -got[1]), abs=1e-12)


def test_paired_difference_coverage():
    probs = (0.55, 0.12, 0.18, 0.15)  # both right, A only, B only, neither: B - A = 0.18 - 0.12
    counts = np.random.default_rng(5).multinomial(200, probs, size=DRAWS)
    bounds = [paired_difference_interval(*paired_vectors(*row))[1:] for row in counts]
    assert COVERAGE[0] <= coverage(bounds, 0.06) <= COVERAGE[1]


def accuracy(correct: torch.Tensor) -> torch.Tensor:
    return correct.to(torch.float64).mean(-1)


def test_paired_bootstrap_is_the_bootstrap_of_the_difference():
    a, b = (torch.from_numpy(v) for v in paired_vectors(300, 40, 55, 105))
    difference, low, high, p = paired_bootstrap(accuracy, (a,), (b,), confidence=0.9, resamples=800, seed=2)
    assert difference == pytest.approx((55 - 40) / 500, abs=1e-15)
    joint = bootstrap_interval(lambda u, v: accuracy(v) - accuracy(u), (a, b), confidence=0.9, resamples=800, seed=2)
    assert (low, high) == pytest.approx(joint, abs=1e-15)
    index = torch.randint(500, (800, 500), generator=torch.Generator().manual_seed(2))
    d = (b[index].double().mean(1) - a[index].double().mean(1)).numpy()
    assert p == pytest.approx(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))), abs=1e-15)
    assert 0 < p < 1


def test_paired_bootstrap_of_identical_and_of_clearly_different_models():
    a, _ = paired_vectors(300, 40, 55, 105)
    assert paired_bootstrap(accuracy, (a,), (a.copy(),)) == (0.0, 0.0, 0.0, 1.0)
    difference, low, high, p = paired_bootstrap(accuracy, (a,), (np.ones_like(a),))
    assert difference == pytest.approx(1 - 340 / 500) and 0 < low < high and p == 0.0
    assert verdict(difference, low, high, p, higher_is_better=True) == "better"


# ---------------------------------------------------------------------------------------------- holm, seeds, verdict


def test_holm_matches_statsmodels():
    gen = np.random.default_rng(6)
    cases = [[0.01], [0.01, 0.04, 0.03, 0.5], [0.02, 0.02, 0.02], [0.9, 0.6, 0.001, 1.0], [0.3] * 5]
    cases += [list(gen.uniform(size=m) ** 3) for m in (2, 6, 13, 40)]  # statsmodels takes ~0.1 s a call
    for p in cases:
        assert holm(p) == pytest.approx(list(multitest.multipletests(p, method="holm")[1]), abs=1e-12)
    assert holm([]) == []


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_t_interval_matches_scipy(confidence):
    gen = np.random.default_rng(7)
    for n in (2, 3, 5, 10):
        x = gen.normal(0.7, 0.1, size=n)
        mean, sd, low, high = t_interval(list(x), confidence)
        assert (mean, sd) == pytest.approx((x.mean(), x.std(ddof=1)), abs=1e-12)
        expected = stats.t.interval(confidence, n - 1, loc=x.mean(), scale=stats.sem(x))
        assert (low, high) == pytest.approx(expected, abs=1e-9)


def test_t_interval_needs_two_values():
    assert t_interval([0.8])[0] == 0.8 and all(math.isnan(v) for v in t_interval([0.8])[1:])
    assert all(math.isnan(v) for v in t_interval([]))


def test_t_interval_coverage():
    data = np.random.default_rng(8).normal(2.0, 3.0, size=(DRAWS, 5))
    assert COVERAGE[0] <= coverage([t_interval(row)[2:] for row in data], 2.0) <= COVERAGE[1]


def test_welch_matches_scipy():
    gen = np.random.default_rng(9)
    for na, nb in ((2, 2), (3, 5), (5, 5), (8, 3)):
        a, b = gen.normal(0.6, 0.05, size=na), gen.normal(0.65, 0.2, size=nb)
        difference, p = welch(list(a), list(b))
        assert difference == pytest.approx(b.mean() - a.mean(), abs=1e-12)
        assert p == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue, abs=1e-9)
    assert math.isnan(welch([0.5], [0.6, 0.7])[1])
    assert math.isnan(welch([0.5, 0.5], [0.6, 0.6])[1])


@pytest.mark.parametrize(
    ("difference", "low", "high", "p", "higher_is_better", "expected"),
    [
        (0.02, 0.01, 0.03, 0.001, True, "better"),
        (0.02, 0.01, 0.03, 0.001, False, "worse"),
        (-0.02, -0.03, -0.01, 0.001, True, "worse"),
        (-0.02, -0.03, -0.01, 0.001, False, "better"),
        (0.02, 0.01, 0.03, 0.05, True, "no detectable difference"),  # not below alpha after adjustment
        (0.02, -0.01, 0.05, 0.001, True, "no detectable difference"),  # interval holds 0
        (0.02, 0.01, 0.03, math.nan, True, "no detectable difference"),
        (0.02, 0.01, 0.03, 0.001, None, "not judged"),
    ],
)
def test_verdict(difference, low, high, p, higher_is_better, expected):
    assert verdict(difference, low, high, p, higher_is_better) == expected


def test_a_confidence_outside_the_unit_interval_is_refused():
    a = np.ones(10, bool)
    calls = [
        lambda c: intervals.wilson(3, 10, c),
        lambda c: bootstrap_interval(batched_mean, (torch.ones(10),), confidence=c),
        lambda c: paired_bootstrap(batched_mean, (torch.ones(10),), (torch.ones(10),), confidence=c),
        lambda c: paired_difference_interval(a, a, c),
        lambda c: t_interval([1.0, 2.0], c),
    ]
    for call in calls:
        for confidence in (0.0, 1.0, 95):
            with pytest.raises(ValueError, match="confidence"):
                call(confidence)
