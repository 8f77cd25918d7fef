"""The per-example evidence behind a metric: what its interval is computed from, and what two models scored on the
same examples are compared on.

A test kind gives each metric it can put an interval on a `Sample`: the name of a batched statistic and the names of
the per-example arrays it is computed from (in the test's pool of arrays, so arrays shared by several metrics, e.g.
the OOD scores behind AUROC, AUPR and FPR@95, are stored once). The arrays of a group are resampled jointly (an
accuracy: one correctness bit per example; ECE: confidence and correctness per example); several groups are
resampled each on its own (an OOD metric: the in-distribution and the OOD examples, a stratified bootstrap).
The document stores the pool compactly (bits as hex, floats as base64 float32) under `samples`.

The batched statistics themselves are in `statistics.py`."""

from __future__ import annotations

import base64
import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robustcollapse.metrics.intervals import (
    bootstrap_distribution,
    mcnemar_exact,
    paired_difference_interval,
    paired_summary,
    percentiles,
    wilson,
)
from robustcollapse.metrics.statistics import OOD_STATISTICS, statistic_of

RESAMPLES = 1000  # bootstrap resamples per interval: the percentile endpoints move by ~1% of the width between seeds


@dataclass(frozen=True)
class Sample:
    """A metric's statistic and the pool arrays it is computed from, per independently resampled group."""

    statistic: str
    groups: tuple[tuple[str, ...], ...]

    def record(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "groups": [list(g) for g in self.groups]}

    @staticmethod
    def read(record: dict[str, Any]) -> Sample:
        return Sample(record["statistic"], tuple(tuple(g) for g in record["groups"]))


def proportion(name: str) -> Sample:
    """An accuracy-like metric: the mean of the 0/1 outcomes in pool array `name`."""
    return Sample("proportion", ((name,),))


def mean(name: str) -> Sample:
    """The mean of the per-example values in pool array `name`."""
    return Sample("mean", ((name,),))


def ece(conf: str, hit: str, bins: int) -> Sample:
    """Equal-width-bin ECE of per-example confidences and correctness."""
    return Sample(f"ece:{bins}", ((conf, hit),))


def mce(conf: str, hit: str, bins: int) -> Sample:
    """Maximum calibration error: the largest |accuracy - confidence| over the non-empty equal-width bins."""
    return Sample(f"mce:{bins}", ((conf, hit),))


def adaptive_ece(conf: str, hit: str, bins: int) -> Sample:
    """ECE over B equal-mass bins (edges at the confidence quantiles, as `calibration.adaptive_ece`)."""
    return Sample(f"aece:{bins}", ((conf, hit),))


def classwise_ece(probs: list[str], label: str, bins: int) -> Sample:
    """Mean over the K classes of the equal-width ECE of p_k against 1[y = k]: the K per-class probability arrays
    and the label array (as float), resampled jointly."""
    return Sample(f"cwece:{bins}", ((*probs, label),))


def mean_ece(pairs: list[tuple[str, str]], bins: int) -> Sample:
    """The mean ECE of several cells scored on the same examples (a corruption group's mean ECE): each cell's
    (confidence, correctness) arrays, resampled jointly since every cell holds the same images."""
    return Sample(f"ece_mean:{bins}", (tuple(name for pair in pairs for name in pair),))


def risk_coverage_area(confidence: str, correct: str) -> Sample:
    """AURC: the mean over k of the error rate of the k most confident examples (`reliability.aurc`)."""
    return Sample("aurc", ((confidence, correct),))


def relative_drop(clean: str, shifted: str) -> Sample:
    """(mean(clean) - mean(shifted)) / mean(clean) of two per-example arrays of the same examples (0 when the
    clean mean is 0, as the corruption test writes it)."""
    return Sample("rel_drop", ((clean, shifted),))


def ood(statistic: str, id_scores: str, ood_scores: str) -> Sample:
    """An OOD detection metric of the in-distribution and OOD scores (two groups, resampled apart)."""
    if statistic not in OOD_STATISTICS:
        raise ValueError(f"unknown OOD statistic {statistic!r}")
    return Sample(statistic, ((id_scores,), (ood_scores,)))


def ood_mean(statistic: str, pairs: list[tuple[str, str]]) -> Sample:
    """The mean of an OOD metric over several OOD sets scored against the same in-distribution examples (the near-
    and far-OOD means), from each set's (in-distribution, OOD) score arrays: the in-distribution arrays form one
    group, resampled jointly (the same examples under every set), each set's OOD scores a group of its own."""
    if statistic not in OOD_STATISTICS:
        raise ValueError(f"unknown OOD statistic {statistic!r}")
    return Sample(f"ood_mean:{statistic}", (tuple(i for i, _ in pairs), *((o,) for _, o in pairs)))


# ------------------------------------------------------------------------------------------------ the pool


def encode(array: torch.Tensor) -> dict[str, Any]:
    """A 1-D array for the document: booleans as hex bits (8 a byte), anything else as base64 float32."""
    values = array.detach().cpu()
    if values.dtype == torch.bool:
        return {"n": values.numel(), "bits": np.packbits(values.numpy()).tobytes().hex()}
    data = values.to(torch.float32).numpy().astype("<f4").tobytes()
    return {"n": values.numel(), "f32": base64.b64encode(data).decode("ascii")}


def decode(record: dict[str, Any]) -> torch.Tensor:
    """The array `encode` wrote."""
    n = int(record["n"])
    if "bits" in record:
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(record["bits"]), dtype=np.uint8))[:n]
        return torch.from_numpy(bits.astype(bool))
    return torch.from_numpy(np.frombuffer(base64.b64decode(record["f32"]), dtype="<f4")[:n].copy())


def size(sample: Sample, pool: dict[str, torch.Tensor]) -> int:
    """The number of examples the metric rests on (all groups together)."""
    return sum(int(pool[group[0]].numel()) for group in sample.groups)


# Bootstrap distributions by (statistic, seed, resamples, the arrays' bytes): a model's distribution, drawn for its
# interval, is reused when it is compared with another model in the same process. The paired bootstrap of B - A
# draws exactly the same resamples as each model's own (one seeded generator, the same group sizes), so its
# distribution is B's minus A's: comparisons cost no new resampling. Bounded, oldest dropped first.
_DISTRIBUTIONS: OrderedDict[tuple[Any, ...], torch.Tensor] = OrderedDict()
_CACHED = 4096


def _fingerprint(array: torch.Tensor) -> tuple[Any, ...]:
    data = array.detach().cpu().contiguous()
    return str(data.dtype), tuple(data.shape), hashlib.blake2b(data.numpy().tobytes(), digest_size=16).digest()


def _distribution(statistic: str, arrays: list[list[torch.Tensor]], seed: int) -> torch.Tensor | None:
    """The bootstrap distribution of `statistic` over `arrays` (its groups), from the cache when drawn before. The
    near/far OOD means share one: `ood_mean:<metric>` is a column of `ood_mean` (all four metrics, one sort per set
    and resample), so AUROC's and FPR@95's means of a detector cost one bootstrap."""
    kind, _, metric = statistic.partition(":")
    if kind == "ood_mean" and metric:
        every = _distribution("ood_mean", arrays, seed)
        return None if every is None else every[:, OOD_STATISTICS.index(metric)]
    key = (statistic, seed, RESAMPLES, tuple(_fingerprint(t) for group in arrays for t in group))
    if key in _DISTRIBUTIONS:
        _DISTRIBUTIONS.move_to_end(key)
        return _DISTRIBUTIONS[key]
    found = bootstrap_distribution(statistic_of(statistic), arrays, RESAMPLES, seed)
    if found is not None:
        _DISTRIBUTIONS[key] = found
        while len(_DISTRIBUTIONS) > _CACHED:
            _DISTRIBUTIONS.popitem(last=False)
    return found


def _arrays(sample: Sample, pool: dict[str, torch.Tensor]) -> list[list[torch.Tensor]]:
    return [[pool[name] for name in group] for group in sample.groups]


def _bounds(distribution: torch.Tensor | None, confidence: float, columns: int | None = None) -> Any:
    """`intervals.percentiles` of a distribution as (low, high), or a list of them for `columns` statistics."""
    if distribution is None:
        return (math.nan, math.nan) if columns is None else [(math.nan, math.nan)] * columns
    found = percentiles(distribution, confidence)
    return tuple(found.tolist()) if columns is None else [tuple(b) for b in found.T.tolist()]


def interval(sample: Sample, pool: dict[str, torch.Tensor], confidence: float, seed: int) -> tuple[float, float]:
    """The metric's interval: Wilson for a proportion, the seeded percentile bootstrap otherwise (the same bounds
    as `intervals.bootstrap_interval` with RESAMPLES resamples)."""
    if sample.statistic == "proportion":
        hits = pool[sample.groups[0][0]]
        return wilson(int(hits.sum()), int(hits.numel()), confidence)
    return _bounds(_distribution(sample.statistic, _arrays(sample, pool), seed), confidence)


def _ood_batches(evidence: dict[str, Sample]) -> dict[tuple[tuple[str, ...], ...], list[str]]:
    """The OOD metrics grouped by the arrays they share: one bootstrap (one sort per resample) serves all four."""
    batches: dict[tuple[tuple[str, ...], ...], list[str]] = {}
    for key, sample in evidence.items():
        if sample.statistic in OOD_STATISTICS:
            batches.setdefault(sample.groups, []).append(key)
    return batches


def intervals(
    evidence: dict[str, Sample], pool: dict[str, torch.Tensor], confidence: float, seed: int
) -> dict[str, tuple[float, float]]:
    """`interval` of every key, the OOD metrics of one (set, detector) from one shared bootstrap (the same
    resamples `interval` would draw for each alone, so the same bounds)."""
    batches = _ood_batches(evidence)
    batched = {key for keys in batches.values() for key in keys}
    out = {key: interval(s, pool, confidence, seed) for key, s in evidence.items() if key not in batched}
    for keys in batches.values():
        arrays = _arrays(evidence[keys[0]], pool)
        bounds = _bounds(_distribution("ood", arrays, seed), confidence, len(OOD_STATISTICS))
        out |= {key: bounds[OOD_STATISTICS.index(evidence[key].statistic)] for key in keys}
    return {key: out[key] for key in evidence}


@dataclass
class Comparison:
    """B - A on one metric, on the same examples: the difference, its interval, the p-value and how it was found."""

    difference: float
    low: float
    high: float
    p: float
    method: str
    n: int

    def record(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "interval": [self.low, self.high],
            "p": self.p,
            "method": self.method,
            "n": self.n,
        }


def _paired_distributions(
    statistic: str, a: list[list[torch.Tensor]], b: list[list[torch.Tensor]], seed: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The point difference statistic(B) - statistic(A) and the paired bootstrap distribution of it (B's
    distribution minus A's: the same resamples)."""
    a_dist, b_dist = _distribution(statistic, a, seed), _distribution(statistic, b, seed)
    if a_dist is None or b_dist is None:
        return None
    function = statistic_of(statistic)
    point = function(*(t[None] for g in b for t in g))[0] - function(*(t[None] for g in a for t in g))[0]
    return point.to(torch.float64), b_dist - a_dist


def paired(
    sample: Sample,
    a_pool: dict[str, torch.Tensor],
    b_sample: Sample,
    b_pool: dict[str, torch.Tensor],
    confidence: float,
    seed: int,
) -> Comparison | None:
    """Model B against model A on one metric, paired on the examples both were scored on; None when the two were
    not scored on the same examples (another statistic or other counts: nothing to pair). Proportions: exact
    McNemar and Newcombe's interval; others: the paired bootstrap (`intervals.paired_bootstrap`'s numbers)."""
    if sample != b_sample or not _same_sizes(sample, a_pool, b_pool):
        return None
    n = size(sample, a_pool)
    if sample.statistic == "proportion":
        a_hits, b_hits = a_pool[sample.groups[0][0]], b_pool[sample.groups[0][0]]
        _, _, p = mcnemar_exact(a_hits, b_hits)
        difference, low, high = paired_difference_interval(a_hits, b_hits, confidence)
        return Comparison(difference, low, high, p, "McNemar exact, Newcombe interval", n)
    found = _paired_distributions(sample.statistic, _arrays(sample, a_pool), _arrays(sample, b_pool), seed)
    if found is None:
        return Comparison(math.nan, math.nan, math.nan, math.nan, "paired bootstrap", n)
    return Comparison(*paired_summary(float(found[0]), found[1], confidence), "paired bootstrap", n)


def paired_all(
    a_evidence: dict[str, Sample],
    a_pool: dict[str, torch.Tensor],
    b_evidence: dict[str, Sample],
    b_pool: dict[str, torch.Tensor],
    confidence: float,
    seed: int,
) -> dict[str, Comparison]:
    """`paired` on every key both models have evidence for (and could be paired), the OOD metrics of one
    (set, detector) from one shared paired bootstrap."""
    common = {
        key: sample
        for key, sample in b_evidence.items()
        if a_evidence.get(key) == sample and _same_sizes(sample, a_pool, b_pool)
    }
    batches = _ood_batches(common)
    batched = {key for keys in batches.values() for key in keys}
    out: dict[str, Comparison] = {}
    for key, sample in common.items():
        if key not in batched:
            found = paired(a_evidence[key], a_pool, sample, b_pool, confidence, seed)
            if found is not None:
                out[key] = found
    for keys in batches.values():
        sample = common[keys[0]]
        found = _paired_distributions("ood", _arrays(sample, a_pool), _arrays(sample, b_pool), seed)
        for key in keys:
            j = OOD_STATISTICS.index(common[key].statistic)
            summary = paired_summary(float(found[0][j]), found[1][:, j], confidence) if found else (math.nan,) * 4
            out[key] = Comparison(*summary, "paired bootstrap", size(sample, a_pool))
    return {key: out[key] for key in b_evidence if key in out}


def _same_sizes(sample: Sample, a_pool: dict[str, torch.Tensor], b_pool: dict[str, torch.Tensor]) -> bool:
    return all(a_pool[name].numel() == b_pool[name].numel() for group in sample.groups for name in group)
