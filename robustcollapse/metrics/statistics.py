"""Batched statistics: each takes per-example arrays of shape (R, n), R resamples of the same examples, and returns
the statistic of every row, (R,) (`ood`: (R, 4)). At R = 1 each equals its one-sample function in `calibration`,
`ood` and `reliability` (the tests hold them to it), so an interval bootstrapped with them is the interval of the
number the test reports.

`proportion`, `mean`; `ece:B`, `mce:B` (B equal-width bins), `aece:B` (equal-mass bins), `cwece:B` (classwise: K
probability arrays then the labels), `ece_mean:B` (the mean ECE of cells on the same examples: their (confidence,
correctness) pairs in turn); `rel_drop`; `aurc`; the two-group OOD metrics `auroc`, `aupr_in`, `aupr_out`, `fpr95`
(OOD positive, a higher score more OOD) and `ood_mean:<metric>` (their mean over sets: the sets' in-distribution
arrays, then their OOD arrays)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from robustcollapse.metrics.intervals import batched_mean

OOD_STATISTICS = ("auroc", "aupr_in", "aupr_out", "fpr95")


def _binned(conf: torch.Tensor, hit: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row and equal-width bin (bin b holds (b/B, (b+1)/B]): the sum of hit - conf and the count."""
    conf = conf.to(torch.float64)
    index = (torch.ceil(conf * bins) - 1).clamp(0, bins - 1).long()
    gaps = torch.zeros(conf.shape[0], bins, dtype=torch.float64, device=conf.device)
    counts = torch.zeros_like(gaps)
    gaps.scatter_add_(1, index, hit.to(torch.float64) - conf)
    counts.scatter_add_(1, index, torch.ones_like(conf))
    return gaps, counts


def _ece(bins: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def statistic(conf: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
        gaps, _ = _binned(conf, hit, bins)
        return gaps.abs().sum(-1) / conf.shape[-1]

    return statistic


def _mce(bins: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def statistic(conf: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
        gaps, counts = _binned(conf, hit, bins)
        return torch.where(counts > 0, gaps.abs() / counts.clamp_min(1), 0).max(dim=-1).values

    return statistic


def _aece(bins: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per row, the edges are the row's confidence quantiles i/B (linear interpolation, as torch.quantile) and a
    confidence goes to the first bin whose upper edge it does not exceed; tied edges leave empty bins, which add
    nothing, so the value equals `calibration.adaptive_ece` (which drops them)."""

    def statistic(conf: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
        conf = conf.to(torch.float64)
        n = conf.shape[-1]
        ordered = conf.sort(dim=-1).values
        position = torch.arange(1, bins, dtype=torch.float64, device=conf.device) / bins * (n - 1)
        below = position.floor().long()
        above = (below + 1).clamp(max=n - 1)
        frac = position - below
        lo, hi = ordered[..., below], ordered[..., above]
        edges = (lo + frac * (hi - lo)).contiguous()
        index = torch.searchsorted(edges, conf.contiguous(), right=False)
        gaps = torch.zeros(conf.shape[0], bins, dtype=torch.float64, device=conf.device)
        gaps.scatter_add_(1, index, hit.to(torch.float64) - conf)
        return gaps.abs().sum(-1) / n

    return statistic


def _cwece(bins: int) -> Callable[..., torch.Tensor]:
    def statistic(*arrays: torch.Tensor) -> torch.Tensor:
        *probs, label = arrays
        each = [_ece(bins)(p, label == k) for k, p in enumerate(probs)]
        return torch.stack(each).mean(0)

    return statistic


def _ece_mean(bins: int) -> Callable[..., torch.Tensor]:
    def statistic(*arrays: torch.Tensor) -> torch.Tensor:
        cells = [_ece(bins)(arrays[i], arrays[i + 1]) for i in range(0, len(arrays), 2)]
        return torch.stack(cells).mean(0)

    return statistic


def _ood_means(*arrays: torch.Tensor) -> torch.Tensor:
    """The four OOD metrics' means over sets, (R, 4): the sets' in-distribution scores, then their OOD scores."""
    sets = len(arrays) // 2
    pairs = zip(arrays[:sets], arrays[sets:], strict=True)
    return torch.stack([_ood_all(i, o) for i, o in pairs]).mean(0)


def _ood_mean(column: int) -> Callable[..., torch.Tensor]:
    return lambda *arrays: _ood_means(*arrays)[..., column]


def _aurc(confidence: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(confidence.to(torch.float64), dim=-1, descending=True, stable=True)
    errors = (~correct.bool()).gather(-1, order).to(torch.float64)
    k = torch.arange(1, errors.shape[-1] + 1, dtype=torch.float64, device=errors.device)
    return (errors.cumsum(-1) / k).mean(-1)


def _relative_drop(clean: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
    base = batched_mean(clean)
    return torch.where(base > 0, (base - batched_mean(shifted)) / base.clamp_min(1e-300), 0.0)


def _ood_all(id_scores: torch.Tensor, ood_scores: torch.Tensor) -> torch.Tensor:
    """AUROC, AUPR-In, AUPR-Out and FPR@95 (columns in `OOD_STATISTICS` order) of each row, from one sort.

    AUROC is the Mann-Whitney form (ID below plus half the tied ID, over n_id * n_ood); AUPR the mean over the
    positives of the precision at their score (scikit-learn's step-wise average precision); FPR@95 the fraction of
    ID scores >= the k-th largest OOD score, k = ceil(0.95 * n_ood). With the scores of a row sorted, cumulative
    counts of OOD examples up to a position give every count a threshold needs; ties (`_tied_counts`) are counted
    in full, as a threshold at that score counts them."""
    n_id, n_ood = id_scores.shape[-1], ood_scores.shape[-1]
    n = n_id + n_ood
    ordered, order = torch.cat([id_scores, ood_scores], dim=-1).sort(dim=-1)
    is_ood = order >= n_id  # the sorted positions that hold OOD examples
    label = is_ood.to(torch.float64)
    ood_before = label.cumsum(-1) - label
    k = math.ceil(0.95 * n_ood - 1e-9)
    if not bool((ordered[..., 1:] != ordered[..., :-1]).all()):
        return _tied_counts(ordered, is_ood, n_id, k)
    index = torch.arange(n, device=ordered.device, dtype=torch.float64)
    auroc = ((label * index).sum(-1) - n_ood * (n_ood - 1) / 2) / (n_id * n_ood)  # the OOD examples' rank sum
    aupr_out = (label * (n_ood - ood_before) / (n - index)).sum(-1) / n_ood
    aupr_in = ((1 - label) * (index + 1 - ood_before - label) / (index + 1)).sum(-1) / n_id
    threshold = is_ood & (n_ood - ood_before == k)  # the k-th largest OOD score: ID above it = n - j - k
    fpr = ((n - index - k) * threshold).sum(-1) / n_id
    return torch.stack([auroc, aupr_in, aupr_out, fpr], dim=-1)


def _tied_counts(ordered: torch.Tensor, is_ood: torch.Tensor, n_id: int, k: int) -> torch.Tensor:
    """`_ood_all` for rows with tied scores: for each example, `start` and `end` are the first and last positions
    of its run of equal scores, and the counts are taken at the run's edges (AUROC from mid-ranks)."""
    n = ordered.shape[-1]
    n_ood = n - n_id
    index = torch.arange(n, device=ordered.device).expand_as(ordered)
    first = torch.ones_like(is_ood)
    first[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    last = torch.ones_like(first)
    last[..., :-1] = first[..., 1:]
    start = torch.where(first, index, 0).cummax(dim=-1).values
    end = torch.where(last, index, n).flip(-1).cummin(dim=-1).values.flip(-1)
    label = is_ood.to(torch.float64)
    ood_upto = torch.cat([torch.zeros_like(label[..., :1]), label.cumsum(-1)], dim=-1)  # OOD in positions < i
    ood_below, ood_through = ood_upto.gather(-1, start), ood_upto.gather(-1, end + 1)
    first_pos, last_pos = start.to(torch.float64), end.to(torch.float64)
    midrank = (first_pos + last_pos) / 2 + 1
    auroc = ((label * midrank).sum(-1) - n_ood * (n_ood + 1) / 2) / (n_id * n_ood)
    aupr_out = (label * (n_ood - ood_below) / (n - first_pos)).sum(-1) / n_ood
    aupr_in = ((1 - label) * (last_pos + 1 - ood_through) / (last_pos + 1)).sum(-1) / n_id
    id_below = first_pos - ood_below
    catching = is_ood & (n_ood - ood_below >= k)  # thresholds at these OOD scores catch >= k of the OOD
    fpr = torch.where(catching, n_id - id_below, float(n_id)).min(dim=-1).values / n_id
    return torch.stack([auroc, aupr_in, aupr_out, fpr], dim=-1)


def statistic_of(name: str) -> Callable[..., torch.Tensor]:
    """The batched statistic called `name`."""
    if name in ("proportion", "mean"):
        return batched_mean
    if name.startswith("ece:"):
        return _ece(int(name.split(":", 1)[1]))
    if name.startswith("mce:"):
        return _mce(int(name.split(":", 1)[1]))
    if name == "rel_drop":
        return _relative_drop
    if name == "aurc":
        return _aurc
    kind, _, arg = name.partition(":")
    if kind in ("aece", "cwece", "ece_mean"):
        return {"aece": _aece, "cwece": _cwece, "ece_mean": _ece_mean}[kind](int(arg))
    if kind == "ood_mean":
        return _ood_mean(OOD_STATISTICS.index(arg)) if arg else _ood_means
    if name == "ood":
        return _ood_all
    if name not in OOD_STATISTICS:
        raise ValueError(f"unknown statistic {name!r}")
    column = OOD_STATISTICS.index(name)
    return lambda id_scores, ood_scores: _ood_all(id_scores, ood_scores)[..., column]
