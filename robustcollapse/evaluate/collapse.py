"""Test kind `collapse`: NC1-NC4, equinorm, equiangularity, ETF distance, and binarity of the latent z."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from robustcollapse.config import TestEntry
from robustcollapse.evaluate.base import Context, TestKind, TestResult, figure_file
from robustcollapse.metrics.binarity import gmm_binarity, latent_histograms, sign_codes
from robustcollapse.metrics.collapse import collapse_report, sphere_report, weight_on_latent
from robustcollapse.registry import register


class CollapseParams(TestEntry):
    kind: Literal["collapse"]
    split: Literal["train", "test"] = "train"
    binarity: bool = True
    by_predicted: bool = True


def prefix(family: str, split: str) -> str:
    """`nc` for the training split (where collapse is defined), `nc@test` for the test split."""
    return family if split == "train" else f"{family}@{split}"


@register("test", "collapse")
class Collapse(TestKind):
    """Neural collapse (NC1-NC4, equinorm, equiangularity, ETF error) and latent binarity (GMM fit, sign codes)."""

    Params = CollapseParams
    title = "collapse — neural-collapse and binarity of the latent z"
    colour = "#9467bd"

    @classmethod
    def namespace(cls, params: CollapseParams) -> tuple[str, ...]:
        return (prefix("nc", params.split), prefix("bin", params.split))

    @classmethod
    def figures(cls, doc: dict[str, Any], test_id: str, params: CollapseParams, out: Path) -> list[tuple[str, Path]]:
        from robustcollapse.report import plots  # matplotlib, imported only when a page is made

        figs = []
        for m, details in doc["details"].items():
            hists = details.get(test_id, {}).get("latent_histograms")
            if hists:
                path = plots.latent_histograms(hists, m, figure_file(out, test_id, "latent", m))
                figs.append((f"Latent coordinates — {m}", path))
        return figs

    @classmethod
    def columns(cls, params: CollapseParams) -> list[tuple[str, str]]:
        nc, b = prefix("nc", params.split), prefix("bin", params.split)
        cols = [
            (f"{nc}/nc1", "NC1"),
            (f"{nc}/within_between", "tr(Σ_W)/tr(Σ_B)"),
            (f"{nc}/equinorm", "equinorm"),
            (f"{nc}/equiangular", "equiang."),
            (f"{nc}/maxangle", "max-angle"),
            (f"{nc}/etf_means", "ETF err"),
            (f"{nc}/nc3", "NC3"),
            (f"{nc}/nc4", "NC4"),
            (f"{nc}/ovr_margin_min", "1-vs-rest margin (min class)"),
            (f"{nc}/ovr_margin_mean", "1-vs-rest margin (mean)"),
            (f"{nc}/min_angle", "min angle of W rows (°)"),
        ]
        if params.by_predicted:
            cols += [(f"{nc}/pred/nc1", "NC1 (by predicted)")]
        if params.binarity:
            cols += [
                (f"{b}/peak_sep", "peak sep."),
                (f"{b}/gmm_sigma", "GMM σ"),
                (f"{b}/same_code", "same code"),
                (f"{b}/class_codes", "class codes"),
            ]
            if params.by_predicted:
                cols += [(f"{b}/pred/same_code", "same code (by predicted)")]
        return cols

    @staticmethod
    def run(ctx: Context, params: CollapseParams) -> TestResult:
        p = ctx.forward_pass(params.split)
        weight = weight_on_latent(ctx.model.classifier_layer(), p.z.shape[1])
        k = ctx.data.num_classes
        nc_key, bin_key = prefix("nc", params.split), prefix("bin", params.split)
        metrics = {f"{nc_key}/{name}": v for name, v in collapse_report(p.z, p.y, p.logits, weight, k).items()}
        if weight is not None:
            metrics.update({f"{nc_key}/{name}": v for name, v in sphere_report(p.z, p.y, weight).items()})
        pred = p.logits.argmax(1)
        one_class = int(pred.unique().numel()) < 2  # e.g. an untrained model: no class means to compare
        if params.by_predicted and not one_class:  # the binary-encoding paper groups samples by predicted label
            by_pred = collapse_report(p.z, pred, p.logits, weight, k)
            metrics.update({f"{nc_key}/pred/{name}": v for name, v in by_pred.items()})
        if params.binarity:
            binarity = {**gmm_binarity(p.z), **sign_codes(p.z, p.y, k)}
            metrics.update({f"{bin_key}/{name}": v for name, v in binarity.items()})
            if params.by_predicted:
                metrics[f"{bin_key}/pred/same_code"] = sign_codes(p.z, p.logits.argmax(1), k)["same_code"]
        details = {
            "split": params.split,
            "n": int(p.y.numel()),
            "latent_dim": int(p.z.shape[1]),
            "nc3": "measured" if weight is not None else "not applicable: no linear classifier on z",
            "latent_histograms": latent_histograms(p.z),
        }
        if params.by_predicted and one_class:
            details["by_predicted"] = "not measured: the model predicts a single class"
        return TestResult(metrics, details=details)
