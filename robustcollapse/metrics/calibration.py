"""Accuracy and calibration from logits: NLL, Brier, ECE, adaptive ECE, MCE, classwise ECE, reliability bins.

Conventions: confidence = max softmax probability; ECE = sum_b (n_b / N) |acc_b - conf_b| over 15 equal-width
bins (0, 1/15], ..., (14/15, 1] (a confidence of exactly 0 falls in the first); adaptive ECE uses 15 bins
of equal mass (edges at confidence quantiles; ties stay together); MCE = max_b |acc_b - conf_b| over
non-empty bins; classwise ECE (Kull et al. 2019) = mean over classes k of the equal-width ECE of p_k against
1[y = k]; Brier = mean over samples of sum_k (p_k - 1[y = k])^2 (range [0, 2]).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from robustcollapse.metrics.spec import MetricSpec, declare

N_BINS = 15


SPECS = declare(
    MetricSpec("*/acc", "accuracy", higher_is_better=True),
    MetricSpec("*_acc", "accuracy", higher_is_better=True),
    MetricSpec("*/error", "error rate", higher_is_better=False),
    MetricSpec("*/nll", "negative log-likelihood", higher_is_better=False, unit="nats"),
    MetricSpec("*/brier", "Brier score", higher_is_better=False),
    MetricSpec("*/ece", "expected calibration error", higher_is_better=False),
    MetricSpec("*/aece", "adaptive (equal-mass) ECE", higher_is_better=False),
    MetricSpec("*/mce", "maximum calibration error", higher_is_better=False),
    MetricSpec("*/cwece", "classwise ECE", higher_is_better=False),
    MetricSpec("*/mean_conf", "mean confidence"),
    MetricSpec("*/temperature", "temperature T (fitted by NLL)"),
)


def _bin_gaps(conf: torch.Tensor, hit: torch.Tensor, bin_index: torch.Tensor, n_bins: int) -> dict[str, torch.Tensor]:
    """Per-bin count, mean confidence and mean accuracy for a given bin assignment."""
    count = torch.zeros(n_bins, dtype=torch.float64, device=conf.device).index_add_(0, bin_index, torch.ones_like(conf))
    conf_sum = torch.zeros_like(count).index_add_(0, bin_index, conf)
    hit_sum = torch.zeros_like(count).index_add_(0, bin_index, hit)
    safe = count.clamp_min(1)
    return {"count": count, "conf": conf_sum / safe, "acc": hit_sum / safe}


def _ece_from_bins(bins: dict[str, torch.Tensor]) -> tuple[float, float]:
    n = bins["count"].sum()
    gap = (bins["acc"] - bins["conf"]).abs()
    ece = float((bins["count"] / n * gap).sum())
    nonempty = bins["count"] > 0
    mce = float(gap[nonempty].max()) if bool(nonempty.any()) else 0.0
    return ece, mce


def equal_width_bins(conf: torch.Tensor, n_bins: int = N_BINS) -> torch.Tensor:
    """Bin index of each confidence for bins (i/n, (i+1)/n]; 0 goes to the first bin."""
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64, device=conf.device)
    return torch.bucketize(conf.contiguous(), edges[1:-1], right=False).clamp(0, n_bins - 1)


def ece(conf: torch.Tensor, hit: torch.Tensor, n_bins: int = N_BINS) -> float:
    """Expected calibration error with equal-width bins (confidence and 0/1 correctness as float64)."""
    conf, hit = conf.double(), hit.double()
    return _ece_from_bins(_bin_gaps(conf, hit, equal_width_bins(conf, n_bins), n_bins))[0]


def adaptive_ece(conf: torch.Tensor, hit: torch.Tensor, n_bins: int = N_BINS) -> float:
    """ECE with equal-mass bins: edges at the confidence quantiles i/n_bins, so tied confidences share a bin."""
    conf, hit = conf.double().contiguous(), hit.double()
    q = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64, device=conf.device)[1:-1]
    edges = torch.unique(torch.quantile(conf, q))
    bin_index = torch.bucketize(conf, edges, right=False)
    return _ece_from_bins(_bin_gaps(conf, hit, bin_index, len(edges) + 1))[0]


def classwise_ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = N_BINS) -> float:
    """Mean over classes of the equal-width ECE of p_k against the indicator 1[y = k]."""
    probs = probs.double()
    onehot = F.one_hot(labels, probs.shape[1]).double()
    return float(sum(ece(probs[:, k], onehot[:, k], n_bins) for k in range(probs.shape[1])) / probs.shape[1])


def calibration_report(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = N_BINS) -> dict[str, object]:
    """All clean-data metrics from one logits tensor: scalars plus the reliability-diagram bins."""
    logits = logits.double()
    labels = labels.long()
    log_probs = F.log_softmax(logits, dim=1)
    probs = log_probs.exp()
    conf, pred = probs.max(dim=1)
    hit = (pred == labels).double()
    onehot = F.one_hot(labels, logits.shape[1]).double()
    bins = _bin_gaps(conf, hit, equal_width_bins(conf, n_bins), n_bins)
    ece_value, mce_value = _ece_from_bins(bins)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    return {
        "acc": float(hit.mean()),
        "nll": float(-log_probs.gather(1, labels[:, None]).mean()),
        "brier": float(((probs - onehot) ** 2).sum(dim=1).mean()),
        "ece": ece_value,
        "aece": adaptive_ece(conf, hit, n_bins),
        "mce": mce_value,
        "cwece": classwise_ece(probs, labels, n_bins),
        "mean_conf": float(conf.mean()),
        "reliability": [
            {
                "lo": float(edges[i]),
                "hi": float(edges[i + 1]),
                "count": int(bins["count"][i]),
                "conf": float(bins["conf"][i]),
                "acc": float(bins["acc"][i]),
            }
            for i in range(n_bins)
        ],
    }


def per_example(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per-example terms whose means (or, for ECE, whose binning) are `calibration_report`'s numbers: correct
    (bool), confidence, NLL and Brier score of each example; the evidence behind their intervals."""
    log_probs = F.log_softmax(logits.double(), dim=1)
    probs = log_probs.exp()
    conf, pred = probs.max(dim=1)
    onehot = F.one_hot(labels.long(), logits.shape[1]).double()
    return {
        "hit": pred == labels.long(),
        "conf": conf,
        "nll": -log_probs.gather(1, labels.long()[:, None])[:, 0],
        "brier": ((probs - onehot) ** 2).sum(dim=1),
    }


def class_probabilities(logits: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
    """Each class's softmax probability per example, as arrays `<prefix><k>`: the evidence behind classwise ECE."""
    probs = F.softmax(logits.double(), dim=1)
    return {f"{prefix}{k}": probs[:, k] for k in range(probs.shape[1])}


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the NLL of softmax(logits / T) on held-out data.

    The NLL is convex in 1/T; it is minimised over log T in [-6, 6] by bounded Brent search in float64."""
    from scipy.optimize import minimize_scalar

    z, y = logits.double(), labels.long()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(z / math.exp(log_t), y))

    return math.exp(minimize_scalar(nll, bounds=(-6.0, 6.0), method="bounded", options={"xatol": 1e-9}).x)
