"""What a test kind is: parameters (a pydantic model), columns for its table, and `run(context, params)`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from robustcollapse.config import TestEntry
from robustcollapse.data import Dataset, Split
from robustcollapse.models import Classifier
from robustcollapse.train import to_float


@dataclass
class Pass:
    """Latent features z, logits and labels of one model over one split: computed once, read by every metric."""

    z: torch.Tensor
    logits: torch.Tensor
    y: torch.Tensor


@dataclass
class TestResult:
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """One model under test, its data (test split already limited), and the shared per-split pass cache."""

    model: Classifier
    data: Dataset
    test_split: Split
    batch_size: int
    seed: int
    _passes: dict[str, Pass] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        return self.test_split if name == "test" else self.data.train

    @torch.inference_mode()
    def forward_pass(self, split: str) -> Pass:
        """z and logits over a split, batched, in eval mode; cached for the other tests of this model."""
        if split not in self._passes:
            data = self.split(split)
            self.model.eval()
            zs, logits = [], []
            for i in range(0, len(data), self.batch_size):
                z, out = self.model.forward_all(to_float(data.x[i : i + self.batch_size]))
                zs.append(z.float())
                logits.append(out.float())
            self._passes[split] = Pass(torch.cat(zs), torch.cat(logits), data.y)
        return self._passes[split]


class TestKind:
    """Base of the registered test kinds."""

    Params: ClassVar[type[TestEntry]] = TestEntry
    title: ClassVar[str] = ""

    @classmethod
    def columns(cls, params: Any) -> list[tuple[str, str, str]]:
        """(metric key, header, format spec) of the table columns for these parameters."""
        return []

    @staticmethod
    def run(ctx: Context, params: Any) -> TestResult:
        raise NotImplementedError
