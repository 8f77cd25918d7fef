"""Neural-collapse metrics (Papyan, Han & Donoho 2020), in float64, from features, labels and the classifier.

h_i features, mu_k class means, mu_G = the unweighted mean of the class means (as in the NC literature's reference
code: on imbalanced data a large class does not pull the centre), M~ = [mu_k - mu_G] (D x K), W classifier (K x D).
NC1 = tr(Sigma_W Sigma_B^+)/K with Sigma_B = M~ M~^T / K taken at rank <= K-1 through a thin SVD of M~ (never
a D x D pseudo-inverse of noise); equinorm = std/mean of ||mu_k - mu_G||; equiangularity = std over k != k'
of cos(mu~_k, mu~_k'); max-angle = mean |cos + 1/(K-1)|; ETF error = ||G/||G||_F - (I - 11^T/K)/sqrt(K-1)||_F
for G = M~^T M~ (and W W^T); NC3 = ||W/||W||_F - M~^T/||M~||_F||_F^2; NC4 = fraction of samples whose
prediction differs from the nearest class mean's class; within/between = tr(Sigma_W) / tr(Sigma_B), the ratio most
papers (and the binary-encoding paper) compare, beside NC1. Standard deviations are population ones.
"""

from __future__ import annotations

import math

import torch

from robustcollapse.metrics.spec import MetricSpec, declare

SPECS = declare(
    MetricSpec("*/nc1", "NC1: tr(Σ_W Σ_B⁺)/K", ".4g", higher_is_better=False, tolerance=0.05),
    MetricSpec("*/within_between", "tr(Σ_W)/tr(Σ_B)", ".4g", higher_is_better=False, tolerance=0.05),
    MetricSpec("*/equinorm", "class-mean norms: std/mean", higher_is_better=False),
    MetricSpec("*/equiangular", "class-mean cosines: std", higher_is_better=False),
    MetricSpec("*/maxangle", "class-mean cosines: mean |cos + 1/(K-1)|", higher_is_better=False),
    MetricSpec("*/etf_means", "class means: distance to the simplex ETF", higher_is_better=False),
    MetricSpec("*/etf_w", "classifier rows: distance to the simplex ETF", higher_is_better=False),
    MetricSpec("*/w_equinorm", "classifier row norms: std/mean", higher_is_better=False),
    MetricSpec("*/nc3", "NC3: ‖W/‖W‖ − M/‖M‖‖²", higher_is_better=False),
    MetricSpec("*/nc4", "NC4: disagreement with nearest class mean", higher_is_better=False),
    MetricSpec("*/ovr_margin_min", "one-vs-rest margin (worst class)", higher_is_better=True),
    MetricSpec("*/ovr_margin_mean", "one-vs-rest margin (mean)", higher_is_better=True),
    MetricSpec("*/min_angle", "smallest angle between classifier rows", ".1f", True, tolerance=1.0, unit="°"),
)


def class_means(h: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, D) float64 class means and (K,) counts; an absent class has a zero mean and count 0."""
    h = h.double()
    counts = torch.bincount(y, minlength=num_classes).double()
    sums = torch.zeros(num_classes, h.shape[1], dtype=torch.float64, device=h.device).index_add_(0, y, h)
    return sums / counts.clamp_min(1)[:, None], counts


def _offdiag(mat: torch.Tensor) -> torch.Tensor:
    k = mat.shape[0]
    return mat[~torch.eye(k, dtype=torch.bool, device=mat.device)]


def _cosines(vectors: torch.Tensor) -> torch.Tensor:
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return _offdiag(unit @ unit.T)


def etf_error(gram: torch.Tensor) -> float:
    """Frobenius distance of a normalised K x K Gram matrix from the simplex ETF's."""
    k = gram.shape[0]
    target = (torch.eye(k, dtype=gram.dtype, device=gram.device) - 1.0 / k) / math.sqrt(k - 1)
    return float((gram / gram.norm().clamp_min(1e-12) - target).norm())


def nc1(h: torch.Tensor, y: torch.Tensor, means: torch.Tensor, global_mean: torch.Tensor) -> float:
    """tr(Sigma_W Sigma_B^+)/K with Sigma_B's pseudo-inverse at rank <= K-1 from the SVD of M~."""
    k = means.shape[0]
    centred = h.double() - means[y]
    m_tilde = (means - global_mean).T  # D x K
    u, s, _ = torch.linalg.svd(m_tilde, full_matrices=False)
    keep = s > s.max() * max(m_tilde.shape) * torch.finfo(torch.float64).eps
    keep[k - 1 :] = False
    u, s = u[:, keep], s[keep]
    projected = centred @ u  # N x r: Sigma_W restricted to the between-class subspace
    sw_diag = (projected**2).sum(dim=0) / h.shape[0]
    # Sigma_B^+ = K U S^-2 U^T, so tr(Sigma_W Sigma_B^+)/K = sum_i (U^T Sigma_W U)_ii / s_i^2
    return float((sw_diag / s**2).sum())


def within_between(h: torch.Tensor, y: torch.Tensor, means: torch.Tensor, global_mean: torch.Tensor) -> float:
    """tr(Sigma_W) / tr(Sigma_B): mean squared distance of a sample to its class mean over the mean squared distance
    of a class mean to the centre."""
    sw = float(((h.double() - means[y]) ** 2).sum()) / h.shape[0]
    sb = float(((means - global_mean) ** 2).sum()) / means.shape[0]
    return sw / sb if sb > 0 else float("inf")


def collapse_report(
    h: torch.Tensor, y: torch.Tensor, logits: torch.Tensor, classifier: torch.Tensor | None, num_classes: int
) -> dict[str, float]:
    """NC1-NC4, equinorm, equiangularity, max-angle and ETF errors of features `h` (N x D).

    `classifier` is the last layer's weight (K x D) acting on `h`, or None when there is none to compare.
    """
    h = h.double()
    means, counts = class_means(h, y, num_classes)
    present = counts > 0
    if not bool(present.all()):  # classes absent from a limited split: measure the ones present
        remap = torch.cumsum(present.long(), 0) - 1
        y, means = remap[y], means[present]
        logits = logits[:, present]
        classifier = None if classifier is None else classifier[present]
    k = means.shape[0]
    global_mean = means.mean(dim=0)
    centred_means = means - global_mean
    norms = centred_means.norm(dim=1)
    cos = _cosines(centred_means)
    out = {
        "nc1": nc1(h, y, means, global_mean),
        "within_between": within_between(h, y, means, global_mean),
        "equinorm": float(norms.std(unbiased=False) / norms.mean()),
        "equiangular": float(cos.std(unbiased=False)),
        "maxangle": float((cos + 1.0 / (k - 1)).abs().mean()),
        "etf_means": etf_error(centred_means @ centred_means.T),
        "nc4": float((torch.cdist(h, means).argmin(dim=1) != logits.argmax(dim=1)).double().mean()),
    }
    if classifier is not None:
        w = classifier.double()
        w_norms = w.norm(dim=1)
        out["w_equinorm"] = float(w_norms.std(unbiased=False) / w_norms.mean())
        out["etf_w"] = etf_error(w @ w.T)
        out["nc3"] = float((w / w.norm() - centred_means / centred_means.norm()).norm() ** 2)
    return out


def weight_on_latent(layer: torch.nn.Module | None, latent_dim: int) -> torch.Tensor | None:
    """The classifier's weight (K x d) when it is a linear layer acting on the latent z, else None: NC3 and the
    classifier-side metrics are not applicable."""
    weight = getattr(layer, "weight", None)
    if weight is None or weight.shape[1] != latent_dim:
        return None
    return weight.detach()


def sphere_report(h: torch.Tensor, y: torch.Tensor, classifier: torch.Tensor) -> dict[str, float]:
    """Generalised collapse (K >> d): on unit features and unit classifier rows, the one-vs-rest margin of each
    sample, cos(h, w_y) − max_{j≠y} cos(h, w_j), averaged per class; its minimum and mean over the classes present;
    and the minimum pairwise angle (degrees) between classifier rows."""
    unit_h = h.double() / h.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
    unit_w = classifier.double() / classifier.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = unit_h @ unit_w.T
    own = cos.gather(1, y[:, None]).squeeze(1)
    others = cos.scatter(1, y[:, None], float("-inf")).max(dim=1).values
    margin = own - others
    k = classifier.shape[0]
    sums = torch.zeros(k, dtype=torch.float64, device=h.device).index_add_(0, y, margin)
    counts = torch.bincount(y, minlength=k).double()
    per_class = (sums / counts.clamp_min(1))[counts > 0]
    gram = (unit_w @ unit_w.T).fill_diagonal_(-1.0)
    return {
        "ovr_margin_min": float(per_class.min()),
        "ovr_margin_mean": float(per_class.mean()),
        "min_angle": math.degrees(math.acos(min(1.0, float(gram.max())))),
    }
