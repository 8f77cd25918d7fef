"""PNG figures (matplotlib, Agg backend): the corruption grid here; report plots alongside."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from robustcollapse.corruptions import corrupt  # noqa: E402


def _show(ax: plt.Axes, image: torch.Tensor) -> None:
    """One (C, H, W) image in [0, 1], pixels as squares, no axes."""
    if image.shape[0] == 1:
        ax.imshow(image[0].cpu().numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(image.permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def corruption_grid(
    image: torch.Tensor, names: list[str], severities: list[int], seed: int, path: Path, title: str = ""
) -> Path:
    """A PNG of one (C, H, W) float image: rows = corruptions, columns = clean then each severity."""
    rows, cols = len(names), len(severities) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols + 1.2, 1.3 * rows + 0.6), squeeze=False)
    for r, name in enumerate(names):
        _show(axes[r, 0], image)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        for c, s in enumerate(severities, 1):
            _show(axes[r, c], corrupt(image[None], name, s, seed=seed)[0])
    axes[0, 0].set_title("clean", fontsize=9)
    for c, s in enumerate(severities, 1):
        axes[0, c].set_title(f"severity {s}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()) if title else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
