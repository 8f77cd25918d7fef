"""What a test kind is: parameters (a pydantic model), columns for its table, and `run(context, params)`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from robustcollapse.config import TestEntry
from robustcollapse.data import Dataset, Split
from robustcollapse.io import safe_child
from robustcollapse.metrics import samples
from robustcollapse.metrics.samples import Sample
from robustcollapse.models import Classifier
from robustcollapse.models.forward import Pass, forward_pass


@dataclass
class TestResult:
    """What one test found on one model. `samples` maps a metric key to the per-example evidence behind it (its
    statistic and the names of its arrays in `arrays`, the test's pool): the runner turns them into the key's
    interval and n, and comparisons between models pair them."""

    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, Sample] = field(default_factory=dict)
    arrays: dict[str, torch.Tensor] = field(default_factory=dict)

    def uncertainty(self, confidence: float, seed: int) -> dict[str, Any]:
        """`intervals` and `n` of every metric with evidence, and the evidence itself (`samples`: the pool of
        per-example arrays, encoded, and each key's statistic), so models can later be compared on the same
        examples. The intervals are computed from the arrays as stored (float32), so anyone can recompute them
        from the document."""
        used = {key: sample for key, sample in self.samples.items() if key in self.metrics}
        if not used:
            return {"intervals": {}, "n": {}, "samples": {}}
        names = sorted({name for sample in used.values() for group in sample.groups for name in group})
        encoded = {name: samples.encode(self.arrays[name]) for name in names}
        pool = {name: samples.decode(record) for name, record in encoded.items()}  # as the document stores them
        return {
            "intervals": {key: list(b) for key, b in samples.intervals(used, pool, confidence, seed).items()},
            "n": {key: samples.size(s, pool) for key, s in used.items()},
            "samples": {"arrays": encoded, "keys": {key: s.record() for key, s in used.items()}},
        }


@dataclass
class Context:
    """One model under test, its data (test split already limited), and the shared per-split pass cache."""

    model: Classifier
    data: Dataset
    test_split: Split
    batch_size: int
    seed: int
    data_root: Path | None = None
    download: bool = False
    heldout: Split | None = None  # test images of the classes the suite holds out (near OOD)
    fine: Dataset | None = None  # the fine-labelled data set, when the model was trained on coarse labels
    coarse: list[list[int]] | None = None  # and its coarse classes as groups of fine class indices
    temperature: float | None = None  # when the suite asks for temperature scaling: the model's fitted T
    _passes: dict[str, Pass] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        return self.test_split if name == "test" else self.data.train

    def pass_over(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> Pass:
        """z and logits of images (uint8, or float in [0, 1]), batched, in eval mode (not cached)."""
        return forward_pass(self.model, images, self.batch_size, labels)

    def forward_pass(self, split: str) -> Pass:
        """The pass over a split, computed once and shared by every test of this model."""
        if split not in self._passes:
            data = self.split(split)
            self._passes[split] = self.pass_over(data.x, data.y)
        return self._passes[split]


@contextmanager
def frozen(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The model in eval mode with its parameters frozen (attacks need input gradients only); restored after."""
    model.eval()
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in trainable:
            p.requires_grad_(True)


class TestKind:
    """Base of the registered test kinds."""

    Params: ClassVar[type[TestEntry]] = TestEntry
    title: ClassVar[str] = ""
    colour: ClassVar[str] = "#7f7f7f"  # of its section on the HTML page

    @classmethod
    def columns(cls, params: Any) -> list[tuple[str, str]]:
        """(metric key, header) of the table rows for these parameters; the format comes from the key's MetricSpec."""
        return []

    @classmethod
    def headline(cls, params: Any) -> list[str]:
        """The keys of this test the verdict table prints (every comparison is in the document): by default its
        table's rows."""
        return [key for key, _ in cls.columns(params)]

    @classmethod
    def namespace(cls, params: Any) -> tuple[str, ...]:
        """The key prefixes this test writes alone (every key it writes starts with one of them and a '/'): by
        default its kind (one test of a kind per suite); a kind whose parameters keep two tests apart (a `prefix:`,
        a split) returns those. Two tests of a suite whose prefixes are equal or nested could write the same key:
        a config error naming both (one key, one writer)."""
        return (params.kind,)

    @classmethod
    def across(cls, doc: dict[str, Any], tests: dict[str, Any]) -> None:
        """Once every (model, test) of a document is recorded: what this kind's tests (`tests`: id -> params) say
        together, written into the document (the attack kind compares its tests on shared points); none by default."""

    @classmethod
    def tables(cls, doc: dict[str, Any], test_id: str, params: Any, dataset: str) -> list[Any] | None:
        """Custom rich tables for this test, or None for the standard metric x model table."""
        return None

    @classmethod
    def figures(cls, doc: dict[str, Any], test_id: str, params: Any, out: Path) -> list[tuple[str, Path]]:
        """The PNGs of this test for the HTML page (caption, path), written under `out`; none by default."""
        return []

    @staticmethod
    def run(ctx: Context, params: Any) -> TestResult:
        raise NotImplementedError


def figure_file(out: Path, test_id: str, what: str, model: str | None = None) -> Path:
    """Where a test's figure goes: `out/<test id>-<what>[-<model>].png` (`attack#2` -> `attack-2-…`), the names
    taken from the document made safe, so a model named `../../x` still writes inside `out`."""
    stem = "-".join([test_id.replace("#", "-"), what, *([model] if model else [])])
    return safe_child(out, f"{stem}.png")
