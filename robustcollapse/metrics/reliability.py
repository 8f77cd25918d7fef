"""Misclassification detection and selective prediction (the binary-encoding paper's reliability measures).

Convention: a *higher* score means *more likely wrong*; AUROC is that of wrong (positive) vs correct test
predictions. Risk-coverage: predictions sorted by confidence (descending, stable); at coverage k/n the risk
is the error rate among the k most confident; AURC = the mean risk over k = 1..n.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from robustcollapse.metrics.spec import MetricSpec, declare

SPECS = declare(MetricSpec("*/aurc", "area under the risk-coverage curve", higher_is_better=False))


def misclassification_auroc(scores: torch.Tensor, wrong: torch.Tensor) -> float:
    """AUROC of wrong vs correct predictions; NaN when either group is empty."""
    wrong_np = wrong.bool().cpu().numpy()
    if wrong_np.all() or not wrong_np.any():
        return float("nan")
    return float(roc_auc_score(wrong_np, scores.double().cpu().numpy()))


def risk_coverage(confidence: torch.Tensor, correct: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(coverage k/n, risk = error rate of the k most confident) for k = 1..n."""
    order = torch.argsort(confidence.double(), descending=True, stable=True)
    errors = (~correct.bool())[order].double().cpu().numpy()
    k = np.arange(1, len(errors) + 1)
    return k / len(errors), np.cumsum(errors) / k


def aurc(confidence: torch.Tensor, correct: torch.Tensor) -> float:
    """Area under the risk-coverage curve (mean risk over all coverages)."""
    return float(risk_coverage(confidence, correct)[1].mean())


def class_gaussian_scores(
    train_z: torch.Tensor,
    train_pred: torch.Tensor,
    train_correct: torch.Tensor,
    z: torch.Tensor,
    pred: torch.Tensor,
    num_classes: int,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """Mahalanobis distance of each z to the full-covariance Gaussian of its predicted class, fitted on the
    correctly classified training features of that class (covariance + ridge * mean variance * I).
    A class without at least two such features scores +inf (no evidence it is reliable)."""
    train_z, z = train_z.double(), z.double()
    scores = torch.full((len(z),), float("inf"), dtype=torch.float64, device=z.device)
    dim = z.shape[1]
    for k in range(num_classes):
        members = train_z[(train_pred == k) & train_correct]
        rows = pred == k
        if len(members) < 2 or not bool(rows.any()):
            continue
        mean = members.mean(0)
        centred = members - mean
        cov = centred.T @ centred / len(members)
        cov = cov + ridge * (torch.trace(cov) / dim).clamp_min(1e-12) * torch.eye(
            dim, dtype=cov.dtype, device=cov.device
        )
        diff = z[rows] - mean
        scores[rows] = (diff @ torch.linalg.pinv(cov, hermitian=True) * diff).sum(1)
    return scores
