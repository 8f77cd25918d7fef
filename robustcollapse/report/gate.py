"""Compare two result documents under direction-aware tolerances: the regression gate.

A key regresses when it moves in its bad direction by more than its tolerance. Direction and the default
tolerance come from the key's MetricSpec (declared where the metric is produced, `robustcollapse.metrics.spec`);
a key without a direction is reported, never judged. The suite's `regression: {tolerances: {"adv/*": 0.02}}` and a
--tolerances YAML file override the defaults (glob patterns; the longest matching pattern wins).

The gate also fails when a metric that was a finite number became null/NaN/inf (`broken`), when a model, test or
metric vanished (`missing`), and when either document did not complete or has another schema version.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from robustcollapse.config import Tolerances, load_tolerances
from robustcollapse.errors import UserError
from robustcollapse.metrics.spec import DEFAULT_TOLERANCE, spec_for
from robustcollapse.report.document import READABLE, finite, load_document, number
from robustcollapse.report.replicas import seed_tolerances


def direction(key: str) -> int:
    """+1 if higher is better, -1 if lower is better, 0 if the key is not judged (its MetricSpec says)."""
    spec = spec_for(key)
    return 0 if spec is None else spec.direction


def tolerance(key: str, tolerances: dict[str, float]) -> float:
    """The longest of the user's patterns matching `key`, else the key's MetricSpec default, else DEFAULT_TOLERANCE."""
    matches = [p for p in tolerances if fnmatch.fnmatchcase(key, p)]
    if matches:
        return tolerances[max(matches, key=len)]
    spec = spec_for(key)
    return DEFAULT_TOLERANCE if spec is None else spec.tolerance


FAILING = ("regressed", "broken", "missing")  # verdicts that fail the gate
VERDICTS = (*FAILING, "improved", "within", "changed", "new")
VERDICT_STYLE = dict.fromkeys(FAILING, "bold red") | {
    "improved": "green",
    "within": "dim",
    "changed": "dim",
    "new": "cyan",
}


@dataclass
class Row:
    model: str
    key: str
    old: float | None
    new: float | None
    tolerance: float
    verdict: str  # regressed | broken | missing | improved | within | changed | new


def document_problems(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Whole-document reasons the gate fails: another schema, a run that did not complete, other overrides."""
    problems = []
    for field, what in (("dataset", "data set"), ("heldout", "held-out classes")):
        a, b = (doc.get("suite", {}).get(field) for doc in (base, new))
        if a != b:
            problems.append(f"evaluated on another {what} (baseline {a!r}, new {b!r}): not comparable")
    if base.get("overrides") or new.get("overrides"):
        if (base.get("overrides") or {}) != (new.get("overrides") or {}):
            problems.append(
                f"made with other command-line overrides (baseline {base.get('overrides') or {}}, "
                f"new {new.get('overrides') or {}}): not comparable"
            )
    for label, doc in (("baseline", base), ("new", new)):
        if doc.get("schema_version") not in READABLE:
            readable = " or ".join(map(str, READABLE))
            problems.append(f"{label} document has schema_version {doc.get('schema_version')!r}, not {readable}")
        if doc.get("status") != "complete":
            problems.append(f"{label} document's status is {doc.get('status')!r}, not 'complete'")
    return problems


def _same(a: Any, b: Any) -> bool:
    """Equal, or numbers equal up to float round-off (1e-6 relative): thread counts and BLAS builds move the last
    digits of a metric without anything having changed."""
    if number(a) and number(b):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def _inside(value: float, bounds: Any) -> bool:
    """Whether `value` lies in the baseline's interval [low, high] (False when there is none)."""
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(finite(b) for b in bounds)):
        return False
    return bounds[0] <= value <= bounds[1]


def _verdict(key: str, a: Any, b: Any, tol: float, bounds: Any = None) -> str:
    """The gate's verdict on one metric. A move against the metric's direction by more than its tolerance is a
    regression, unless the new value still lies inside the baseline's interval (`bounds`): then the move is
    within the noise the baseline's own number carries, and it is `within`. A baseline without intervals (a
    version-1 document) is judged by the tolerance alone."""
    if finite(a) and not finite(b):
        return "broken"  # a number became null (NaN/inf in the run) or inf
    sign = direction(key)
    if sign == 0 or not (finite(a) and finite(b)):
        return "changed"
    delta = b - a
    if sign * delta < -tol:
        return "within" if _inside(b, bounds) else "regressed"
    return "improved" if sign * delta > 0 else "within"


def _tests(doc: dict[str, Any], model: str) -> set[str]:
    timings = doc.get("timings")
    return set(timings.get(model) or {}) if isinstance(timings, dict) else set()


def compare_documents(base: dict[str, Any], new: dict[str, Any], tolerances: dict[str, float]) -> list[Row]:
    """Every metric that moved, appeared, broke or disappeared, with its verdict; a vanished model or test is a
    `missing` row of its own (key `<model>` or `<test:ID>`)."""
    rows = []
    for model in sorted(set(base["metrics"]) | set(new["metrics"])):
        if model not in new["metrics"]:
            rows.append(Row(model, "<model>", None, None, 0.0, "missing"))
            continue
        for test in sorted(_tests(base, model) - _tests(new, model)):
            rows.append(Row(model, f"<test:{test}>", None, None, 0.0, "missing"))
        old_m, new_m = base["metrics"].get(model, {}), new["metrics"][model]
        for key in sorted(set(old_m) | set(new_m)):
            a, b = old_m.get(key), new_m.get(key)
            tol = tolerance(key, tolerances)
            if key not in new_m:
                rows.append(Row(model, key, a, None, tol, "missing"))
            elif key not in old_m:
                rows.append(Row(model, key, None, b, tol, "new"))
            elif not _same(a, b):
                bounds = (base.get("intervals") or {}).get(model, {}).get(key)
                rows.append(Row(model, key, a, b, tol, _verdict(key, a, b, tol, bounds)))
    return rows


def effective_tolerances(new: dict[str, Any], override: dict[str, float] | None) -> dict[str, float]:
    """The user's tolerances: the suite's `regression.tolerances`, then a --tolerances file (which wins); a key no
    pattern matches falls back to its MetricSpec's default."""
    regression = new.get("suite", {}).get("regression") or {}
    suite_tolerances = regression.get("tolerances", {}) if isinstance(regression, dict) else regression
    if not isinstance(suite_tolerances, dict):
        raise UserError(
            f"suite.regression: {type(suite_tolerances).__name__}; allowed: a mapping with `tolerances:` of glob "
            "pattern -> finite number >= 0"
        )
    merged: dict[str, Any] = {**suite_tolerances, **(override or {})}
    try:
        return Tolerances.model_validate({"tolerances": merged}).tolerances
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"][1:])
        raise UserError(f"suite.regression.tolerances.{where}: {err['msg']}; allowed: a finite number >= 0") from None


AUTO = "auto"  # `--tolerances auto`: tolerances from the baseline's seed spread (a file named auto: ./auto)


def gate(base: Path, new: Path, tolerances_file: Path | None, console: Console) -> list[str]:
    """`robustcollapse compare`: print every row that moved and the verdict counts; return the reasons the gate
    fails (one line per kind of failure, naming the first few keys), empty when it passes. Unreadable input and a
    crash of the comparison are UserErrors (exit 2), never a regression."""
    old_doc, new_doc = load_document(base, check_schema=False), load_document(new, check_schema=False)
    if tolerances_file is not None and str(tolerances_file) == AUTO:
        override = seed_tolerances(old_doc)
        if not override:
            raise UserError(
                f"--tolerances auto: {base} has no replicated models (`seeds:` in its suite) to take the seed "
                "spread from; give a tolerances YAML instead"
            )
    else:
        override = load_tolerances(tolerances_file) if tolerances_file else None
    try:
        chosen = effective_tolerances(new_doc, override)
    except UserError as exc:
        raise UserError(f"{new}: {exc}") from None
    try:
        rows = compare_documents(old_doc, new_doc, chosen)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise UserError(f"{new}: cannot be compared with {base} ({type(exc).__name__}: {exc})") from None
    if rows:
        console.print(comparison_table(rows, f"compare {base} → {new}"))
    console.print(", ".join(f"{sum(r.verdict == v for r in rows)} {v}" for v in VERDICTS))
    failures = document_problems(old_doc, new_doc)
    for verdict in FAILING:
        names = [f"{r.model}:{r.key}" for r in rows if r.verdict == verdict]
        if names:
            more = f" … ({len(names)} in all)" if len(names) > 5 else ""
            failures.append(f"{verdict}: " + ", ".join(names[:5]) + more)
    return failures


def comparison_table(rows: list[Row], title: str) -> Table:
    """The rows of a comparison as a rich table, failing verdicts in red."""
    table = Table(title=escape(title), title_justify="left")
    for col in ("model", "key", "old", "new", "delta", "tolerance", "verdict"):
        table.add_column(col, justify="right" if col in ("old", "new", "delta", "tolerance") else "left")
    for r in rows:
        delta = r.new - r.old if r.old is not None and r.new is not None else None
        cells = [f"{v:.4g}" if v is not None else "—" for v in (r.old, r.new, delta)]
        verdict = f"[{VERDICT_STYLE[r.verdict]}]{r.verdict}[/]"
        table.add_row(escape(r.model), escape(r.key), *cells, f"{r.tolerance:g}", verdict)
    return table
