"""Test kind `ood`: in-distribution test split vs OOD sets, scored by every listed detector.

Keys `ood/<set>/<detector>/{auroc,aupr_in,aupr_out,fpr95}` and the means over near and far sets
`ood/{near,far}/<detector>/{auroc,fpr95}`. OOD is the positive class, a higher score means more OOD.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from rich.markup import escape
from rich.table import Table

from robustcollapse import registry
from robustcollapse.config import MAX_EXAMPLES, TestEntry
from robustcollapse.data import load_dataset, to_float
from robustcollapse.errors import UserError
from robustcollapse.evaluate.base import Context, TestKind, TestResult, figure_file
from robustcollapse.metrics import samples
from robustcollapse.metrics.ood import labels_scores, ood_report, roc_points
from robustcollapse.models.forward import Pass
from robustcollapse.ood import SYNTHETIC, DetectorOptions, fit_shape, is_near, make_detector
from robustcollapse.progress import iterate
from robustcollapse.registry import register


def known_sets() -> list[str]:
    return [*SYNTHETIC, "heldout", *registry.names("dataset")]


class OodParams(TestEntry):
    kind: Literal["ood"]
    sets: list[str] = Field(min_length=1)
    detectors: list[str] = Field(
        ["msp", "maxlogit", "energy", "odin", "mahalanobis", "knn", "vim", "hypercube"], min_length=1
    )
    n_examples: int = Field(
        1000, ge=10, le=MAX_EXAMPLES, description="in-distribution test images and images per OOD set"
    )
    near: list[str] | None = Field(
        None, description="which sets count as near OOD (default: held-out classes and sibling data sets)"
    )
    energy_t: float = Field(1.0, gt=0, le=1e6)
    odin_t: float = Field(1000.0, gt=0, le=1e6)
    odin_eps: float = Field(0.0014, ge=0, le=1)
    knn_k: int = Field(50, ge=1, le=100_000)
    vim_dim: int | None = Field(None, ge=1, le=100_000)

    @field_validator("sets")
    @classmethod
    def _sets(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in known_sets():
                raise ValueError(
                    registry.unknown_name_message("ood_set", name).replace(
                        "known: ", "known: heldout, " + ", ".join(registry.names("dataset")) + ", ", 1
                    )
                )
        return names

    @field_validator("detectors")
    @classmethod
    def _detectors(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in registry.names("detector"):
                raise ValueError(registry.unknown_name_message("detector", name))
        return names


def _evidence(
    pair: str,
    id_scores: torch.Tensor,
    ood_scores: torch.Tensor,
    arrays: dict[str, torch.Tensor],
    evidence: dict[str, samples.Sample],
) -> None:
    """The scores behind one (set, detector)'s metrics (non-finite ones mapped as `ood_report` maps them), each
    metric a two-group sample of them: in-distribution and OOD examples are resampled apart."""
    labels, finite = labels_scores(id_scores, ood_scores)
    arrays[f"{pair}/id"] = torch.from_numpy(finite[labels == 0])
    arrays[f"{pair}/ood"] = torch.from_numpy(finite[labels == 1])
    evidence |= {f"ood/{pair}/{k}": samples.ood(k, f"{pair}/id", f"{pair}/ood") for k in samples.OOD_STATISTICS}


def _group_means(
    groups: dict[str, list[str]], detectors: list[str], metrics: dict[str, float], evidence: dict[str, samples.Sample]
) -> None:
    """The near- and far-OOD means of each detector's AUROC and FPR@95 over the group's sets, and their evidence."""
    for group, members in groups.items():
        for name in detectors if members else []:
            for metric in ("auroc", "fpr95"):
                values = [metrics[f"ood/{s}/{name}/{metric}"] for s in members]
                metrics[f"ood/{group}/{name}/{metric}"] = sum(values) / len(values)
                pairs = [(f"{s}/{name}/id", f"{s}/{name}/ood") for s in members]
                evidence[f"ood/{group}/{name}/{metric}"] = samples.ood_mean(metric, pairs)


def ood_images(ctx: Context, name: str, n: int) -> torch.Tensor:
    """Up to n float images of an OOD set, in the in-distribution shape, on the context's device."""
    shape = ctx.data.image_shape
    device = ctx.test_split.x.device
    if name in SYNTHETIC:
        return registry.get("ood_set", name)(shape, n, ctx.seed).to(device)
    if name == "heldout":
        if ctx.heldout is None or len(ctx.heldout) == 0:
            raise UserError("ood set 'heldout' needs the suite's `heldout: [classes]`")
        return to_float(ctx.heldout.x[:n])
    if name == ctx.data.name:
        raise UserError(f"ood set {name!r} is the in-distribution data set")
    other = load_dataset(name, ctx.data_root, ctx.download, str(device))
    return fit_shape(to_float(other.test.x[:n]), shape)


@register("test", "ood")
class Ood(TestKind):
    """OOD detection: MSP, MaxLogit, Energy, ODIN, Mahalanobis, KNN, ViM, hypercube; AUROC, AUPR, FPR@95."""

    Params = OodParams
    title = "ood — AUROC and FPR@95TPR (OOD = positive)"
    colour = "#2ca02c"

    @classmethod
    def figures(cls, doc: dict[str, Any], test_id: str, params: OodParams, out: Path) -> list[tuple[str, Path]]:
        from robustcollapse.report import plots  # matplotlib, imported only when a page is made

        figs = []
        for m, details in doc["details"].items():
            roc = details.get(test_id, {}).get("roc")
            if roc:
                figs.append((f"ROC curves — {m}", plots.roc_curves(roc, m, figure_file(out, test_id, "roc", m))))
        return figs

    @classmethod
    def columns(cls, params: OodParams) -> list[tuple[str, str]]:
        return [(f"ood/{s}/{d}/auroc", f"{s} {d}") for s in params.sets for d in params.detectors]

    @classmethod
    def headline(cls, params: OodParams) -> list[str]:
        """AUROC and FPR@95 of the first detector on each set (every detector's are in `comparisons`)."""
        return [f"ood/{s}/{params.detectors[0]}/{m}" for s in params.sets for m in ("auroc", "fpr95")]

    @classmethod
    def tables(cls, doc: dict[str, Any], test_id: str, params: OodParams, dataset: str) -> list[Table]:
        """One table per model: OOD sets (and near/far means) as rows, detectors as columns."""
        out = []
        for model, metrics in doc["metrics"].items():
            table = Table(
                title=f"{escape(test_id)} — {model}: AUROC (top) and FPR@95TPR (below), "
                f"{dataset} vs OOD (OOD = positive)",
                title_justify="left",
            )
            table.add_column("set", style="bold", overflow="fold")
            for det in params.detectors:
                table.add_column(det, justify="right", min_width=5, overflow="fold")
            groups = doc["details"].get(model, {}).get(test_id, {}).get("groups", {})
            rows = [
                (s, f"{escape(s)}\n[dim]{'near' if s in groups.get('near', []) else 'far'}[/]") for s in params.sets
            ]
            rows += [(g, f"mean\n[dim]{g}[/]") for g in ("near", "far") if groups.get(g)]
            for key, label in rows:
                cells = []
                for det in params.detectors:
                    auroc, fpr = metrics.get(f"ood/{key}/{det}/auroc"), metrics.get(f"ood/{key}/{det}/fpr95")
                    cells.append("—" if auroc is None else f"{auroc:.3f}\n[dim]{fpr:.3f}[/]")
                table.add_row(label, *cells)
            out.append(table)
        return out

    @staticmethod
    def run(ctx: Context, params: OodParams) -> TestResult:
        model = ctx.model.eval()
        n = params.n_examples
        id_images = to_float(ctx.test_split.x[:n])
        test = ctx.forward_pass("test")  # shared with the other tests of this model; sliced, not recomputed
        id_pass = Pass(test.z[:n], test.logits[:n], test.y[:n])
        train = ctx.forward_pass("train")
        options = DetectorOptions(params.energy_t, params.odin_t, params.odin_eps, params.knn_k, params.vim_dim)
        warnings = clamp_warnings(params, len(train.z), train.z.shape[1])
        detectors = {}
        for name in params.detectors:
            det = make_detector(name, options)
            det.fit(train, model, ctx.data.num_classes)
            detectors[name] = det
        id_scores = {name: det.score(id_pass, id_images, model) for name, det in detectors.items()}
        metrics: dict[str, float] = {}
        near = params.near if params.near is not None else [s for s in params.sets if is_near(s, ctx.data.name)]
        groups = {"near": [s for s in params.sets if s in near], "far": [s for s in params.sets if s not in near]}
        sizes: dict[str, int] = {}
        arrays: dict[str, torch.Tensor] = {}
        evidence: dict[str, samples.Sample] = {}
        roc: dict[str, dict[str, dict[str, list[float]]]] = {}
        for set_name in iterate(params.sets, f"{len(params.sets)} OOD sets", "sets"):
            images = ood_images(ctx, set_name, len(id_images))  # as many as in-distribution (a --limit bounds both)
            sizes[set_name] = len(images)
            ood_pass = ctx.pass_over(images)
            for name, det in detectors.items():
                ood_scores = det.score(ood_pass, images, model)
                report = ood_report(id_scores[name], ood_scores)
                metrics.update({f"ood/{set_name}/{name}/{k}": v for k, v in report.items()})
                _evidence(f"{set_name}/{name}", id_scores[name], ood_scores, arrays, evidence)
                roc.setdefault(set_name, {})[name] = roc_points(id_scores[name], ood_scores)
        _group_means(groups, list(detectors), metrics, evidence)
        details = {
            "convention": "OOD is the positive class; higher score = more OOD; FPR@95TPR = fraction of "
            "in-distribution samples flagged at the threshold catching 95% of OOD samples",
            "n_in_distribution": len(id_images),
            "n_ood": sizes,
            "groups": groups,
            "roc": roc,
        }
        if warnings:
            details["warnings"] = warnings
        return TestResult(metrics, details, samples=evidence, arrays=arrays)


def clamp_warnings(params: OodParams, bank: int, dim: int) -> list[str]:
    """What the detectors will do differently from what the suite asked, said instead of silently clamped."""
    out = []
    if "knn" in params.detectors and params.knn_k > bank:
        out.append(f"knn_k {params.knn_k} > the {bank} training features: KNN uses k = {bank}")
    if "vim" in params.detectors and params.vim_dim is not None and params.vim_dim >= dim:
        out.append(
            f"vim_dim {params.vim_dim} >= the feature dimension {dim}: ViM has no residual space and scores as Energy"
        )
    return out
