"""Reading suites, recipes and tolerance files in full: the schema, then what it cannot say alone.

Beyond the field types, a suite must name registered plug-ins, give each component arguments its factory takes,
name each model once, give external models one source, and keep the tests' metric namespaces apart. Every
failure is a `ConfigError` naming file:line, the field and the fix.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from robustcollapse import registry
from robustcollapse.config.loading import Loc, fail, load_yaml, validate
from robustcollapse.config.schema import EXTERNAL_SOURCES, SEED_MAX, ModelEntry, Recipe, Suite, Tolerances

SOURCES = "`module:`, `torchvision:`, `timm:` or `robustbench:`"
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
        fail(path, lines, (*loc, "dataset"), registry.unknown_name_message("dataset", recipe.dataset))
    for family, comp in (("backbone", recipe.backbone), ("head", recipe.head)):
        if comp.name not in registry.names(family):
            fail(path, lines, (*loc, family), registry.unknown_name_message(family, comp.name))
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
        fail(path, lines, ("dataset",), registry.unknown_name_message("dataset", suite.dataset))
    seen: set[str] = set()
    for i, entry in enumerate(suite.models):
        if entry.name in seen:
            fail(path, lines, ("models", i, "name"), f"duplicate model name {entry.name!r}")
        seen.add(entry.name)
        _check_model(entry, path, lines, ("models", i))
    suite.models = _replicas(suite.models, path, lines)
    robustbench_defaults(suite)
    for i, entry in enumerate(suite.models):
        if entry.robustbench and entry.dataset is None:
            fail(
                path,
                lines,
                ("models", i, "robustbench"),
                f"RobustBench has cifar10, cifar100 and imagenet models; the suite's data set is {suite.dataset!r}: "
                "give the model a `dataset:`",
            )
    names = [e.name for e in suite.models]
    clash = next((name for name in names if names.count(name) > 1), None)
    if clash is not None:
        fail(path, lines, ("models",), f"a replica's name {clash!r} is also another model's; rename one")
    if suite.reference is not None and suite.reference not in seen | {e.name for e in suite.models}:
        fail(
            path,
            lines,
            ("reference",),
            f"unknown model {suite.reference!r}; the suite's models: {', '.join(e.name for e in suite.models)}",
        )
    namespaces: dict[str, int] = {}
    for i, test in enumerate(suite.tests):
        _check_test(suite, test, namespaces, path, lines, ("tests", i))
    suite._source = path
    return suite


def _replicas(models: list[ModelEntry], path: Path, lines: dict[Loc, int]) -> list[ModelEntry]:
    """Each entry with `seeds:` becomes one model per seed, NAME-s<seed>, its recipe's seed set to it and its
    checkpoint (if given) suffixed -s<seed>: every replica is its own checkpoint, trained and resumed on its own,
    and a job array shares them out like any other models."""
    out = []
    for i, entry in enumerate(models):
        if not entry.seeds:
            out.append(entry)
            continue
        if entry.train is None:
            fail(path, lines, ("models", i, "seeds"), "replicas are trained: give the model a `train:` recipe")
        if len(set(entry.seeds)) != len(entry.seeds) or not all(0 <= s <= SEED_MAX for s in entry.seeds):
            fail(path, lines, ("models", i, "seeds"), f"distinct seeds in 0..{SEED_MAX}, got {entry.seeds}")
        for seed in entry.seeds:
            checkpoint = None
            if entry.checkpoint:
                given = Path(entry.checkpoint)
                checkpoint = str(given.with_name(f"{given.stem}-s{seed}{given.suffix}"))
            recipe = entry.train.model_copy(update={"seed": seed})
            update = {"name": f"{entry.name}-s{seed}", "seeds": None, "replica_of": entry.name, "train": recipe}
            out.append(entry.model_copy(update=update | {"checkpoint": checkpoint}))
    return out


def _check_model(entry: ModelEntry, path: Path, lines: dict[Loc, int], loc: Loc) -> None:
    """One model entry: an external model, or our checkpoint and/or recipe (and then nothing external)."""
    if entry.external:
        _check_external(entry, path, lines, loc)
        return
    extra = [k for k in ("kwargs", "weights", "normalize", "features") if k in entry.model_fields_set]
    if extra:
        fail(path, lines, (*loc, extra[0]), f"goes with {SOURCES} models only")
    zoo = [k for k in ("dataset", "threat_model") if k in entry.model_fields_set]
    if zoo:
        fail(path, lines, (*loc, zoo[0]), "goes with `robustbench:` models only")
    if entry.checkpoint is None and entry.train is None:
        fail(path, lines, loc, f"give a `checkpoint:` path, a `train:` recipe (or both), or a {SOURCES} model")
    if entry.train is not None:
        check_recipe(entry.train, path, lines, (*loc, "train"))


def _check_test(
    suite: Suite, test: Any, namespaces: dict[str, int], path: Path, lines: dict[Loc, int], loc: Loc
) -> None:
    """One test entry: a known kind whose fields validate, with a metric namespace no earlier test has taken
    (recorded in `namespaces`, name -> test index)."""
    kind = test.get("kind") if isinstance(test, dict) else None
    if not isinstance(kind, str):
        fail(path, lines, loc, f"each test needs a `kind:`; known: {', '.join(registry.names('test'))}")
    if kind not in registry.names("test"):
        fail(path, lines, (*loc, "kind"), registry.unknown_name_message("test", kind))
    params = validate(registry.get("test", kind).Params, test, path, lines, prefix=loc)
    spaces = registry.get("test", kind).namespace(params)
    for space in spaces:
        clash = next(((taken, i) for taken, i in namespaces.items() if _nested(space, taken)), None)
        if clash is not None:
            fix = "give one of them another `prefix:`" if "prefix" in type(params).model_fields else "keep one of them"
            message = f"its metrics could overwrite those of tests[{clash[1]}] (`{space}/…` and `{clash[0]}/…`; one "
            fail(path, lines, loc, message + f"key, one writer): {fix}")
    namespaces.update(dict.fromkeys(spaces, loc[-1]))
    if "heldout" in getattr(params, "sets", []) and not suite.heldout:
        fail(path, lines, (*loc, "sets"), "the 'heldout' set needs the suite's `heldout: [classes]`")


def _nested(a: str, b: str) -> bool:
    """Whether key prefixes a and b can name the same key: equal, or one a folder of the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _check_external(entry: ModelEntry, path: Path, lines: dict[Loc, int], loc: Loc) -> None:
    """An external model: one source, none of our checkpoint fields, a name that exists (RobustBench's zoo names
    are checked when the model loads: the zoo is an optional extra)."""
    given = [key for key in EXTERNAL_SOURCES if getattr(entry, key)]
    if len(given) > 1:
        fail(path, lines, (*loc, given[1]), f"give one of {SOURCES}, not several")
    for key in ("checkpoint", "train"):
        if getattr(entry, key) is not None:
            fail(path, lines, (*loc, key), f"our checkpoints and recipes do not mix with {SOURCES}")
    if entry.robustbench:
        _check_robustbench(entry, path, lines, loc)
    else:
        zoo = [k for k in ("dataset", "threat_model") if k in entry.model_fields_set]
        if zoo:
            fail(path, lines, (*loc, zoo[0]), "goes with `robustbench:` models only")
    if entry.module and ":" not in entry.module:
        fail(path, lines, (*loc, "module"), f"{entry.module!r}: write it as 'package.module:factory'")
    if entry.torchvision:
        _check_torchvision(entry.torchvision, path, lines, (*loc, "torchvision"))
    if entry.timm:
        _check_timm(entry.timm, path, lines, (*loc, "timm"))


def _check_robustbench(entry: ModelEntry, path: Path, lines: dict[Loc, int], loc: Loc) -> None:
    """A zoo model brings its own weights (from --model-dir) and its own normalisation ([0, 1] input)."""
    why = {
        "normalize": "RobustBench models take [0, 1] images and normalise inside; `normalize:` would do it twice",
        "weights": "RobustBench weights are read from --model-dir in the zoo's layout, not from `weights:`",
        "kwargs": "RobustBench models are built by the zoo as published; no `kwargs:`",
    }
    for key, message in why.items():
        if key in entry.model_fields_set:
            fail(path, lines, (*loc, key), message)


def robustbench_defaults(suite: Suite) -> None:
    """Fill a `robustbench:` entry's `dataset:` (the suite's, when the zoo has it) and `threat_model:` (the norm of
    the suite's first attack test, else Linf) where the suite leaves them out."""
    attacks = [t for t in suite.tests if isinstance(t, dict) and t.get("kind") == "attack"]
    norm = attacks[0].get("norm", "linf") if attacks else "linf"
    threat = {"linf": "Linf", "l2": "L2"}.get(str(norm), "Linf")
    dataset = suite.dataset if suite.dataset in ("cifar10", "cifar100", "imagenet") else None
    for i, entry in enumerate(suite.models):
        if entry.robustbench:
            update = {"dataset": entry.dataset or dataset, "threat_model": entry.threat_model or threat}
            suite.models[i] = entry.model_copy(update=update)


def _check_torchvision(name: str, path: Path, lines: dict[Loc, int], loc: Loc) -> None:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        fail(path, lines, loc, f"unknown torchvision classifier {name!r}{hint}; see torchvision.models.list_models()")


def _check_timm(name: str, path: Path, lines: dict[Loc, int], loc: Loc) -> None:
    try:
        import timm
    except ImportError:
        fail(path, lines, loc, "timm is not installed: pip install 'robustcollapse[timm]'")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        fail(path, lines, loc, f"unknown timm model {name!r}{hint}; see timm.list_models()")


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
        fail(path, lines, (), "a recipe file needs `dataset:`")
    check_recipe(recipe, path, lines, ())
    return recipe
