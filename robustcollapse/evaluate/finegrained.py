"""Test kind `finegrained`: the fine labels that survive collapse (Yang, Steinhardt & Hu, ICML 2023).

Inside each coarse class, k-means (scikit-learn) clusters the test features z into as many clusters as the coarse
class has fine classes; clusters are matched to fine labels by the Hungarian algorithm (scipy) and the matched
fraction over all test samples is `fine/kmeans_acc`. The grouping is the model's own `coarse:` recipe field, or the
test's `groups:` (so a fine-trained model gives the reference figure). Also `fine/coarse_acc` (the model's coarse
accuracy) and, for a fine-trained model, `fine/model_acc` (its own fine accuracy).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from robustcollapse.config import TestEntry
from robustcollapse.data.base import coarse_label_map
from robustcollapse.data.hierarchy import coarse_groups
from robustcollapse.errors import UserError
from robustcollapse.evaluate.base import Context, TestKind, TestResult
from robustcollapse.registry import register


class FinegrainedParams(TestEntry):
    kind: Literal["finegrained"]
    groups: list[list[int]] | str | None = Field(
        None, description="coarse classes (groups of fine class indices, or a hierarchy); default: the model's own"
    )
    n_init: int = Field(10, ge=1, le=1000, description="k-means restarts")


def recovered_accuracy(
    z: torch.Tensor, fine: torch.Tensor, groups: list[list[int]], seed: int = 0, n_init: int = 10
) -> float:
    """Fraction of samples whose fine label is recovered by k-means inside their (true) coarse class, clusters
    matched to fine labels by the Hungarian algorithm."""
    features = z.double().cpu().numpy()
    labels = fine.cpu().numpy()
    correct = 0
    for members in groups:
        idx = np.flatnonzero(np.isin(labels, members))
        if len(idx) == 0:
            continue
        if len(members) == 1:  # nothing to split: every sample of the group has its one fine label
            correct += len(idx)
            continue
        if len(idx) < len(members):  # fewer samples than clusters: k-means cannot run, none counted
            continue
        clusters = KMeans(len(members), n_init=n_init, random_state=seed).fit_predict(features[idx])
        table = np.zeros((len(members), len(members)), dtype=np.int64)
        for c, f in zip(clusters, labels[idx], strict=True):
            table[c, members.index(int(f))] += 1
        rows, cols = linear_sum_assignment(table, maximize=True)
        correct += int(table[rows, cols].sum())
    return correct / len(labels)


@register("test", "finegrained")
class Finegrained(TestKind):
    """Fine labels recovered by k-means inside each coarse class (Hungarian matching), coarse and fine accuracy."""

    Params = FinegrainedParams
    title = "finegrained — fine labels recovered from features (k-means + Hungarian)"

    @classmethod
    def namespace(cls, params: FinegrainedParams) -> tuple[str, ...]:
        return ("fine",)

    @classmethod
    def columns(cls, params: FinegrainedParams) -> list[tuple[str, str]]:
        return [
            ("fine/kmeans_acc", "fine acc recovered by k-means"),
            ("fine/coarse_acc", "coarse acc"),
            ("fine/model_acc", "model's own fine acc"),
        ]

    @staticmethod
    def run(ctx: Context, params: FinegrainedParams) -> TestResult:
        fine_data = ctx.fine or ctx.data
        n = len(ctx.test_split)
        fine_y = fine_data.test.y[:n]
        if params.groups is not None:
            groups = coarse_groups(params.groups, fine_data.classes)
        elif ctx.coarse is not None:
            groups = ctx.coarse
        else:
            raise UserError("finegrained: this model was trained on fine labels; give the test `groups:`")
        coarse_of = coarse_label_map(fine_data.num_classes, groups, fine_y.device)
        p = ctx.forward_pass("test")
        pred = p.logits.argmax(1)
        coarse_pred = pred if p.logits.shape[1] == len(groups) and ctx.fine is not None else coarse_of[pred]
        metrics = {
            "fine/kmeans_acc": recovered_accuracy(p.z, fine_y, groups, ctx.seed, params.n_init),
            "fine/coarse_acc": float((coarse_pred == coarse_of[fine_y]).double().mean()),
        }
        if ctx.fine is None:
            metrics["fine/model_acc"] = float((pred == fine_y).double().mean())
        return TestResult(metrics, {"groups": groups, "n": n, "coarse_trained": ctx.fine is not None})
