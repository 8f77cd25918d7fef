"""PNG figures (matplotlib, Agg backend): the corruption grid (and `robustcollapse corrupt`'s preview of one image)
here; report plots alongside."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from robustcollapse.corruptions import corrupt, parameter_set  # noqa: E402
from robustcollapse.data import load_dataset  # noqa: E402
from robustcollapse.data.arrays import read_image  # noqa: E402
from robustcollapse.errors import UserError  # noqa: E402
from robustcollapse.io import atomic_write_bytes, check_output, safe_child  # noqa: E402
from robustcollapse.metrics.intervals import wilson  # noqa: E402
from robustcollapse.metrics.spec import spec_for  # noqa: E402


def _show(ax: plt.Axes, image: torch.Tensor) -> None:
    """One (C, H, W) image in [0, 1], pixels as squares, no axes."""
    if image.shape[0] == 1:
        ax.imshow(image[0].cpu().numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(image.permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def corruption_grid(
    image: torch.Tensor,
    names: list[str],
    severities: list[int],
    seed: int,
    path: Path,
    title: str = "",
    parameters: str = "auto",
) -> Path:
    """A PNG of one (C, H, W) float image: rows = corruptions, columns = clean then each severity."""
    rows, cols = len(names), len(severities) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols + 1.2, 1.3 * rows + 0.6), squeeze=False)
    for r, name in enumerate(names):
        _show(axes[r, 0], image)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        for c, s in enumerate(severities, 1):
            _show(axes[r, c], corrupt(image[None], name, s, seed=seed, parameters=parameters)[0])
    axes[0, 0].set_title("clean", fontsize=9)
    for c, s in enumerate(severities, 1):
        axes[0, c].set_title(f"severity {s}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()) if title else None)
    return write_png(fig, path, dpi=110)


def corruption_preview(
    source: str,
    names: list[str],
    severities: list[int],
    index: int = 0,
    size: int = 32,
    seed: int = 0,
    parameters: str = "auto",
    out: Path | None = None,
    data_root: Path | None = None,
) -> Path:
    """The corruption grid of one image: an image file resized to `size` x `size`, or test image `index` of a data
    set; written to `out` (default results/corruptions-<source>.png), titled with what it shows."""
    image, title, stem = _preview_image(source, index, size, data_root)
    path = out or safe_child(Path("results"), f"corruptions-{stem}.png")
    check_output(path, "--out", {Path(source): "source image"} if Path(source).is_file() else {}, "figure")
    chosen = parameter_set(*image.shape[-2:], parameters)
    return corruption_grid(image, names, severities, seed, path, f"{title}, {chosen} parameters, seed {seed}", chosen)


def _preview_image(source: str, index: int, size: int, data_root: Path | None) -> tuple[torch.Tensor, str, str]:
    """(float (C, H, W) image in [0, 1], what it is for the title, the file stem) of an image file or data set."""
    if Path(source).is_file():
        return read_image(Path(source), size), f"{Path(source).name} at {size}x{size}", Path(source).stem
    data = load_dataset(source, data_root)
    if index >= len(data.test):
        raise UserError(f"--index: {index}; {source} has {len(data.test)} test images (0..{len(data.test) - 1})")
    title = f"{source} test image {index} (class {data.classes[int(data.test.y[index])]})"
    return data.test.x[index].float() / 255, title, f"{source}-{index}"


# ---------------------------------------------------------------------------------------------------------------
# Figures of a result document (robustcollapse report)

COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def write_png(fig: plt.Figure, path: Path, **savefig: object) -> Path:
    """Render `fig` to PNG and write it atomically (a killed report leaves the old figure or the new one), then
    close it; every figure the tool writes goes through here."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", **savefig)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    return write_png(fig, path, dpi=100)


def reliability_diagram(bins_by_model: dict[str, list[dict]], path: Path) -> Path:
    """Per model: accuracy vs confidence per bin (bars, width = bin) with each bin's 95% Wilson interval and its
    count, the diagonal, and the sample share."""
    models = list(bins_by_model)
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        bins = bins_by_model[model]
        total = sum(b["count"] for b in bins) or 1
        lo = [b["lo"] for b in bins]
        width = [b["hi"] - b["lo"] for b in bins]
        ax.bar(lo, [b["acc"] if b["count"] else 0 for b in bins], width=width, align="edge", edgecolor="black",
               color=COLOURS[0], alpha=0.8, label="accuracy")  # fmt: skip
        ax.bar(lo, [b["count"] / total for b in bins], width=width, align="edge", color="grey", alpha=0.35,
               label="share of samples")  # fmt: skip
        filled = [b for b in bins if b["count"]]
        bounds = [wilson(round(b["acc"] * b["count"]), b["count"]) for b in filled]
        centres = [(b["lo"] + b["hi"]) / 2 for b in filled]
        errors = [[b["acc"] - low for b, (low, _) in zip(filled, bounds, strict=True)],
                  [high - b["acc"] for b, (_, high) in zip(filled, bounds, strict=True)]]  # fmt: skip
        ax.errorbar(centres, [b["acc"] for b in filled], yerr=errors, fmt="none", ecolor="black", elinewidth=0.8,
                    capsize=2, label="95% interval")  # fmt: skip
        for x, b in zip(centres, filled, strict=True):
            ax.text(x, min(b["acc"] + 0.03, 0.97), str(b["count"]), ha="center", fontsize=5, rotation=90)
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=model)
        ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def eps_curves(curves: dict[str, dict[str, list[tuple[float, ...]]]], norm: str, path: Path) -> Path:
    """One panel per attack (and the worst case): robust accuracy against ε, one line per model, and a band for
    each point's interval where the points carry one ((eps, value, low, high))."""
    attacks = list(curves)
    fig, axes = plt.subplots(1, len(attacks), figsize=(3.4 * len(attacks), 3.3), squeeze=False, sharey=True)
    for ax, attack in zip(axes[0], attacks, strict=True):
        for i, (model, points) in enumerate(curves[attack].items()):
            ordered = sorted(points)
            colour = COLOURS[i % len(COLOURS)]
            ax.plot([p[0] for p in ordered], [p[1] for p in ordered], "o-", color=colour, label=model)
            if all(len(p) == 4 for p in ordered):
                ax.fill_between([p[0] for p in ordered], [p[2] for p in ordered], [p[3] for p in ordered],
                                color=colour, alpha=0.2, linewidth=0)  # fmt: skip
        ax.set(xlabel=f"ε ({norm})", title=attack, ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("robust accuracy (band: 95% interval)")
    axes[0, -1].legend(fontsize=8)
    return _save(fig, path)


def corruption_heatmap(
    grids: dict[str, tuple[list[str], list[int], list[list[float]]]], path: Path, n: int | None = None
) -> Path:
    """Per model: accuracy as a corruption x severity heat map, values written in the cells, and the number of
    images each cell rests on in the title."""
    models = list(grids)
    rows = len(next(iter(grids.values()))[0])
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models) + 1.5, 0.32 * rows + 1.4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        names, severities, acc = grids[model]
        image = ax.imshow(acc, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for r, row in enumerate(acc):
            for c, v in enumerate(row):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
        ax.set_xticks(range(len(severities)), [str(s) for s in severities])
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set(xlabel="severity", title=model if n is None else f"{model} (n = {n} per cell)")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="accuracy")
    return write_png(fig, path, dpi=100, bbox_inches="tight")


def roc_curves(roc: dict[str, dict[str, dict[str, list[float]]]], model: str, path: Path) -> Path:
    """One panel per OOD set: ROC curves (OOD positive) of every detector, for one model."""
    sets = list(roc)
    fig, axes = plt.subplots(1, len(sets), figsize=(3.3 * len(sets), 3.4), squeeze=False)
    for ax, name in zip(axes[0], sets, strict=True):
        for i, (det, curve) in enumerate(roc[name].items()):
            ax.plot(curve["fpr"], curve["tpr"], color=COLOURS[i % len(COLOURS)], label=det, linewidth=1.2)
        ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="FPR (in-distribution flagged)", title=f"{model} vs {name}")
    axes[0, 0].set_ylabel("TPR (OOD caught)")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def latent_histograms(hists: list[dict], model: str, path: Path) -> Path:
    """One small histogram per latent coordinate: two peaks per coordinate is what a binary encoding looks like."""
    n = len(hists)
    cols = min(n, 8)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.3 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, h in zip(axes.flat, hists, strict=False):
        ax.set_axis_on()
        counts = h["counts"]
        step = (h["hi"] - h["lo"]) / len(counts)
        ax.bar([h["lo"] + i * step for i in range(len(counts))], counts, width=step, align="edge", color=COLOURS[0])
        ax.set_title(f"z[{h['dim']}]", fontsize=7)
        ax.tick_params(labelsize=5)
        ax.set_yticks([])
    fig.suptitle(f"{model}: per-coordinate distribution of z", fontsize=9)
    return _save(fig, path)


def training_curves(histories: dict[str, list[dict]], tracked: list[tuple[str, bool]], path: Path) -> Path | None:
    """Collapse over training: one panel per logged quantity (key, log scale), one line per model, against the
    epoch; each panel titled with its key's MetricSpec label."""
    panels = [(k, log) for k, log in tracked if any(k in row for h in histories.values() for row in h)]
    if not panels:
        return None
    cols = 4
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    for ax, (key, log) in zip(axes.flat, panels, strict=False):
        spec = spec_for(key)
        label = (key if spec is None else spec.label) + (" (log)" if log else "")
        for i, (model, history) in enumerate(histories.items()):
            points = [(row["epoch"], row[key]) for row in history if key in row and row[key] is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, "-", color=COLOURS[i % len(COLOURS)], label=model, linewidth=1.3)
        if log:
            ax.set_yscale("log")
        ax.set(title=label, xlabel="epoch")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    return _save(fig, path)
