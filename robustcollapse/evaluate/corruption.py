"""Test kind `corruption`: accuracy and calibration under the CIFAR-10-C common corruptions.

Keys `shift/<corruption>/<severity>/{acc,nll,ece}`, the mean over the suite's severities `shift/<corruption>/acc`,
`shift/clean/acc` on the same images, the mean corruption accuracy over the standard 15 `shift/mean/{acc,ece}` and
its relative drop vs clean `shift/mean/rel_drop`, and the held-out four apart as `shift/extra/{acc,rel_drop}`.
`shift` is the test's `prefix:`: two corruption tests of one suite (generated and from the .npy files) need two.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from rich.markup import escape
from rich.table import Table

from robustcollapse.config import MAX_EXAMPLES, TestEntry
from robustcollapse.corruptions import EXTRA, STANDARD, corrupt, parameter_set, resolve
from robustcollapse.data import to_float
from robustcollapse.data.corrupted import corrupted_folder, read_corrupted
from robustcollapse.distributed import map_chunks
from robustcollapse.evaluate.base import Context, TestKind, TestResult, figure_file
from robustcollapse.metrics import samples
from robustcollapse.metrics.calibration import calibration_report, per_example
from robustcollapse.metrics.samples import Sample
from robustcollapse.metrics.spec import MetricSpec, declare
from robustcollapse.models.forward import forward_batch
from robustcollapse.progress import iterate
from robustcollapse.registry import register

SPECS = declare(MetricSpec("*/rel_drop", "relative accuracy drop from clean", higher_is_better=False))


class CorruptionParams(TestEntry):
    kind: Literal["corruption"]
    corruptions: str | list[str] = Field(
        "all", description="all | noise | blur | weather | digital | extra | a list of corruption names"
    )
    severities: list[int] = Field([1, 2, 3, 4, 5], min_length=1)
    source: Literal["generate", "npy"] = "generate"
    parameters: Literal["auto", "cifar", "imagenet"] = Field(
        "auto", description="auto: ImageNet-C values from a shorter side of 128 px, CIFAR-10-C values below"
    )
    n_examples: int = Field(1000, ge=1, le=MAX_EXAMPLES, description="test images per (corruption, severity)")
    bins: int = Field(15, ge=1, le=10_000)
    prefix: str = Field(
        "shift",
        pattern=r"^[a-z0-9_-]+$",
        description="first part of the metric keys; each corruption test needs its own",
    )

    @field_validator("corruptions")
    @classmethod
    def _corruptions(cls, value: str | list[str]) -> str | list[str]:
        resolve(value)
        return value

    @field_validator("severities")
    @classmethod
    def _severities(cls, value: list[int]) -> list[int]:
        bad = [s for s in value if not 1 <= s <= 5]
        if bad:
            raise ValueError(f"severities {bad} out of range; allowed: 1, 2, 3, 4, 5")
        return sorted(set(value))


def signed_percent(change: float) -> str:
    """A relative change as '−22.5%' or '+0.2%' (a true minus sign; never '−-0.2%')."""
    return f"{change:+.1%}".replace("-", "−")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


@register("test", "corruption")
class Corruption(TestKind):
    """CIFAR-10-C common corruptions (generated on the device, or read from .npy): accuracy, NLL, ECE."""

    Params = CorruptionParams
    title = "corruption — accuracy under common corruptions"
    colour = "#ff7f0e"

    @classmethod
    def figures(cls, doc: dict[str, Any], test_id: str, params: CorruptionParams, out: Path) -> list[tuple[str, Path]]:
        from robustcollapse.report import plots  # matplotlib, imported only when a page is made

        names, levels = resolve(params.corruptions), params.severities
        grids = {
            m: (
                names,
                levels,
                [[metrics.get(f"{params.prefix}/{c}/{s}/acc", float("nan")) for s in levels] for c in names],
            )
            for m, metrics in doc["metrics"].items()
        }
        sizes = {d[test_id].get("n") for d in doc["details"].values() if isinstance(d.get(test_id), dict)}
        n = sizes.pop() if len(sizes) == 1 else None
        path = plots.corruption_heatmap(grids, figure_file(out, test_id, "heat"), n)
        return [("Accuracy per corruption and severity", path)]

    @classmethod
    def namespace(cls, params: CorruptionParams) -> tuple[str, ...]:
        return (params.prefix,)

    @classmethod
    def columns(cls, params: CorruptionParams) -> list[tuple[str, str]]:
        return [
            (f"{params.prefix}/clean/acc", "clean acc"),
            (f"{params.prefix}/mean/acc", "mean corr. acc (15)"),
            (f"{params.prefix}/mean/rel_drop", "rel. drop"),
            (f"{params.prefix}/mean/ece", "mean ECE"),
            (f"{params.prefix}/extra/acc", "held-out 4 acc"),
        ]

    @classmethod
    def tables(cls, doc: dict[str, Any], test_id: str, params: CorruptionParams, dataset: str) -> list[Table]:
        """One table per model: corruptions as rows, severities as columns (accuracy), plus means."""
        out = []
        names = resolve(params.corruptions)
        for model, metrics in doc["metrics"].items():
            clean = metrics.get(f"{params.prefix}/clean/acc")
            source = params.source if params.source == "npy" else f"{params.parameters} parameters"
            table = Table(
                title=f"{escape(test_id)} — {escape(model)}: accuracy per corruption × severity ({dataset}, {source}; "
                f"clean {clean if clean is None else format(clean, '.4f')})",
                title_justify="left",
            )
            table.add_column("corruption", style="bold")
            for s in params.severities:
                table.add_column(f"s{s}", justify="right")
            table.add_column("mean", justify="right", style="bold")
            for name in names:
                cells = [metrics.get(f"{params.prefix}/{name}/{s}/acc") for s in params.severities]
                mean = metrics.get(f"{params.prefix}/{name}/acc")
                label = f"{name} [dim](held out)[/]" if name in EXTRA else name
                table.add_row(label, *[("—" if v is None else f"{v:.3f}") for v in [*cells, mean]])
            for group, label in (("mean", "mean of the standard 15"), ("extra", "mean of the held-out 4")):
                value = metrics.get(f"{params.prefix}/{group}/acc")
                if value is not None:
                    drop = metrics.get(f"{params.prefix}/{group}/rel_drop")
                    table.add_row(
                        f"[italic]{label}[/]",
                        *[""] * len(params.severities),
                        f"{value:.3f} [dim]({signed_percent(-drop)})[/]",
                    )
            out.append(table)
        return out

    @staticmethod
    def run(ctx: Context, params: CorruptionParams) -> TestResult:
        names = resolve(params.corruptions)
        n = min(params.n_examples, len(ctx.test_split))
        details: dict[str, Any] = {"source": params.source, "seed": ctx.seed}
        folder = None
        if params.source == "npy":
            folder = corrupted_folder(ctx.data.name, ctx.data_root)
            details["folder"] = str(folder)
        else:
            details["parameters"] = parameter_set(*ctx.test_split.x.shape[-2:], params.parameters)
        clean_pass = ctx.forward_pass("test")  # the clean images the corrupted ones were made from
        clean_y = clean_pass.y[:n]
        clean_acc = calibration_report(clean_pass.logits[:n], clean_y, n_bins=params.bins)["acc"]
        metrics: dict[str, float] = {f"{params.prefix}/clean/acc": clean_acc}
        cells = [(c, s) for c in names for s in params.severities]
        hits: dict[tuple[str, int], torch.Tensor] = {}
        terms: dict[tuple[str, int], dict[str, torch.Tensor]] = {}
        for name, s in iterate(cells, f"{len(names)} corruptions x {len(params.severities)} severities", "cells"):
            if folder is not None:
                split = read_corrupted(folder, name, s, n).to(ctx.test_split.x.device)
                logits, y = ctx.pass_over(split.x).logits, split.y
            else:
                logits, y = _generated_logits(ctx, params, name, s, n), clean_y
            metrics.update(_cell_metrics(logits, y, f"{params.prefix}/{name}/{s}", params.bins, ctx.temperature))
            hits[name, s] = (logits.argmax(1) == y).cpu()
            terms[name, s] = _cell_terms(logits, y, ctx.temperature)
            if s == params.severities[-1]:
                levels = [metrics[f"{params.prefix}/{name}/{v}/acc"] for v in params.severities]
                metrics[f"{params.prefix}/{name}/acc"] = _mean(levels)
        metrics.update(_group_means(metrics, params, names, clean_acc, ctx.temperature is not None))
        details.update({"n": n, "corruptions": names, "severities": params.severities})
        evidence, arrays = _evidence(params, names, (clean_pass.logits[:n].argmax(1) == clean_y).cpu(), hits, terms)
        return TestResult(metrics, details, samples=evidence, arrays=arrays)


def _cell_terms(logits: torch.Tensor, y: torch.Tensor, temperature: float | None) -> dict[str, torch.Tensor]:
    """Each image's confidence and NLL in one cell (and of softmax(logits / T)): the evidence behind its NLL and ECE."""
    raw = per_example(logits, y)
    out = {"conf": raw["conf"].cpu(), "nll": raw["nll"].cpu()}
    if temperature is not None:
        scaled = per_example(logits / temperature, y)
        out |= {"ts_conf": scaled["conf"].cpu(), "ts_nll": scaled["nll"].cpu()}
    return out


def _evidence(
    params: CorruptionParams,
    names: list[str],
    clean: torch.Tensor,
    hits: dict[tuple[str, int], torch.Tensor],
    terms: dict[tuple[str, int], dict[str, torch.Tensor]],
) -> tuple[dict[str, Sample], dict[str, torch.Tensor]]:
    """The evidence behind every number: each cell's correctness (a proportion), its images' NLL (a mean) and
    confidence and correctness (its ECE); for a corruption's and a group's mean accuracy each image's fraction of
    cells it survives (every cell holds the same n images, so the mean of that fraction is the mean of the cell
    accuracies; its interval is bootstrapped over images), and for a group's mean ECE every cell's confidence and
    correctness, resampled together."""
    pre = params.prefix
    arrays: dict[str, torch.Tensor] = {"clean": clean}
    evidence = {f"{pre}/clean/acc": samples.proportion("clean")}
    for (name, s), hit in hits.items():
        cell = f"{name}/{s}"
        arrays[cell] = hit
        evidence[f"{pre}/{cell}/acc"] = samples.proportion(cell)
        for key, values in terms[name, s].items():
            arrays[f"{cell}:{key}"] = values
        for scaled in ["", "ts_"] if "ts_conf" in terms[name, s] else [""]:
            folder = f"{pre}/{cell}/{'ts/' if scaled else ''}"
            evidence[f"{folder}nll"] = samples.mean(f"{cell}:{scaled}nll")
            evidence[f"{folder}ece"] = samples.ece(f"{cell}:{scaled}conf", cell, params.bins)
    for name in names:
        arrays[name] = torch.stack([hits[name, s] for s in params.severities]).double().mean(0)
        evidence[f"{pre}/{name}/acc"] = samples.mean(name)
    for group, members in (("mean", STANDARD), ("extra", EXTRA)):
        present = [c for c in names if c in members]
        if present:
            arrays[f"group:{group}"] = torch.stack([arrays[c] for c in present]).mean(0)
            evidence[f"{pre}/{group}/acc"] = samples.mean(f"group:{group}")
            evidence[f"{pre}/{group}/rel_drop"] = samples.relative_drop("clean", f"group:{group}")
            for scaled in ["", "ts_"] if f"{present[0]}/{params.severities[0]}:ts_conf" in arrays else [""]:
                pairs = [(f"{c}/{s}:{scaled}conf", f"{c}/{s}") for c in present for s in params.severities]
                evidence[f"{pre}/{group}/{'ts/' if scaled else ''}ece"] = samples.mean_ece(pairs, params.bins)
    return evidence, arrays


def _generated_logits(ctx: Context, params: CorruptionParams, name: str, severity: int, n: int) -> torch.Tensor:
    """Logits of the first n test images corrupted here, batch by batch (split between ranks under torchrun);
    each image is seeded by its index, so where it is corrupted does not change it."""
    x, device = ctx.test_split.x[:n], ctx.test_split.x.device

    def batch(start: int, stop: int) -> tuple[torch.Tensor]:
        index = torch.arange(start, stop, device=device)
        images = corrupt(
            to_float(x[start:stop]), name, severity, seed=ctx.seed, index=index, parameters=params.parameters
        )
        return (forward_batch(ctx.model, images)[1],)

    return map_chunks(n, ctx.batch_size, batch)[0].to(device)


def _cell_metrics(
    logits: torch.Tensor, y: torch.Tensor, key: str, bins: int, temperature: float | None
) -> dict[str, float]:
    """acc, NLL and ECE of one (corruption, severity), and with a temperature its scaled NLL and ECE: does the
    clean-fitted temperature still hold under shift?"""
    rep = calibration_report(logits, y, n_bins=bins)
    metrics = {f"{key}/{m}": rep[m] for m in ("acc", "nll", "ece")}
    if temperature is not None:
        scaled = calibration_report(logits / temperature, y, n_bins=bins)
        metrics.update({f"{key}/ts/{m}": scaled[m] for m in ("nll", "ece")})
    return metrics


def _group_means(
    metrics: dict[str, float], params: CorruptionParams, names: list[str], clean_acc: float, scaled: bool
) -> dict[str, float]:
    """Means over the standard 15 (`mean`) and over the held-out four (`extra`) of what ran."""
    out: dict[str, float] = {}
    pre = params.prefix
    for group, members in (("mean", STANDARD), ("extra", EXTRA)):
        present = [c for c in names if c in members]
        if not present:
            continue
        acc = _mean([metrics[f"{pre}/{c}/acc"] for c in present])
        out[f"{pre}/{group}/acc"] = acc
        out[f"{pre}/{group}/rel_drop"] = (clean_acc - acc) / clean_acc if clean_acc > 0 else 0.0
        out[f"{pre}/{group}/ece"] = _mean([metrics[f"{pre}/{c}/{s}/ece"] for c in present for s in params.severities])
        if scaled:
            out[f"{pre}/{group}/ts/ece"] = _mean(
                [metrics[f"{pre}/{c}/{s}/ts/ece"] for c in present for s in params.severities]
            )
    return out
