"""Test kind `hierarchy`: how bad the mistakes are for a class hierarchy (keys `hier/*`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from robustcollapse.config import TestEntry
from robustcollapse.data.hierarchy import load_hierarchy, mistake_severity
from robustcollapse.evaluate.base import Context, TestKind, TestResult
from robustcollapse.metrics.spec import MetricSpec, declare
from robustcollapse.registry import register

SPECS = declare(
    MetricSpec("hier/top1", "top-1 accuracy", higher_is_better=True),
    MetricSpec("hier/mistake_severity", "mean height of the mistakes' lowest common ancestor", higher_is_better=False),
    MetricSpec("hier/dist@*", "mean hierarchical distance of the top-k predictions", higher_is_better=False),
)


class HierarchyParams(TestEntry):
    kind: Literal["hierarchy"]
    hierarchy: str = Field("pairs", description="pairs | cifar100 | a YAML file (tree: or paths:)")
    k: list[int] = Field([1, 5], min_length=1, description="hierarchical distance@k for each k (capped at K)")


@register("test", "hierarchy")
class Hierarchy(TestKind):
    """Top-1, average mistake severity (mean LCA height of wrong top-1) and hierarchical distance@k."""

    Params = HierarchyParams
    title = "hierarchy — mistake severity (LCA height)"

    @classmethod
    def namespace(cls, params: HierarchyParams) -> tuple[str, ...]:
        return ("hier",)

    @classmethod
    def columns(cls, params: HierarchyParams) -> list[tuple[str, str]]:
        return [
            ("hier/top1", "top-1 acc"),
            ("hier/mistake_severity", "avg mistake severity"),
            *[(f"hier/dist@{k}", f"hier. dist@{k}") for k in params.k],
        ]

    @staticmethod
    def run(ctx: Context, params: HierarchyParams) -> TestResult:
        if ctx.fine is not None:
            return TestResult(
                {}, {"skipped": "the model was trained on coarse labels; the hierarchy is over fine ones"}
            )
        tree = load_hierarchy(params.hierarchy, ctx.data.classes)
        heights = tree.lca_heights()
        p = ctx.forward_pass("test")
        ks = sorted({min(k, ctx.data.num_classes) for k in params.k})
        report = mistake_severity(p.logits, p.y, heights, ks)
        metrics = {f"hier/{key}": value for key, value in report.items()}
        for k in params.k:  # a k above K is reported under the k asked for, computed at K
            metrics[f"hier/dist@{k}"] = report[f"dist@{min(k, ctx.data.num_classes)}"]
        details = {"hierarchy": tree.name, "height": float(heights.max()), "n": int(p.y.numel())}
        return TestResult(metrics, details)
