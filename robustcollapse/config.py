"""Suite and recipe schema: YAML -> validated objects. Every error names file:line, the field and the fix.

A component (backbone or head) is written either as a bare name (`head: linear`) or as a mapping with its
name and the factory's keyword arguments (`head: {name: binary, d: 16, lam: 10}`); the factory's signature
is the schema of those arguments, so `robustcollapse list` and validation can never disagree.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from robustcollapse import registry
from robustcollapse.errors import UserError

Loc = tuple[Any, ...]


SEED_MAX = 2**32 - 1  # what every generator we seed (torch, numpy, the corruptions' counter hash) accepts


class ConfigError(UserError):
    """`file:line field: message` — one line, exit code 2."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Component(Strict):
    """A registered plug-in by name, with the keyword arguments its factory takes."""

    name: str
    args: dict[str, Any] = {}


class Augment(Strict):
    crop: int = Field(0, ge=0, description="random-crop padding in pixels (0: off)")
    flip: bool = Field(False, description="random horizontal flip")


class Recipe(Strict):
    """How to train one model; stored in its checkpoint so a stale checkpoint is caught."""

    dataset: str | None = None
    backbone: Component
    head: Component
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
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


class ModelEntry(Strict):
    """A model: our checkpoint and/or recipe, or any PyTorch module (`module:`, `torchvision:` or `timm:`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    checkpoint: str | None = None
    train: Recipe | None = None
    module: str | None = Field(None, description="import path 'package.module:factory' of an nn.Module factory")
    torchvision: str | None = Field(None, description="a torchvision.models architecture name")
    timm: str | None = Field(None, description="a timm architecture name (pip install 'robustcollapse[timm]')")
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

    @property
    def external(self) -> bool:
        return self.module is not None or self.torchvision is not None or self.timm is not None

    @property
    def source(self) -> str:
        """How an external model is named in messages: its import path or `torchvision NAME` / `timm NAME`."""
        return self.module or (f"torchvision {self.torchvision}" if self.torchvision else f"timm {self.timm}")


class TestEntry(Strict):
    """Fields every test entry has; each kind adds its own (see `robustcollapse list`)."""

    kind: str
    name: str | None = None


class Regression(Strict):
    """How `robustcollapse compare` judges this suite's results: glob pattern -> absolute tolerance."""

    tolerances: dict[str, float] = {}


class Suite(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    dataset: str
    seed: int = Field(0, ge=0, le=SEED_MAX)
    batch_size: int = Field(512, ge=1)
    limit: int | None = Field(None, ge=1, description="evaluate at most this many test examples")
    heldout: list[int] = Field(
        [], description="classes removed from the data set; their test images are the `heldout` OOD set"
    )
    models: list[ModelEntry] = Field(min_length=1)
    tests: list[dict[str, Any]] = Field(min_length=1)
    regression: Regression = Regression()
    calibration: Calibration = Calibration()
    _source: Path | None = PrivateAttr(None)

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


# --- YAML with line numbers -------------------------------------------------------------------------


class _DuplicateKey(Exception):
    def __init__(self, loc: Loc, line: int, first: int) -> None:
        super().__init__(loc, line, first)
        self.loc, self.line, self.first = loc, line, first


def _reject_duplicates(node: yaml.MappingNode, loc: Loc) -> None:
    """A key written twice in one mapping is an error (YAML says keys are unique; PyYAML keeps the last)."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else id(key_node)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _DuplicateKey((*loc, key), line, seen[key])
        seen[key] = line


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        _reject_duplicates(node, loc)
        yaml.SafeLoader("").flatten_mapping(node)  # resolve `<<: *anchor` merge keys, explicit keys win
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            out[key] = _construct(value_node, (*loc, key), lines)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, (*loc, i), lines) for i, v in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def load_yaml(path: Path) -> tuple[dict[str, Any], dict[Loc, int]]:
    """Parse a YAML mapping, keeping the line of every key and value."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a YAML file")
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    lines: dict[Loc, int] = {}
    try:
        node = yaml.compose(path.read_bytes().decode("utf-8"), Loader=yaml.SafeLoader)
        data = _construct(node, (), lines) if node is not None else None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: unreadable ({exc.strerror or exc})") from None
    except _DuplicateKey as dup:
        raise ConfigError(
            f"{path}:{dup.line} {_field_name(dup.loc)}: duplicate key (first given on line {dup.first})"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where} invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1 expected a mapping of fields at the top level")
    return data, lines


def _field_name(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _message(err: dict[str, Any], model: type[BaseModel], loc: Loc) -> str:
    if err["type"] == "extra_forbidden":
        owner: Any = model
        for part in loc[:-1]:
            if isinstance(part, int) or owner is None:
                continue
            field = owner.model_fields.get(part) if hasattr(owner, "model_fields") else None
            ann = field.annotation if field else None
            owner = next(
                (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
                None,
            )
        allowed = ", ".join(owner.model_fields) if owner else "?"
        return f"unknown field; allowed: {allowed}"
    return str(err["msg"]).removeprefix("Value error, ")


def validate(model: type[BaseModel], data: Any, path: Path, lines: dict[Loc, int], prefix: Loc = ()) -> Any:
    """model.model_validate(data), with the first error turned into `file:line field: message`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        err = errors[0]
        loc = (*prefix, *err["loc"])
        line_loc = loc
        while line_loc and line_loc not in lines:
            line_loc = line_loc[:-1]
        line = lines.get(line_loc, 1)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{path}:{line} {_field_name(loc)}: {_message(err, model, err['loc'])}{more}") from None


def _fail(path: Path, lines: dict[Loc, int], loc: Loc, message: str) -> None:
    probe = loc
    while probe and probe not in lines:
        probe = probe[:-1]
    raise ConfigError(f"{path}:{lines.get(probe, 1)} {_field_name(loc)}: {message}")


INJECTED = ("classes",)  # factory parameters filled by the library (the data set's class names), not by the suite


def factory_arguments_model(family: str, name: str, positional: int) -> type[BaseModel]:
    """A pydantic model of a factory's keyword arguments (its first `positional` parameters are ours)."""
    params = list(inspect.signature(registry.get(family, name), eval_str=True).parameters.values())[positional:]
    params = [p for p in params if p.name not in INJECTED]
    fields = {p.name: (p.annotation, p.default if p.default is not inspect.Parameter.empty else ...) for p in params}
    return create_model(f"{family}_{name}_args", __config__=ConfigDict(extra="forbid"), **fields)


def argument_summary(family: str, name: str) -> str:
    """'d=16, lam=10.0': the arguments a suite may give a plug-in, with their defaults."""
    if family in ("backbone", "head"):
        fields = factory_arguments_model(family, name, positional=2).model_fields
    elif family == "test":
        fields = {k: f for k, f in registry.get(family, name).Params.model_fields.items() if k not in ("kind", "name")}
    else:
        return ""
    return ", ".join(f"{k}={f.default!r}" if not f.is_required() else k for k, f in fields.items())


def check_recipe(recipe: Recipe, path: Path, lines: dict[Loc, int], loc: Loc) -> None:
    """Names exist in the registries and each component's arguments fit its factory."""
    if recipe.dataset is not None and recipe.dataset not in registry.names("dataset"):
        _fail(path, lines, (*loc, "dataset"), registry.unknown_name_message("dataset", recipe.dataset))
    for family, comp in (("backbone", recipe.backbone), ("head", recipe.head)):
        if comp.name not in registry.names(family):
            _fail(path, lines, (*loc, family), registry.unknown_name_message(family, comp.name))
        arguments = factory_arguments_model(family, comp.name, positional=2)
        validate(arguments, comp.args, path, lines, prefix=(*loc, family))
        comp.args = arguments.model_validate(comp.args).model_dump()


def load_suite(path: str | Path) -> Suite:
    """Read and fully validate a suite file."""
    path = Path(path)
    data, lines = load_yaml(path)
    return check_suite(data, path, lines)


def check_suite(data: dict[str, Any], path: Path, lines: dict[Loc, int]) -> Suite:
    """Validate a suite mapping (from a file, or built in Python with `path` naming its origin) in full."""
    suite = validate(Suite, data, path, lines)
    if suite.dataset not in registry.names("dataset"):
        _fail(path, lines, ("dataset",), registry.unknown_name_message("dataset", suite.dataset))
    seen: set[str] = set()
    for i, entry in enumerate(suite.models):
        if entry.name in seen:
            _fail(path, lines, ("models", i, "name"), f"duplicate model name {entry.name!r}")
        seen.add(entry.name)
        if entry.external:
            _check_external(entry, path, lines, ("models", i))
            continue
        extra = [k for k in ("kwargs", "weights", "normalize", "features") if k in entry.model_fields_set]
        if extra:
            _fail(path, lines, ("models", i, extra[0]), "goes with `module:`, `torchvision:` or `timm:` models only")
        if entry.checkpoint is None and entry.train is None:
            _fail(
                path,
                lines,
                ("models", i),
                "give a `checkpoint:` path, a `train:` recipe (or both), or a `module:`/`torchvision:`/`timm:` model",
            )
        if entry.train is not None:
            check_recipe(entry.train, path, lines, ("models", i, "train"))
    namespaces: dict[str, int] = {}
    for i, test in enumerate(suite.tests):
        kind = test.get("kind") if isinstance(test, dict) else None
        if not isinstance(kind, str):
            _fail(
                path,
                lines,
                ("tests", i),
                f"each test needs a `kind:`; known: {', '.join(registry.names('test'))}",
            )
        if kind not in registry.names("test"):
            _fail(path, lines, ("tests", i, "kind"), registry.unknown_name_message("test", kind))
        params = validate(registry.get("test", kind).Params, test, path, lines, prefix=("tests", i))
        space = registry.get("test", kind).namespace(params)
        if space is not None and space in namespaces:
            _fail(
                path,
                lines,
                ("tests", i),
                f"its metrics would overwrite those of tests[{namespaces[space]}] (both `{space}/…`); "
                "give one of them another `prefix:`",
            )
        if space is not None:
            namespaces[space] = i
        if "heldout" in getattr(params, "sets", []) and not suite.heldout:
            _fail(path, lines, ("tests", i, "sets"), "the 'heldout' set needs the suite's `heldout: [classes]`")
    suite._source = path
    return suite


def _check_external(entry: ModelEntry, path: Path, lines: dict[Loc, int], loc: Loc) -> None:
    given = [key for key in ("module", "torchvision", "timm") if getattr(entry, key)]
    if len(given) > 1:
        _fail(path, lines, (*loc, given[1]), "give one of `module:`, `torchvision:` or `timm:`, not several")
    for key in ("checkpoint", "train"):
        if getattr(entry, key) is not None:
            _fail(
                path, lines, (*loc, key), "our checkpoints and recipes do not mix with `module:`/`torchvision:`/`timm:`"
            )
    if entry.module and ":" not in entry.module:
        _fail(path, lines, (*loc, "module"), f"{entry.module!r}: write it as 'package.module:factory'")
    if entry.torchvision:
        import torchvision

        known = torchvision.models.list_models(module=torchvision.models)
        if entry.torchvision not in known:
            close = difflib.get_close_matches(entry.torchvision, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(
                path,
                lines,
                (*loc, "torchvision"),
                f"unknown torchvision classifier {entry.torchvision!r}{hint}; see torchvision.models.list_models()",
            )
    if entry.timm:
        try:
            import timm
        except ImportError:
            _fail(path, lines, (*loc, "timm"), "timm is not installed: pip install 'robustcollapse[timm]'")
        if not timm.is_model(entry.timm):
            close = difflib.get_close_matches(entry.timm, timm.list_models(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(path, lines, (*loc, "timm"), f"unknown timm model {entry.timm!r}{hint}; see timm.list_models()")


class Tolerances(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tolerances: dict[str, float]


def load_tolerances(path: str | Path) -> dict[str, float]:
    """A YAML mapping of glob pattern -> absolute tolerance (under a `tolerances:` key, or at the top)."""
    path = Path(path)
    data, lines = load_yaml(path)
    if "tolerances" not in data:
        data = {"tolerances": data}
    return validate(Tolerances, data, path, lines).tolerances


def load_recipe(path: str | Path) -> Recipe:
    """Read a single training recipe file (the fields of a suite's `train:` mapping; `dataset` required)."""
    path = Path(path)
    data, lines = load_yaml(path)
    recipe = validate(Recipe, data, path, lines)
    if recipe.dataset is None:
        _fail(path, lines, (), "a recipe file needs `dataset:`")
    check_recipe(recipe, path, lines, ())
    return recipe
