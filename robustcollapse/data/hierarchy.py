"""Class hierarchies: LCA heights between classes, the coarse groups above the leaves, mistake severity.

A hierarchy is given as a built-in name (`cifar100`: the 20 superclasses over the 100 classes; `pairs`: classes
i and i+K/2 under one parent, for 10-class sets), or a YAML file holding either
  tree:  {animal: {mammal: [cat, dog], bird: [owl]}, vehicle: [car, truck]}     (nested mappings, leaf lists)
or
  paths: [[cat, mammal, animal], [dog, mammal, animal], [car, vehicle]]         (leaf, then its ancestors)
Leaves name the data set's classes, by name or by index. The height of a node is the length of the longest path
from it down to a leaf (leaves 0); the hierarchical distance of two classes is the height of their lowest common
ancestor (0 for the same class) — "Making Better Mistakes" (Bertinetto et al. 2020) and HAFrame's convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from robustcollapse.errors import UserError

CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}
BUILTIN = ("cifar100", "pairs")


@dataclass(frozen=True)
class Hierarchy:
    """Ancestors of each class (index order of the data set), nearest first, root implicit above all."""

    name: str
    ancestors: tuple[tuple[str, ...], ...]

    @property
    def num_classes(self) -> int:
        return len(self.ancestors)

    def lca_heights(self) -> torch.Tensor:
        """(K, K) float64: height of the lowest common ancestor of classes i and j (0 on the diagonal)."""
        height: dict[str, int] = {}
        for chain in self.ancestors:
            for level, node in enumerate(chain, 1):
                height[node] = max(height.get(node, 0), level)
        root = 1 + max((len(c) for c in self.ancestors), default=0)
        k = self.num_classes
        out = torch.zeros(k, k, dtype=torch.float64)
        for i in range(k):
            for j in range(i + 1, k):
                common = [a for a in self.ancestors[i] if a in set(self.ancestors[j])]
                out[i, j] = out[j, i] = height[common[0]] if common else root
        return out

    def groups(self) -> list[list[int]]:
        """The classes under each parent of a leaf (the coarse labels one level up), in order of first class."""
        by_parent: dict[str, list[int]] = {}
        for i, chain in enumerate(self.ancestors):
            by_parent.setdefault(chain[0] if chain else "<root>", []).append(i)
        return list(by_parent.values())


def _pairs(classes: list[str]) -> Hierarchy:
    k = len(classes)
    if k % 2:
        raise UserError(f"hierarchy 'pairs' needs an even number of classes, not {k}")
    half = k // 2
    return Hierarchy("pairs", tuple((f"pair{i % half}",) for i in range(k)))


def _from_paths(name: str, paths: dict[str, tuple[str, ...]], classes: list[str], where: str) -> Hierarchy:
    chains = []
    for index, cls in enumerate(classes):
        chain = paths.get(cls, paths.get(str(index)))
        if chain is None:
            raise UserError(f"{where}: class {cls!r} (index {index}) is not a leaf of the hierarchy")
        chains.append(tuple(chain))
    extra = set(paths) - set(classes) - {str(i) for i in range(len(classes))}
    if extra:
        raise UserError(f"{where}: leaves {sorted(extra)[:5]} are not classes of the data set")
    return Hierarchy(name, tuple(chains))


def _walk(node: Any, above: tuple[str, ...], out: dict[str, tuple[str, ...]], where: str) -> None:
    if isinstance(node, dict):
        for key, child in node.items():
            if child is None:
                out[str(key)] = above
            else:
                _walk(child, (str(key), *above), out, where)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _walk(item, above, out, where)
            else:
                out[str(item)] = above
    else:
        out[str(node)] = above


def load_hierarchy(spec: str, classes: list[str], folder: Path | None = None) -> Hierarchy:
    """A built-in hierarchy or a YAML file (see the module docstring), matched to the data set's classes."""
    if spec == "pairs":
        return _pairs(classes)
    if spec == "cifar100":
        paths = {leaf: (parent,) for parent, leaves in CIFAR100_SUPERCLASSES.items() for leaf in leaves}
        return _from_paths("cifar100", paths, classes, "hierarchy cifar100")
    path = Path(spec) if folder is None or Path(spec).is_absolute() else folder / spec
    if not path.is_file():
        raise UserError(f"hierarchy {spec!r}: not a built-in ({', '.join(BUILTIN)}) and no file {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML ({exc})") from None
    paths: dict[str, tuple[str, ...]] = {}
    if isinstance(data, dict) and "tree" in data:
        _walk(data["tree"], (), paths, str(path))
    elif isinstance(data, dict) and "paths" in data and isinstance(data["paths"], list):
        for row in data["paths"]:
            if not isinstance(row, list) or not row:
                raise UserError(f"{path}: paths: each entry is a list [leaf, parent, grandparent, ...]")
            paths[str(row[0])] = tuple(str(a) for a in row[1:])
    else:
        raise UserError(f"{path}: expected a `tree:` mapping or a `paths:` list")
    return _from_paths(path.stem, paths, classes, str(path))


def mistake_severity(logits: torch.Tensor, y: torch.Tensor, heights: torch.Tensor, ks: list[int]) -> dict[str, float]:
    """Top-1 accuracy, average mistake severity (mean LCA height of the top-1 over the wrong top-1 predictions;
    0 when there are none) and hierarchical distance@k (mean over samples of the mean LCA height between the label
    and each of the top-k predictions)."""
    heights = heights.to(logits.device)
    top = logits.topk(max(ks), dim=1).indices
    pred = top[:, 0]
    wrong = pred != y
    out = {"top1": float((~wrong).double().mean())}
    out["mistake_severity"] = float(heights[y[wrong], pred[wrong]].mean()) if bool(wrong.any()) else 0.0
    for k in ks:
        out[f"dist@{k}"] = float(heights[y[:, None], top[:, :k]].mean())
    return out


def coarse_groups(spec: list[list[int]] | str, classes: list[str]) -> list[list[int]]:
    """Coarse classes as groups of fine class indices: given directly (each class exactly once), or a hierarchy's
    parents of the leaves."""
    if isinstance(spec, str):
        return load_hierarchy(spec, classes).groups()
    flat = sorted(i for group in spec for i in group)
    if flat != list(range(len(classes))) or any(not group for group in spec):
        raise UserError(
            f"coarse: {spec} must split the {len(classes)} classes 0..{len(classes) - 1} into non-empty groups, "
            "each class exactly once"
        )
    return [list(group) for group in spec]
