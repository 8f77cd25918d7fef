"""The in-memory data set every test and the training loop read: uint8 images on the target device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from robustcollapse import registry
from robustcollapse.errors import UserError


@dataclass
class Split:
    """Images as uint8 (N, C, H, W) and int64 labels (N,), on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def head(self, n: int | None) -> Split:
        """The first n examples (all when n is None); split orders are fixed, so this is reproducible."""
        return self if n is None else Split(self.x[:n], self.y[:n])

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.x[index], self.y[index])


@dataclass
class Dataset:
    """A named data set with train and test splits, class names and the normalisation the models apply."""

    name: str
    train: Split
    test: Split
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return int(c), int(h), int(w)

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(self.name, self.train.to(device), self.test.to(device), self.classes, self.mean, self.std)


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, on the [0, 1] scale."""
    xf = x.double() / 255.0
    mean = xf.mean(dim=(0, 2, 3))
    std = xf.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def to_uint8_nchw(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) or (N, H, W, C) uint8 -> contiguous (N, C, H, W) uint8."""
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.permute(0, 3, 1, 2)
    return images.to(torch.uint8).contiguous()


def hold_out(data: Dataset, classes: list[int]) -> tuple[Dataset, Split]:
    """The data set without `classes` (labels renumbered 0..K'-1 in order) and the held-out test images."""
    if not classes:
        return data, Split(data.test.x[:0], data.test.y[:0])
    bad = [c for c in classes if not 0 <= c < data.num_classes]
    if bad:
        raise UserError(f"heldout: classes {bad} do not exist in {data.name} (0..{data.num_classes - 1})")
    if data.num_classes - len(set(classes)) < 2:
        raise UserError(
            f"heldout: {sorted(set(classes))} leaves {data.num_classes - len(set(classes))} of {data.name}'s "
            f"{data.num_classes} classes to train on; keep at least 2"
        )
    held = torch.zeros(data.num_classes, dtype=torch.bool, device=data.train.y.device)
    held[torch.tensor(classes, device=held.device)] = True
    remap = torch.cumsum((~held).long(), 0) - 1

    def keep(split: Split) -> Split:
        mask = ~held[split.y]
        return Split(split.x[mask], remap[split.y[mask]])

    kept = Dataset(
        data.name,
        keep(data.train),
        keep(data.test),
        [c for i, c in enumerate(data.classes) if i not in classes],
        data.mean,
        data.std,
    )
    out = held[data.test.y]
    return kept, Split(data.test.x[out], data.test.y[out])


def coarse_label_map(num_classes: int, groups: list[list[int]], device: torch.device | str = "cpu") -> torch.Tensor:
    """(num_classes,) long: the coarse label (the group's index) of every fine class."""
    mapping = torch.empty(num_classes, dtype=torch.long)
    for c, group in enumerate(groups):
        mapping[torch.tensor(group)] = c
    return mapping.to(device)


def validation_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split, list[int]]:
    """(what is trained on, the held-out validation images, their sorted indices): a seeded `fraction` of `split`,
    drawn by its own generator so the training order is the same with or without a validation split."""
    if fraction == 0:
        return split, Split(split.x[:0], split.y[:0]), []
    n = len(split)
    m = round(n * fraction)
    if not 0 < m < n:
        raise UserError(f"val_fraction {fraction}: holds out {m} of {n} training images; it must leave some of each")
    held = torch.zeros(n, dtype=torch.bool)
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:m]
    held[chosen] = True
    held = held.to(split.y.device)
    return Split(split.x[~held], split.y[~held]), Split(split.x[held], split.y[held]), sorted(chosen.tolist())


def coarsen(data: Dataset, groups: list[list[int]]) -> Dataset:
    """The data set with each group of classes merged into one label (group order), names joined by '+'."""
    mapping = coarse_label_map(data.num_classes, groups, data.train.y.device)
    return Dataset(
        data.name,
        Split(data.train.x, mapping[data.train.y]),
        Split(data.test.x, mapping[data.test.y]),
        ["+".join(data.classes[i] for i in group) for group in groups],
        data.mean,
        data.std,
    )


def load_dataset(
    name: str, data_root: str | Path | None = None, download: bool = False, device: str = "cpu"
) -> Dataset:
    """Load a registered data source by name and move it to `device`."""
    loader = registry.get("dataset", name)
    return loader(data_root=Path(data_root) if data_root else None, download=download).to(device)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1]."""
    return x.float().div_(255.0)
