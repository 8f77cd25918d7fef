"""Test kind `clean`: accuracy and calibration on the (limited) test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from robustcollapse.config import TestEntry
from robustcollapse.evaluate.base import Context, TestKind, TestResult, figure_file
from robustcollapse.metrics import samples
from robustcollapse.metrics.calibration import calibration_report, class_probabilities, per_example
from robustcollapse.registry import register


class CleanParams(TestEntry):
    kind: Literal["clean"]
    bins: int = Field(15, ge=1, le=10_000)


@register("test", "clean")
class Clean(TestKind):
    """Accuracy, NLL, Brier, ECE (equal-width), adaptive ECE, MCE, classwise ECE, reliability bins."""

    Params = CleanParams
    title = "clean — accuracy and calibration"
    colour = "#1f77b4"

    @classmethod
    def namespace(cls, params: CleanParams) -> tuple[str, ...]:
        return ("clean", "cal")

    @classmethod
    def figures(cls, doc: dict[str, Any], test_id: str, params: CleanParams, out: Path) -> list[tuple[str, Path]]:
        from robustcollapse.report import plots  # matplotlib, imported only when a page is made

        bins = {m: d[test_id]["reliability"] for m, d in doc["details"].items() if "reliability" in d.get(test_id, {})}
        if not bins:
            return []
        return [("Reliability diagrams", plots.reliability_diagram(bins, figure_file(out, test_id, "reliability")))]

    @classmethod
    def columns(cls, params: CleanParams) -> list[tuple[str, str]]:
        return [
            ("clean/acc", "acc"),
            ("clean/nll", "NLL"),
            ("clean/brier", "Brier"),
            ("cal/ece", "ECE"),
            ("cal/aece", "adaptive ECE"),
            ("cal/mce", "MCE"),
            ("cal/cwece", "classwise ECE"),
            ("clean/mean_conf", "mean conf"),
            ("cal/temperature", "temperature T"),
            ("clean/ts/nll", "NLL, scaled"),
            ("cal/ts/ece", "ECE, scaled"),
            ("cal/ts/aece", "adaptive ECE, scaled"),
            ("cal/ts/cwece", "classwise ECE, scaled"),
        ]

    @staticmethod
    def run(ctx: Context, params: CleanParams) -> TestResult:
        p = ctx.forward_pass("test")
        rep = calibration_report(p.logits, p.y, n_bins=params.bins)
        details: dict[str, Any] = {"reliability": rep["reliability"], "n": int(p.y.numel())}
        metrics = {
            "clean/acc": rep["acc"],
            "clean/nll": rep["nll"],
            "clean/brier": rep["brier"],
            "clean/mean_conf": rep["mean_conf"],
            "cal/ece": rep["ece"],
            "cal/aece": rep["aece"],
            "cal/mce": rep["mce"],
            "cal/cwece": rep["cwece"],
        }
        arrays = per_example(p.logits, p.y) | class_probabilities(p.logits, "p") | {"label": p.y.double()}
        classes = [f"p{k}" for k in range(p.logits.shape[1])]
        evidence = {
            "clean/acc": samples.proportion("hit"),
            "clean/nll": samples.mean("nll"),
            "clean/brier": samples.mean("brier"),
            "clean/mean_conf": samples.mean("conf"),
            "cal/ece": samples.ece("conf", "hit", params.bins),
            "cal/aece": samples.adaptive_ece("conf", "hit", params.bins),
            "cal/mce": samples.mce("conf", "hit", params.bins),
            "cal/cwece": samples.classwise_ece(classes, "label", params.bins),
        }
        if ctx.temperature is not None:  # the same metrics of softmax(logits / T), beside the raw ones
            scaled = calibration_report(p.logits / ctx.temperature, p.y, n_bins=params.bins)
            metrics["cal/temperature"] = ctx.temperature
            metrics.update({f"clean/ts/{k}": scaled[k] for k in ("nll", "brier")})
            metrics.update({f"cal/ts/{k}": scaled[k] for k in ("ece", "aece", "mce", "cwece")})
            details["reliability_ts"] = scaled["reliability"]
            arrays |= {f"ts_{k}": v for k, v in per_example(p.logits / ctx.temperature, p.y).items() if k != "hit"}
            arrays |= class_probabilities(p.logits / ctx.temperature, "ts_p")
            evidence |= {
                "clean/ts/nll": samples.mean("ts_nll"),
                "clean/ts/brier": samples.mean("ts_brier"),
                "cal/ts/ece": samples.ece("ts_conf", "hit", params.bins),
                "cal/ts/aece": samples.adaptive_ece("ts_conf", "hit", params.bins),
                "cal/ts/mce": samples.mce("ts_conf", "hit", params.bins),
                "cal/ts/cwece": samples.classwise_ece([f"ts_{c}" for c in classes], "label", params.bins),
            }
        return TestResult(metrics, details=details, samples=evidence, arrays=arrays)
