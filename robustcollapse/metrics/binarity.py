"""How binary a latent code is (Sbailo & Ghiringhelli 2023): per-dimension two-Gaussian fits and sign codes.

Per dimension, the values are standardised and a 2-component 1-D Gaussian mixture is fitted (scikit-learn);
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

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

MAX_FIT_SAMPLES = 5000
# EM started at the coordinate's two modes and run to a tight tolerance, so the peak separation does not depend on
# where a loose tolerance stopped it (at sklearn's 1e-3 an unbalanced pair of modes stops ~10 % short). A unimodal
# coordinate has a flat likelihood and may not converge within GMM_MAX_ITER: its separation is small either way.
GMM_TOL = 1e-8
GMM_MAX_ITER = 1000


def gmm_binarity(z: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """Two-component Gaussian-mixture fit per latent dimension (at most MAX_FIT_SAMPLES samples, the first)."""
    values = z[:MAX_FIT_SAMPLES].double().cpu().numpy()
    loglik, sigma, separation = [], [], []
    for dim in range(values.shape[1]):
        col = values[:, dim]
        std = col.std()
        if std < 1e-12:  # a constant dimension: one spike, no second peak
            continue
        col = ((col - col.mean()) / std)[:, None]
        lo, hi = two_modes(torch.from_numpy(col))
        gmm = GaussianMixture(
            2,
            covariance_type="full",
            random_state=seed,
            reg_covar=1e-6,
            tol=GMM_TOL,
            max_iter=GMM_MAX_ITER,
            means_init=[[float(lo[0])], [float(hi[0])]],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(col)
        sig = np.sqrt(gmm.covariances_.reshape(2))
        loglik.append(gmm.score(col))
        sigma.append(sig.mean())
        separation.append(abs(gmm.means_[0, 0] - gmm.means_[1, 0]) / sig.mean())
    if not loglik:
        return {"gmm_loglik": float("nan"), "gmm_sigma": float("nan"), "peak_sep": 0.0, "peak_sep_std": 0.0}
    return {
        "gmm_loglik": float(np.mean(loglik)),
        "gmm_sigma": float(np.mean(sigma)),
        "peak_sep": float(np.mean(separation)),
        "peak_sep_std": float(np.std(separation)),
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
