"""OOD detection metrics on score arrays. Convention: OOD is the positive class, a higher score = more OOD.

AUROC: probability that a random OOD sample scores above a random in-distribution one (ties count half).
AUPR-Out: average precision with OOD as positive; AUPR-In: with in-distribution as positive and the score
negated. FPR@95TPR: the fraction of in-distribution samples flagged at the highest threshold that flags at
least 95% of the OOD samples (threshold = score >= t). Computed with scikit-learn.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from robustcollapse.metrics.spec import MetricSpec, declare

SPECS = declare(
    MetricSpec("*/auroc", "AUROC", higher_is_better=True),
    MetricSpec("*/fpr95", "FPR at 95 % TPR", higher_is_better=False),
    MetricSpec("*/aupr_in", "AUPR, in-distribution positive", higher_is_better=True),
    MetricSpec("*/aupr_out", "AUPR, OOD positive", higher_is_better=True),
)


def labels_scores(id_scores: torch.Tensor, ood_scores: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Labels (OOD = 1) and finite scores: +inf and NaN (a detector that broke on an input) rank above every
    finite score (maximally OOD), -inf below every one (maximally in-distribution)."""
    scores = torch.cat([id_scores, ood_scores]).double().cpu().numpy()
    labels = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    finite = np.isfinite(scores)
    if not finite.all():
        top = scores[finite].max() + 1.0 if finite.any() else 1.0
        bottom = scores[finite].min() - 1.0 if finite.any() else -1.0
        scores = np.where(np.isneginf(scores), bottom, np.where(finite, scores, top))
    return labels, scores


def fpr_at_tpr(id_scores: torch.Tensor, ood_scores: torch.Tensor, tpr_level: float = 0.95) -> float:
    """Fraction of ID samples with score >= t, for the largest t that catches >= tpr_level of the OOD ones."""
    labels, scores = labels_scores(id_scores, ood_scores)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr, tpr_level, side="left")])


def roc_points(id_scores: torch.Tensor, ood_scores: torch.Tensor, points: int = 101) -> dict[str, list[float]]:
    """The ROC curve (OOD positive) sampled at `points` evenly spaced FPRs: TPR = the best reached at that FPR."""
    labels, scores = labels_scores(id_scores, ood_scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    grid = np.linspace(0, 1, points)
    best = np.maximum.accumulate(tpr)
    reached = best[np.searchsorted(fpr, grid, side="right") - 1]
    return {"fpr": [round(float(v), 4) for v in grid], "tpr": [round(float(v), 4) for v in reached]}


def ood_report(id_scores: torch.Tensor, ood_scores: torch.Tensor) -> dict[str, float]:
    """AUROC, AUPR-In, AUPR-Out and FPR@95TPR of OOD-vs-ID scores."""
    labels, scores = labels_scores(id_scores, ood_scores)
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "aupr_in": float(average_precision_score(1 - labels, -scores)),
        "aupr_out": float(average_precision_score(labels, scores)),
        "fpr95": fpr_at_tpr(torch.from_numpy(scores[labels == 0]), torch.from_numpy(scores[labels == 1])),
    }
