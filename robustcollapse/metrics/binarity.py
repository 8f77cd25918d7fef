"""How binary a latent code is (Sbailo & Ghiringhelli 2023): per-dimension two-Gaussian fits and sign codes.

Per dimension, the values are standardised and a 2-component 1-D Gaussian mixture is fitted (scikit-learn);
we report the mean log-likelihood per sample, the mean component sigma and the peak separation
|mu_1 - mu_2| / mean sigma (mean and std over dimensions). A binary code has two narrow, well separated
peaks: high log-likelihood, small sigma, large separation.

Sign codes: the pattern 1[z - mu_G > 0] of each sample, with mu_G the global mean (for a binary latent whose
two values straddle 0 this is the paper's 1[z > 0]; centring makes post-ReLU baseline features comparable);
a class's code is its most frequent pattern; we report the fraction of samples carrying their class's code
and the number of distinct class codes (K when every class owns a vertex of the hypercube).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

MAX_FIT_SAMPLES = 5000


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
        gmm = GaussianMixture(2, covariance_type="full", random_state=seed, reg_covar=1e-6).fit(col)
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


def class_codes(z: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Each class's most frequent sign pattern 1[z - mu_G > 0] (K x d bool), how many of its samples carry it
    (K,), and the number of distinct patterns over all samples."""
    patterns, inverse = torch.unique(z > z.mean(dim=0), dim=0, return_inverse=True)
    joint = torch.zeros(num_classes, patterns.shape[0], dtype=torch.long, device=z.device)
    joint.index_put_((y, inverse), torch.ones_like(y), accumulate=True)
    best = joint.argmax(dim=1)
    return patterns[best], joint.gather(1, best[:, None]).squeeze(1), int(patterns.shape[0])


def sign_codes(z: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Fraction of samples whose sign pattern 1[z - mu_G > 0] equals their class's most frequent one; code counts."""
    codes, carriers, n_patterns = class_codes(z, y, num_classes)
    present = torch.bincount(y, minlength=num_classes) > 0
    return {
        "same_code": float(carriers[present].sum()) / float(y.numel()),
        "class_codes": float(torch.unique(codes[present], dim=0).shape[0]),
        "patterns": float(n_patterns),
    }
