"""Terminal tables (rich) that describe rather than measure: what `robustcollapse list` and `inspect` print.

The plug-in families list what the registry holds, so the caller imports the plug-ins first (the command line
imports `robustcollapse.evaluate`, which registers every one).
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from robustcollapse import registry
from robustcollapse.config import Suite, argument_summary
from robustcollapse.corruptions import CORRUPTIONS
from robustcollapse.errors import UserError

INSPECTED = ["status", "input", "classes", "feature_dim", "classifier", "parameters", "normalisation"]


def models_table(found: dict[str, dict[str, Any]], suite: Suite) -> Table:
    """What the suite sees of each model (`inspect_file`'s description per model): one column per model."""
    table = Table(title=escape(f"models of {suite.name} ({suite.dataset})"), title_justify="left")
    table.add_column("", style="bold")
    for name in found:
        table.add_column(escape(name))
    for field in INSPECTED:
        table.add_row(field, *(escape(str(found[name].get(field, "—"))) for name in found))
    return table


def known_families() -> list[str]:
    """The registered plug-in families, the corruptions last (a table of their values, not of arguments)."""
    return [*(f for f in registry.families() if f != "corruption"), "corruption"]


def listing(family: str | None = None) -> list[Table]:
    """The tables of `robustcollapse list`: every family, or one (`heads` or `head`); an unknown one is a UserError."""
    known = known_families()
    if family is not None and family.rstrip("s") not in known:
        raise UserError(f"unknown family {family!r}; known: {', '.join(known)}")
    return [family_table(fam) for fam in (known if family is None else [family.rstrip("s")])]


def family_table(family: str) -> Table:
    """A family's registered names, the arguments a suite may give each (with defaults) and what each is."""
    if family == "corruption":
        return corruption_table()
    table = Table(title=f"{family}s", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("arguments (defaults)")
    table.add_column("what")
    for name in registry.names(family):
        table.add_row(name, argument_summary(family, name), registry.describe(family, name))
    return table


def corruption_table() -> Table:
    """The 19 corruptions: family, severities and the values of both parameter sets, severity 1 to 5."""
    table = Table(
        title="corruptions (Hendrycks & Dietterich's; family extra = the held-out four); parameter sets: cifar "
        "(make_cifar_c.py, auto below 128 px) and imagenet (make_imagenet_c.py), values for severity 1; 2; 3; 4; 5",
        title_justify="left",
    )
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("family")
    table.add_column("severities")
    table.add_column("cifar")
    table.add_column("imagenet")
    for spec in CORRUPTIONS.values():
        table.add_row(
            spec.name, spec.family, "1-5", "; ".join(map(_short, spec.params)), "; ".join(map(_short, spec.imagenet))
        )
    return table


def _short(value: object) -> str:
    """A parameter value as the table shows it: floats without trailing zeros, tuples in parentheses."""
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)
