"""Suite and recipe schema: YAML -> validated objects. Every error names file:line, the field and the fix.

- `loading.py`: strict YAML that keeps the line of every value, and `ConfigError` messages `file:line field: ...`;
- `schema.py`: the pydantic models (`Suite`, `ModelEntry`, `Recipe`, ...);
- `checks.py`: what the schema cannot say alone (registered names, factory arguments, one source per external
  model, distinct metric namespaces) and the readers `load_suite`, `load_recipe`, `load_tolerances`.

A component (backbone or head) is written either as a bare name (`head: linear`) or as a mapping with its
name and the factory's keyword arguments (`head: {name: binary, d: 16, lam: 10}`); the factory's signature
is the schema of those arguments, so `robustcollapse list` and validation can never disagree.
"""

from robustcollapse.config.checks import (
    INJECTED,
    argument_summary,
    check_recipe,
    check_suite,
    factory_arguments_model,
    load_recipe,
    load_suite,
    load_tolerances,
)
from robustcollapse.config.loading import ConfigError, Loc, load_yaml, validate
from robustcollapse.config.schema import (
    MAX_EXAMPLES,
    SEED_MAX,
    Augment,
    Calibration,
    Component,
    ModelEntry,
    Normalize,
    Recipe,
    Regression,
    Strict,
    Suite,
    TestEntry,
    Tolerances,
)

__all__ = [
    "INJECTED",
    "MAX_EXAMPLES",
    "SEED_MAX",
    "Augment",
    "Calibration",
    "Component",
    "ConfigError",
    "Loc",
    "ModelEntry",
    "Normalize",
    "Recipe",
    "Regression",
    "Strict",
    "Suite",
    "TestEntry",
    "Tolerances",
    "argument_summary",
    "check_recipe",
    "check_suite",
    "factory_arguments_model",
    "load_recipe",
    "load_suite",
    "load_tolerances",
    "load_yaml",
    "validate",
]
