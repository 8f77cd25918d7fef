"""How binary a latent code is (Sbailo & Ghiringhelli 2023): per-dimension two-Gaussian fits and sign codes.

Per dimension, the values are standardised and a 2-component 1-D Gaussian mixture is fitted by EM to convergence
(all dimensions at once; tested against scikit-learn's GaussianMixture run to convergence);
we report the mean log-likelihood per sample, the mean component sigma and the peak separation
|mu_1 - mu_2| / mean sigma (mean and std over dimensions). A binary code has two narrow, well separated
peaks: high log-likelihood, small sigma, large separation.

Sign codes: the pattern 1[z > t] of each sample, with t per coordinate the midpoint of its two modes (1-D 2-means
from the extremes), so a coordinate whose two values are unbalanced across classes is still cut between them
(a global mean would sit next to the larger mode); for a binary latent at +-1 this is the paper's 1[z > 0];
a class's code is its most frequent pattern; we report the fraction of samples carrying their class's code
and the number of distinct class codes (K when every class owns a vertex of the hypercube).
"""

from __future__ import annotations

import math

import torch

from robustcollapse.metrics.spec import MetricSpec, declare

MAX_FIT_SAMPLES = 5000
# EM started at each coordinate's two modes and run until no coordinate's mean log-likelihood moves by more than
# GMM_TOL, so the peak separation does not depend on where a loose tolerance stopped it (at scikit-learn's default
# 1e-3 an unbalanced pair of modes stops ~10 % short; started at the modes it is within 1 % of converged by 200
# iterations). A unimodal coordinate has a flat likelihood and still creeps at GMM_MAX_ITER: its separation is
# small either way (a 256-d baseline's mean moves < 0.1 % from 200 to 2000 iterations, at a tenth of the cost).
# All coordinates are fitted at once (one tensor).
GMM_TOL = 1e-8
GMM_MAX_ITER = 200
GMM_REG = 1e-6  # added to each component variance, as scikit-learn's reg_covar


SPECS = declare(
    MetricSpec("*/peak_sep", "peak separation of the two modes (GMM)", ".2f", higher_is_better=True),
    MetricSpec("*/peak_sep_std", "peak separation: std over coordinates", ".2f"),
    MetricSpec("*/gmm_sigma", "GMM σ", ".3f"),
    MetricSpec("*/gmm_loglik", "GMM mean log-likelihood", ".3f"),
    MetricSpec("*/same_code", "share with its class's sign code", ".3f", higher_is_better=True),
    MetricSpec("*/class_codes", "distinct class codes", ".0f"),
    MetricSpec("*/patterns", "distinct sign patterns", ".0f"),
    MetricSpec("*/two_means_sep", "binarity (2-means separation)", ".3f"),
)


def two_gaussians(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EM for a 2-component 1-D Gaussian mixture on every column of v (n, d): weights, means, variances (2, d)
    and the mean log-likelihood per sample (d,) under the fitted mixture."""
    v = v.double()
    lo, hi = two_modes(v)
    upper = (v - lo).abs() > (v - hi).abs()
    resp = torch.stack([~upper, upper]).double()  # (2, n, d): hard split at the modes' midpoint to start
    previous = None
    for _ in range(GMM_MAX_ITER):
        counts = resp.sum(1) + 10 * torch.finfo(torch.float64).eps
        weights = counts / v.shape[0]
        means = (resp * v).sum(1) / counts
        variances = (resp * (v - means[:, None]) ** 2).sum(1) / counts + GMM_REG
        log_p = -0.5 * (
            (v - means[:, None]) ** 2 / variances[:, None] + torch.log(2 * math.pi * variances[:, None])
        ) + torch.log(weights[:, None])
        total = torch.logsumexp(log_p, 0)
        loglik = total.mean(0)
        resp = (log_p - total).exp()
        if previous is not None and float((loglik - previous).abs().max()) < GMM_TOL:
            break
        previous = loglik
    return weights, means, variances, loglik


def gmm_binarity(z: torch.Tensor) -> dict[str, float]:
    """Two-component Gaussian-mixture fit per standardised latent dimension (the first MAX_FIT_SAMPLES samples)."""
    values = z[:MAX_FIT_SAMPLES].double()
    std = values.std(0, unbiased=False)
    varying = std >= 1e-12  # a constant dimension is one spike: no second peak
    if not bool(varying.any()):
        return {"gmm_loglik": float("nan"), "gmm_sigma": float("nan"), "peak_sep": 0.0, "peak_sep_std": 0.0}
    cols = (values[:, varying] - values[:, varying].mean(0)) / std[varying]
    _, means, variances, loglik = two_gaussians(cols)
    sigma = variances.sqrt().mean(0)
    separation = (means[0] - means[1]).abs() / sigma
    return {
        "gmm_loglik": float(loglik.mean()),
        "gmm_sigma": float(sigma.mean()),
        "peak_sep": float(separation.mean()),
        "peak_sep_std": float(separation.std(unbiased=False)),
    }


def latent_histograms(z: torch.Tensor, max_dims: int = 16, bins: int = 40) -> list[dict[str, object]]:
    """Histograms of the first `max_dims` latent coordinates (each over its own range), for plots."""
    out = []
    for dim in range(min(max_dims, z.shape[1])):
        col = z[:, dim].double().cpu()
        lo, hi = float(col.min()), float(col.max())
        hi = hi if hi > lo else lo + 1e-6
        counts = torch.histc(col, bins=bins, min=lo, max=hi)
        out.append({"dim": dim, "lo": lo, "hi": hi, "counts": [int(c) for c in counts]})
    return out


def two_means_separation(z: torch.Tensor, iterations: int = 15) -> float:
    """A cheap binarity figure for per-epoch tracking: per dimension, 1-D 2-means (started at the quartiles) on the
    standardised values, |c1 - c2| / pooled within-cluster std, averaged over dimensions (cf. `peak_sep`)."""
    v = z.double()
    v = (v - v.mean(0)) / v.std(0).clamp_min(1e-12)
    c = torch.stack([v.quantile(0.25, dim=0), v.quantile(0.75, dim=0)])  # (2, d)
    for _ in range(iterations):
        upper = (v - c[0]).abs() > (v - c[1]).abs()
        n_up = upper.sum(0).clamp_min(1)
        n_lo = (~upper).sum(0).clamp_min(1)
        c = torch.stack([(v * ~upper).sum(0) / n_lo, (v * upper).sum(0) / n_up])
    upper = (v - c[0]).abs() > (v - c[1]).abs()
    resid = torch.where(upper, v - c[1], v - c[0])
    pooled = resid.pow(2).mean(0).sqrt().clamp_min(1e-6)
    return float(((c[1] - c[0]).abs() / pooled).mean())


def two_modes(z: torch.Tensor, iterations: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Per coordinate, the lower and upper centre of a 1-D 2-means started at the minimum and maximum (d,), (d,)."""
    v = z.double()
    lo, hi = v.amin(0), v.amax(0)
    for _ in range(iterations):
        upper = (v - lo).abs() > (v - hi).abs()
        lo = torch.where((~upper).any(0), (v * ~upper).sum(0) / (~upper).sum(0).clamp_min(1), lo)
        hi = torch.where(upper.any(0), (v * upper).sum(0) / upper.sum(0).clamp_min(1), hi)
    return lo, hi


def class_codes(z: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Each class's most frequent sign pattern 1[z > midpoint of the coordinate's two modes] (K x d bool), how
    many of its samples carry it (K,), and the number of distinct patterns over all samples."""
    lo, hi = two_modes(z)
    patterns, inverse = torch.unique(z.double() > (lo + hi) / 2, dim=0, return_inverse=True)
    joint = torch.zeros(num_classes, patterns.shape[0], dtype=torch.long, device=z.device)
    joint.index_put_((y, inverse), torch.ones_like(y), accumulate=True)
    best = joint.argmax(dim=1)
    return patterns[best], joint.gather(1, best[:, None]).squeeze(1), int(patterns.shape[0])


def sign_codes(z: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Fraction of samples whose sign pattern equals their class's most frequent one; code counts."""
    codes, carriers, n_patterns = class_codes(z, y, num_classes)
    present = torch.bincount(y, minlength=num_classes) > 0
    return {
        "same_code": float(carriers[present].sum()) / float(y.numel()),
        "class_codes": float(torch.unique(codes[present], dim=0).shape[0]),
        "patterns": float(n_patterns),
    }
