"""Uncertainty for the numbers of a result document: 95% intervals on per-example metrics and paired comparisons
of two models scored on the same examples.

Why these methods: a metric averaged over a test set is a statistic of the examples, so its uncertainty is the
sampling uncertainty over examples. A proportion (accuracy) gets the Wilson score interval, which keeps close to
nominal coverage near 0 and 1 where the Wald interval does not; any other per-example metric gets a seeded
percentile bootstrap over examples. Two models on the same examples are paired, so they are compared on paired
data (exact McNemar test, Newcombe's paired interval, paired bootstrap), which is far more sensitive than treating
them as two independent samples. Runs repeated over seeds are summarised with a Student t interval and compared
with Welch's test; p-values of many comparisons are adjusted with Holm's step-down method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats

ArrayLike = torch.Tensor | np.ndarray
Statistic = Callable[..., torch.Tensor]


def _z(confidence: float) -> float:
    """The two-sided normal quantile z_{(1+c)/2}; a confidence outside (0, 1) is a caller's mistake."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return float(stats.norm.ppf((1 + confidence) / 2))


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion successes / n (the interval of all p whose score test does not
    reject); (nan, nan) when n == 0, since no examples carry no information."""
    z = _z(confidence)
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # at 0 and n successes one end is exactly 0 or 1; centre -/+ half would put it there only up to rounding
    return (0.0 if successes == 0 else centre - half), (1.0 if successes == n else centre + half)


def batched_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean over the last (example) dimension in float64: the statistic of a per-example metric averaged over the
    test set, in the batched form `bootstrap_interval` calls."""
    return values.to(torch.float64).mean(dim=-1)


def _as_tensors(arrays: Sequence[ArrayLike]) -> tuple[list[torch.Tensor], int]:
    """The arrays as 1-D tensors and their common length n; unequal lengths cannot be resampled jointly."""
    tensors = [torch.as_tensor(a) for a in arrays]
    if not tensors or any(t.dim() != 1 for t in tensors):
        raise ValueError("need at least one array, each 1-D")
    lengths = {t.shape[0] for t in tensors}
    if len(lengths) != 1:
        raise ValueError(f"arrays must have equal lengths, got {sorted(lengths)}")
    return tensors, lengths.pop()


GATHER_BYTES = 1 << 28  # resampled arrays held at once: classwise ECE on CIFAR-100 gathers 101 arrays per resample


def bootstrap_distribution(
    statistic: Statistic, groups: Sequence[Sequence[ArrayLike]], resamples: int, seed: int
) -> torch.Tensor | None:
    """The statistic on `resamples` resamples of the examples, as a float64 (resamples,) tensor; None when a group
    is empty.

    Each group is a list of 1-D arrays of one length n_g, resampled jointly; groups are resampled independently
    (a stratified bootstrap: the in-distribution and the OOD examples of an AUROC keep their counts). For group g
    in turn, `torch.randint(n_g, (resamples, n_g), generator=gen)` from one `torch.Generator().manual_seed(seed)`
    picks the examples of each resample, the same rows for every array of the group, and `statistic` is called on
    all the gathered arrays, in order, each of shape (rows, n_g): once, or on consecutive chunks of the resamples
    when gathering them all would hold more than GATHER_BYTES."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not groups:
        raise ValueError("need at least one group of arrays")
    generator = torch.Generator().manual_seed(seed)
    drawn = []
    for group in groups:
        tensors, n = _as_tensors(group)
        if n == 0:
            return None
        drawn.append((tensors, torch.randint(n, (resamples, n), generator=generator)))
    per_resample = sum(8 * len(tensors) * index.shape[1] for tensors, index in drawn)
    chunk = max(1, min(resamples, GATHER_BYTES // per_resample))
    parts = []
    for start in range(0, resamples, chunk):  # a statistic is row by row: chunks change the memory, not the values
        gathered = [t[index[start : start + chunk].to(t.device)] for tensors, index in drawn for t in tensors]
        part = torch.as_tensor(statistic(*gathered))
        rows = min(chunk, resamples - start)
        if part.dim() not in (1, 2) or part.shape[0] != rows:
            raise ValueError(f"statistic must return shape ({rows},) or ({rows}, k), got {tuple(part.shape)}")
        parts.append(part.detach().to("cpu", torch.float64))
    return torch.cat(parts)


def _percentile_interval(distribution: torch.Tensor, confidence: float) -> tuple[float, float]:
    """The (1-c)/2 and (1+c)/2 quantiles of the bootstrap distribution (torch.quantile, linear interpolation)."""
    low, high = percentiles(distribution, confidence).tolist()
    return low, high


def percentiles(distribution: torch.Tensor, confidence: float) -> torch.Tensor:
    """The (1-c)/2 and (1+c)/2 quantiles of a bootstrap distribution along the resample dimension: shape (2,)
    for a (resamples,) distribution, (2, k) for (resamples, k)."""
    levels = torch.tensor([(1 - confidence) / 2, (1 + confidence) / 2], dtype=torch.float64)
    return torch.quantile(distribution, levels, dim=0, interpolation="linear")


def bootstrap_interval(
    statistic: Statistic,
    arrays: Sequence[ArrayLike],
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    groups: Sequence[Sequence[ArrayLike]] | None = None,
) -> Any:
    """Two-sided percentile bootstrap interval of `statistic` over examples, reproducible from `seed`.

    `arrays` are 1-D tensors or numpy arrays of one length n (one entry per example), resampled jointly: each
    resample takes the same example indices from every array. `statistic(*batched)` receives the arrays with a
    leading batch dimension, shape (resamples, n), and must return a (resamples,) tensor (e.g. `batched_mean`); it
    is called once. The interval is the (1-c)/2 and (1+c)/2 quantiles of the resampled statistic, by torch.quantile
    with linear interpolation. (nan, nan) when n == 0. With `groups` instead (arrays=()), each group is resampled
    on its own (stratified; see `bootstrap_distribution`) and `statistic` gets every group's arrays in order. A
    statistic returning (resamples, k) (k metrics from one resample, e.g. four OOD metrics from one sort) gives a
    list of k intervals."""
    _z(confidence)
    distribution = bootstrap_distribution(statistic, groups or [arrays], resamples, seed)
    if distribution is None:
        return math.nan, math.nan
    if distribution.dim() == 1:
        return _percentile_interval(distribution, confidence)
    return [tuple(bounds) for bounds in percentiles(distribution, confidence).T.tolist()]


def paired_bootstrap(
    statistic: Statistic,
    a_arrays: Sequence[ArrayLike],
    b_arrays: Sequence[ArrayLike],
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    groups: tuple[Sequence[Sequence[ArrayLike]], Sequence[Sequence[ArrayLike]]] | None = None,
) -> Any:
    """Paired bootstrap of statistic(B) - statistic(A) over examples both models were scored on: (difference, low,
    high, p). Each resample takes the same example indices for A's and B's arrays, so the difference keeps the
    pairing. `statistic` is batched as in `bootstrap_interval`; the interval is the percentile interval of the
    resampled differences. p is the two-sided bootstrap p-value 2 * min(P*(d <= 0), P*(d >= 0)) capped at 1, with
    P* the fraction of resamples: about the smallest 1 - confidence at which the percentile interval excludes 0
    (p == 0 means below 1 / resamples). nan throughout when n == 0. With `groups=(A's groups, B's groups)` instead
    (a_arrays = b_arrays = ()), group g of A and of B are resampled together, the groups independently. A statistic
    returning (resamples, k) gives a list of k such tuples."""
    _z(confidence)
    a_groups, b_groups = groups or ([a_arrays], [b_arrays])
    if len(a_groups) != len(b_groups):
        raise ValueError("A and B need the same groups of arrays")
    joint = [[*a, *b] for a, b in zip(a_groups, b_groups, strict=True)]
    sizes = [(len(a), len(b)) for a, b in zip(a_groups, b_groups, strict=True)]

    def split(batched: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        a_part, b_part, i = [], [], 0
        for k_a, k_b in sizes:
            a_part += batched[i : i + k_a]
            b_part += batched[i + k_a : i + k_a + k_b]
            i += k_a + k_b
        return a_part, b_part

    def difference(*batched: torch.Tensor) -> torch.Tensor:
        a_part, b_part = split(batched)
        return statistic(*b_part) - statistic(*a_part)

    distribution = bootstrap_distribution(difference, joint, resamples, seed)
    if distribution is None:
        return math.nan, math.nan, math.nan, math.nan
    point = difference(*(torch.as_tensor(x)[None] for group in joint for x in group))[0]
    if distribution.dim() == 1:
        return paired_summary(float(point), distribution, confidence)
    return [paired_summary(float(point[j]), distribution[:, j], confidence) for j in range(distribution.shape[1])]


def paired_summary(point: float, distribution: torch.Tensor, confidence: float) -> tuple[float, float, float, float]:
    """(difference, low, high, p) of a paired bootstrap from the resampled differences (see `paired_bootstrap`)."""
    low, high = _percentile_interval(distribution, confidence)
    below, above = float((distribution <= 0).double().mean()), float((distribution >= 0).double().mean())
    return point, low, high, min(1.0, 2 * min(below, above))


def _correct_pair(a_correct: ArrayLike | Sequence[bool], b_correct: ArrayLike | Sequence[bool]) -> np.ndarray:
    """The two correctness vectors as a (2, n) bool array; they must be paired (one length) and 0/1 valued."""
    a, b = (np.asarray(torch.as_tensor(x).detach().cpu()) for x in (a_correct, b_correct))
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired correctness vectors must be 1-D of one length, got {a.shape} and {b.shape}")
    if not (np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()):
        raise ValueError("correctness vectors must hold booleans (or 0/1)")
    return np.stack([a.astype(bool), b.astype(bool)])


def mcnemar_exact(
    a_correct: ArrayLike | Sequence[bool], b_correct: ArrayLike | Sequence[bool]
) -> tuple[int, int, float]:
    """Exact McNemar test of equal accuracy for models A and B on the same examples: (b01, b10, p) with b01 = #(A
    right, B wrong), b10 = #(A wrong, B right) and p = min(1, 2 * Binomial(b01 + b10, 1/2).cdf(min(b01, b10))),
    the exact two-sided p-value conditional on the discordant pairs; p = 1 when there are none."""
    a, b = _correct_pair(a_correct, b_correct)
    b01, b10 = int((a & ~b).sum()), int((~a & b).sum())
    if b01 + b10 == 0:
        return b01, b10, 1.0
    return b01, b10, min(1.0, 2 * float(stats.binom.cdf(min(b01, b10), b01 + b10, 0.5)))


def paired_difference_interval(
    a_correct: ArrayLike | Sequence[bool], b_correct: ArrayLike | Sequence[bool], confidence: float = 0.95
) -> tuple[float, float, float]:
    """Accuracy difference B - A on the same examples with Newcombe's square-and-add interval for paired
    proportions (Newcombe 1998, method 10): (difference, low, high); nan throughout when n == 0.

    The Wilson intervals (l_A, u_A), (l_B, u_B) of the two accuracies are combined with phi, the correlation of
    the paired outcomes, in the form of Altman et al. (2000) "Statistics with confidence" and Fagerland, Lydersen
    & Laake (2017), whose R package `contingencytables` implements it: with D = n11*n00 - n10*n01 (n10: A right,
    B wrong), phi = (D - n/2) / sqrt(product of margins) when D > n/2, 0 when 0 <= D <= n/2, D / sqrt(...) when
    D < 0, and 0 when a margin is empty. Then
    low = d - sqrt((p_B - l_B)^2 + (u_A - p_A)^2 - 2 phi (p_B - l_B)(u_A - p_A)),
    high = d + sqrt((u_B - p_B)^2 + (p_A - l_A)^2 - 2 phi (u_B - p_B)(p_A - l_A))."""
    _z(confidence)
    a, b = _correct_pair(a_correct, b_correct)
    n = a.size
    if n == 0:
        return math.nan, math.nan, math.nan
    n11, n10, n01, n00 = (int(x.sum()) for x in (a & b, a & ~b, ~a & b, ~a & ~b))
    p_a, p_b = (n11 + n10) / n, (n11 + n01) / n
    l_a, u_a = wilson(n11 + n10, n, confidence)
    l_b, u_b = wilson(n11 + n01, n, confidence)
    margins = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    cross = n11 * n00 - n10 * n01
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:
        phi = (cross - n / 2 if cross > n / 2 else cross) / math.sqrt(margins)
    difference = p_b - p_a
    low = difference - math.sqrt((p_b - l_b) ** 2 + (u_a - p_a) ** 2 - 2 * phi * (p_b - l_b) * (u_a - p_a))
    high = difference + math.sqrt((u_b - p_b) ** 2 + (p_a - l_a) ** 2 - 2 * phi * (u_b - p_b) * (p_a - l_a))
    return difference, low, high


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest of m becomes the running maximum
    of (m - j + 1) * p_(j) over j <= i, capped at 1. Controls the family-wise error rate of many comparisons
    without assuming independence."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted.tolist()


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, sd with ddof=1, low, high) with the Student t interval mean -/+ t_{(1+c)/2, n-1} sd / sqrt(n) of the
    mean of a few runs (e.g. seeds); with fewer than 2 values the spread is unknown: sd and interval are nan."""
    _z(confidence)
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1)) * sd / math.sqrt(x.size)
    return mean, sd, mean - half, mean + half


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(mean(b) - mean(a), two-sided p) of Welch's unequal-variance t test (see `welch_interval`)."""
    difference, _, _, p, _ = welch_interval(a, b)
    return difference, p


def welch_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float, float, float]:
    """(mean(b) - mean(a), low, high, two-sided p, standard error) of Welch's unequal-variance t test, for runs of
    two models over independent seeds: the interval is difference -/+ t_{(1+c)/2, df} se with Welch-Satterthwaite
    df. Interval, p and se are nan with fewer than 2 values in either group, or no spread in both."""
    _z(confidence)
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    difference = float(y.mean() - x.mean()) if x.size and y.size else math.nan
    if x.size < 2 or y.size < 2:
        return difference, math.nan, math.nan, math.nan, math.nan
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    if va + vb == 0:
        return difference, math.nan, math.nan, math.nan, math.nan
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, df)) * se
    p = float(2 * stats.t.sf(abs(difference) / se, df))
    return difference, difference - half, difference + half, p, se


def verdict(
    difference: float,
    low: float,
    high: float,
    p_adjusted: float,
    higher_is_better: bool | None,
    alpha: float = 0.05,
) -> str:
    """How B compares with A on one metric: "better" or "worse" when the adjusted p-value is below alpha and the
    estimate and its whole interval lie on one side of 0 (the good side for "better"), "no detectable difference"
    otherwise (nan counts as not detected), and "not judged" for a metric without a better direction."""
    if higher_is_better is None:
        return "not judged"
    sign = 1.0 if higher_is_better else -1.0
    if not p_adjusted < alpha:
        return "no detectable difference"
    gains = (sign * difference, sign * low, sign * high)
    if all(g > 0 for g in gains):
        return "better"
    if all(g < 0 for g in gains):
        return "worse"
    return "no detectable difference"
