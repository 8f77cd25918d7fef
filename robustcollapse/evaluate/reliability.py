"""Test kinds `reliability` (misclassification detection, selective prediction) and `deepfool` (minimal L2
perturbation), as the binary-encoding paper measures them."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from robustcollapse.config import MAX_EXAMPLES, TestEntry
from robustcollapse.data import to_float
from robustcollapse.evaluate.base import Context, TestKind, TestResult, frozen
from robustcollapse.metrics import samples
from robustcollapse.metrics.reliability import aurc, class_gaussian_scores, misclassification_auroc, risk_coverage
from robustcollapse.metrics.spec import MetricSpec, declare
from robustcollapse.registry import register

SPECS = declare(
    MetricSpec("*/rel_norm", "DeepFool: mean ‖r‖/‖x‖", higher_is_better=True),
    MetricSpec("*/rel_norm_median", "DeepFool: median ‖r‖/‖x‖", higher_is_better=True),
    MetricSpec("*/success", "DeepFool: share of points flipped (attack success, not a robustness score)"),
    MetricSpec("*/l2", "DeepFool: mean ‖r‖₂"),
)


class ReliabilityParams(TestEntry):
    kind: Literal["reliability"]
    ridge: float = Field(1e-6, ge=0, le=1e6, description="covariance ridge, relative to the mean variance")


@register("test", "reliability")
class Reliability(TestKind):
    """Misclassification detection (per-class Gaussian Mahalanobis, MSP): AUROC wrong-vs-correct; AURC."""

    Params = ReliabilityParams
    title = "reliability — misclassification detection (wrong = positive) and selective prediction"
    colour = "#17becf"

    @classmethod
    def namespace(cls, params: ReliabilityParams) -> tuple[str, ...]:
        return ("rel",)

    @classmethod
    def columns(cls, params: ReliabilityParams) -> list[tuple[str, str]]:
        return [
            ("rel/mahalanobis/auroc", "AUROC Mahalanobis"),
            ("rel/msp/auroc", "AUROC MSP"),
            ("rel/msp/aurc", "AURC (MSP)"),
            ("rel/mahalanobis/aurc", "AURC (Mahalanobis)"),
            ("rel/error", "test error"),
        ]

    @staticmethod
    def run(ctx: Context, params: ReliabilityParams) -> TestResult:
        train, test = ctx.forward_pass("train"), ctx.forward_pass("test")
        train_pred, pred = train.logits.argmax(1), test.logits.argmax(1)
        correct = pred == test.y
        distance = class_gaussian_scores(
            train.z, train_pred, train_pred == train.y, test.z, pred, ctx.data.num_classes, params.ridge
        )
        msp = F.softmax(test.logits.double(), 1).amax(1)
        coverage, risk = risk_coverage(msp, correct)
        step = max(1, len(coverage) // 100)
        metrics = {
            "rel/mahalanobis/auroc": misclassification_auroc(distance, ~correct),
            "rel/msp/auroc": misclassification_auroc(-msp, ~correct),
            "rel/msp/aurc": aurc(msp, correct),
            "rel/mahalanobis/aurc": aurc(-distance, correct),
            "rel/error": float((~correct).double().mean()),
        }
        details = {
            "n": len(correct),
            "wrong": int((~correct).sum()),
            "risk_coverage": {"coverage": coverage[::step].tolist(), "risk": risk[::step].tolist()},
        }
        hit = correct.cpu()
        arrays = {"correct": hit, "wrong": ~hit, "msp": msp.cpu(), "neg_distance": -distance.double().cpu()}
        for name, score in (("msp", -arrays["msp"]), ("mahalanobis", -arrays["neg_distance"])):
            arrays[f"{name}/correct"], arrays[f"{name}/wrong"] = score[hit], score[~hit]
        evidence = {  # the misclassification AUROCs: wrong is the positive class, correct and wrong resampled apart
            "rel/mahalanobis/auroc": samples.ood("auroc", "mahalanobis/correct", "mahalanobis/wrong"),
            "rel/msp/auroc": samples.ood("auroc", "msp/correct", "msp/wrong"),
            "rel/msp/aurc": samples.risk_coverage_area("msp", "correct"),
            "rel/mahalanobis/aurc": samples.risk_coverage_area("neg_distance", "correct"),
            "rel/error": samples.proportion("wrong"),
        }
        return TestResult(metrics, details, samples=evidence, arrays=arrays)


class DeepFoolParams(TestEntry):
    kind: Literal["deepfool"]
    n_examples: int = Field(1000, ge=1, le=MAX_EXAMPLES)
    steps: int = Field(50, ge=1, le=100_000)
    overshoot: float = Field(0.02, ge=0, le=10)
    candidates: int = Field(
        10, ge=2, le=100_000, description="classes considered: the top-`candidates` logits of the input"
    )


def deepfool(
    model: torch.nn.Module, x: torch.Tensor, steps: int = 50, overshoot: float = 0.02, candidates: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched DeepFool (Moosavi-Dezfooli et al. 2016) as published: unconstrained L2 steps
    r_i = (|f'_l| + 1e-4) / ||w'_l||^2 * w'_l towards the nearest linearised boundary among the top
    `candidates` classes, accumulated in r_tot; the result is x + (1 + overshoot) r_tot. Returns
    (the perturbation (1 + overshoot) r_tot, whether the prediction flipped). No [0, 1] clipping: it measures
    the distance to the decision boundary (torchattacks' DeepFool clips every step, and on saturated images
    such as MNIST then stalls on most points)."""
    with torch.no_grad():
        logits = model(x)
    cand = logits.topk(min(candidates, logits.shape[1]), dim=1).indices  # column 0: the original prediction
    r_tot = torch.zeros_like(x)
    rows = torch.arange(len(x), device=x.device)
    for _ in range(steps):
        x_adv = (x + (1 + overshoot) * r_tot).requires_grad_(True)
        out = model(x_adv)
        active = out.argmax(1) == cand[:, 0]
        if not bool(active.any()):
            break
        f = out.gather(1, cand)
        grads = torch.stack(
            [torch.autograd.grad(f[:, j].sum(), x_adv, retain_graph=j + 1 < f.shape[1])[0] for j in range(f.shape[1])],
            1,
        )
        w = (grads[:, 1:] - grads[:, :1]).flatten(2)
        fd = (f[:, 1:] - f[:, :1]).detach()
        dist = fd.abs() / w.norm(dim=2).clamp_min(1e-12)
        best = dist.argmin(1)
        w_best = w[rows, best]
        step = ((fd[rows, best].abs() + 1e-4) / w_best.pow(2).sum(1).clamp_min(1e-24))[:, None] * w_best
        r_tot = r_tot + (step * active[:, None]).view_as(x)
    perturbation = (1 + overshoot) * r_tot
    with torch.no_grad():
        flipped = model(x + perturbation).argmax(1) != cand[:, 0]
    return perturbation, flipped


def relative_norms(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """||delta||_2 / ||x||_2 per image (pixel space)."""
    return delta.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1).clamp_min(1e-12)


@register("test", "deepfool")
class DeepFool(TestKind):
    """DeepFool minimal L2 perturbation (unconstrained, overshoot 0.02, 50 steps, 10 candidates): ||r||/||x||."""

    Params = DeepFoolParams
    title = "deepfool — minimal L2 perturbation relative to the image norm"
    colour = "#e377c2"

    @classmethod
    def namespace(cls, params: DeepFoolParams) -> tuple[str, ...]:
        return ("deepfool",)

    @classmethod
    def columns(cls, params: DeepFoolParams) -> list[tuple[str, str]]:
        return [
            ("deepfool/rel_norm", "mean ‖r‖/‖x‖"),
            ("deepfool/rel_norm_median", "median ‖r‖/‖x‖"),
            ("deepfool/l2", "mean ‖r‖₂"),
            ("deepfool/success", "flipped"),
        ]

    @staticmethod
    def run(ctx: Context, params: DeepFoolParams) -> TestResult:
        with frozen(ctx.model) as model:
            x, y = to_float(ctx.test_split.x[: params.n_examples]), ctx.test_split.y[: params.n_examples]
            with torch.inference_mode():
                correct = model(x).argmax(1) == y
            x = x[correct]
            deltas, flips = [], []
            for i in range(0, len(x), ctx.batch_size):
                delta, flipped = deepfool(
                    model, x[i : i + ctx.batch_size], params.steps, params.overshoot, params.candidates
                )
                deltas.append(delta)
                flips.append(flipped)
        delta = torch.cat(deltas) if deltas else x
        flipped = torch.cat(flips) if flips else torch.zeros(0, dtype=torch.bool)
        rel = relative_norms(x, delta)[flipped]
        l2 = delta.flatten(1).norm(dim=1)[flipped]
        metrics = {
            "deepfool/rel_norm": float(rel.mean()) if len(rel) else float("nan"),
            "deepfool/rel_norm_median": float(rel.median()) if len(rel) else float("nan"),
            "deepfool/l2": float(l2.mean()) if len(l2) else float("nan"),
            "deepfool/success": float(flipped.double().mean()) if len(flipped) else float("nan"),
        }
        return TestResult(metrics, {"attacked": int(len(x)), "flipped": int(flipped.sum())})
