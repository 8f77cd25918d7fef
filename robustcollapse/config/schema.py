"""The schema of suites, recipes and tolerance files: pydantic models that reject unknown fields.

A component (backbone or head) is written either as a bare name (`head: linear`) or as a mapping with its
name and the factory's keyword arguments (`head: {name: binary, d: 16, lam: 10}`); those arguments are checked
against the factory's signature in `robustcollapse.config.checks`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from robustcollapse import registry

MAX_EXAMPLES = 100_000_000  # any per-test example count: ImageNet has 1.3 M training images
SEED_MAX = 2**32 - 1  # what every generator we seed (torch, numpy, the corruptions' counter hash) accepts


Tolerance = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # absolute; NaN would make every move "within"


class Strict(BaseModel):
    """Unknown fields are errors and no number may be NaN or infinite (a NaN compares False to every bound)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Component(Strict):
    """A registered plug-in by name, with the keyword arguments its factory takes."""

    name: str
    args: dict[str, Any] = {}


class Augment(Strict):
    crop: int = Field(0, ge=0, le=1024, description="random-crop padding in pixels (0: off)")
    flip: bool = Field(False, description="random horizontal flip")


class Recipe(Strict):
    """How to train one model; stored in its checkpoint so a stale checkpoint is caught."""

    dataset: str | None = None
    backbone: Component
    head: Component
    epochs: int = Field(10, ge=1, le=100_000)
    batch_size: int = Field(128, ge=1, le=1_000_000)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, le=1e3)
    weight_decay: float = Field(0.0, ge=0, le=1e3)
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Literal["cosine", "constant"] = "cosine"
    augment: Augment = Augment()
    seed: int = Field(0, ge=0, le=SEED_MAX)
    val_fraction: float = Field(
        0.0, ge=0, le=0.5, description="training images held out (seeded) as the validation split; 0: none"
    )
    heldout: list[int] = Field([], description="classes left out of training (default: the suite's)")
    coarse: list[list[int]] | str | None = Field(
        None,
        description="train on coarse labels: groups of class indices merged into one label each, or a hierarchy "
        "(pairs, cifar100, a YAML file) whose parents of the leaves are the coarse classes",
    )

    @field_validator("backbone", "head", mode="before")
    @classmethod
    def _component(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and "name" in value and "args" not in value:
            return {"name": value["name"], "args": {k: v for k, v in value.items() if k != "name"}}
        return value


class Normalize(Strict):
    mean: list[float] = Field(min_length=1)
    std: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _same_length(self) -> Normalize:
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError("mean and std need one value per channel, std > 0")
        return self


class Calibration(Strict):
    """Post-hoc temperature scaling: every test then reports its calibration raw and scaled (`…/ts/…`)."""

    temperature: bool = Field(False, description="fit a temperature by NLL on held-out training images")
    val_fraction: float = Field(
        0.1, gt=0, le=0.5, description="share of the training split held out for the fit (at training time)"
    )


EXTERNAL_SOURCES = ("module", "torchvision", "timm", "robustbench")


class ModelEntry(Strict):
    """A model: our checkpoint and/or recipe, or any PyTorch module (`module:`, `torchvision:`, `timm:` or
    `robustbench:`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    checkpoint: str | None = None
    train: Recipe | None = None
    module: str | None = Field(None, description="import path 'package.module:factory' of an nn.Module factory")
    torchvision: str | None = Field(None, description="a torchvision.models architecture name")
    timm: str | None = Field(None, description="a timm architecture name (pip install 'robustcollapse[timm]')")
    robustbench: str | None = Field(
        None,
        description="a RobustBench model-zoo name; weights read from --model-dir in RobustBench's layout "
        "(pip install 'robustcollapse[robustbench]')",
    )
    dataset: Literal["cifar10", "cifar100", "imagenet"] | None = Field(
        None, description="robustbench: the zoo's data set (default: the suite's)"
    )
    threat_model: Literal["Linf", "L2", "corruptions"] | None = Field(
        None, description="robustbench: the zoo's threat model (default: the norm of the suite's first attack test)"
    )
    kwargs: dict[str, Any] = {}
    weights: str | None = Field(None, description="safetensors, or a state_dict .pt/.pth (weights_only load)")
    normalize: Normalize | None = None
    features: str | None = Field(None, description="module whose input is the penultimate feature")
    calibration: Calibration | None = Field(None, description="overrides the suite's `calibration:`")
    other_dataset: bool = Field(
        False,
        description="evaluate a checkpoint on a data set other than the one it was trained on (same classes and "
        "image shape still required)",
    )
    seeds: list[int] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="train and evaluate one replica per seed (models NAME-s<seed>); needs a `train:` recipe",
    )
    replica_of: str | None = Field(None, description="set by `seeds:` on each replica: the model it replicates")

    @property
    def external(self) -> bool:
        return any(getattr(self, key) is not None for key in EXTERNAL_SOURCES)

    @property
    def source(self) -> str:
        """How an external model is named in messages: its import path or `torchvision NAME` / `timm NAME` /
        `robustbench NAME`."""
        if self.module:
            return self.module
        key = next(k for k in EXTERNAL_SOURCES if getattr(self, k))
        return f"{key} {getattr(self, key)}"


class TestEntry(Strict):
    """Fields every test entry has; each kind adds its own (see `robustcollapse list`)."""

    kind: str
    name: str | None = None


class Regression(Strict):
    """How `robustcollapse compare` judges this suite's results: glob pattern -> absolute tolerance."""

    tolerances: dict[str, Tolerance] = {}


class Suite(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    dataset: str
    seed: int = Field(0, ge=0, le=SEED_MAX)
    batch_size: int = Field(512, ge=1, le=1_000_000)
    limit: int | None = Field(None, ge=1, le=MAX_EXAMPLES, description="evaluate at most this many test examples")
    heldout: list[int] = Field(
        [], description="classes removed from the data set; their test images are the `heldout` OOD set"
    )
    models: list[ModelEntry] = Field(min_length=1)
    tests: list[dict[str, Any]] = Field(min_length=1)
    regression: Regression = Regression()
    calibration: Calibration = Calibration()
    confidence: float = Field(0.95, ge=0.5, le=0.999, description="level of every interval and paired comparison")
    reference: str | None = Field(None, description="the model the others are compared with (default: the first)")
    _source: Path | None = PrivateAttr(None)

    def reference_model(self) -> str:
        """The model every other model is compared with: `reference:` (a replicated model: its first replica),
        else the first model."""
        if self.reference is None:
            return self.models[0].name
        return next((m.name for m in self.models if self.reference in (m.name, m.replica_of)), self.reference)

    @property
    def folder(self) -> Path | None:
        """The suite file's folder: `module:` import paths are resolved from it (then PYTHONPATH)."""
        return self._source.parent if self._source else None

    def calibration_of(self, entry: ModelEntry) -> Calibration:
        """A model's own `calibration:`, else the suite's."""
        return entry.calibration or self.calibration

    def test_entries(self) -> list[TestEntry]:
        """The validated test entries (kind-specific models), in suite order."""
        return [registry.get("test", t["kind"]).Params.model_validate(t) for t in self.tests]

    def test_ids(self) -> list[str]:
        """Stable ids of the tests: the entry's name, else its kind, numbered when a kind repeats."""
        ids: list[str] = []
        for t in self.test_entries():
            base = t.name or t.kind
            ids.append(base if base not in ids else f"{base}#{sum(i.split('#')[0] == base for i in ids) + 1}")
        return ids


class Tolerances(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    tolerances: dict[str, Tolerance]
