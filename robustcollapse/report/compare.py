"""Compare two result documents under direction-aware tolerances: the regression gate.

A key regresses when it moves in its bad direction by more than its tolerance. Direction comes from the
metric's name (accuracies, AUROC, AUPR, peak separation: higher is better; errors, calibration errors, NC
metrics, FPR@95, AURC, honesty flags: lower is better); other keys are reported, never judged. Tolerances:
the defaults below, overridden by `regression: {tolerances: {"adv/*": 0.02}}` in the suite or by a YAML file
(glob patterns; the longest matching pattern wins).

The gate also fails when a metric that was a finite number became null/NaN/inf (`broken`), when a model, test or
metric vanished (`missing`), and when either document did not complete or has another schema version.
"""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustcollapse.errors import UserError
from robustcollapse.report.document import SCHEMA_VERSION

HIGHER = (
    "acc",
    "auroc",
    "aupr_in",
    "aupr_out",
    "peak_sep",
    "same_code",
    "rel_norm",
    "rel_norm_median",
    "success",
    "top1",
    "ovr_margin_min",
    "ovr_margin_mean",
    "min_angle",
)
LOWER = (
    "nll",
    "brier",
    "ece",
    "aece",
    "mce",
    "cwece",
    "nc1",
    "within_between",
    "nc3",
    "nc4",
    "equinorm",
    "equiangular",
    "maxangle",
    "etf_means",
    "etf_w",
    "w_equinorm",
    "fpr95",
    "aurc",
    "error",
    "rel_drop",
    "mistake_severity",
)
DEFAULT_TOLERANCES = {"*": 0.02, "adv/flags/*": 0.0, "*/nc1": 0.05, "*/within_between": 0.05, "*/min_angle": 1.0}


def direction(key: str) -> int:
    """+1 if higher is better, -1 if lower is better, 0 if the key is not judged."""
    if key.startswith("adv/flags/"):
        return -1
    leaf = key.rsplit("/", 1)[-1]
    if leaf in HIGHER or leaf.endswith("_acc"):
        return 1
    return -1 if leaf in LOWER or leaf.startswith("dist@") else 0


def tolerance(key: str, tolerances: dict[str, float]) -> float:
    matches = [p for p in tolerances if fnmatch.fnmatchcase(key, p)]
    return tolerances[max(matches, key=len)] if matches else 0.0


FAILING = ("regressed", "broken", "missing")  # verdicts that fail the gate


@dataclass
class Row:
    model: str
    key: str
    old: float | None
    new: float | None
    tolerance: float
    verdict: str  # regressed | broken | missing | improved | within | changed | new


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_document(path: Path, check_schema: bool = True) -> dict[str, Any]:
    """Read a result document; anything that is not one is a one-line UserError (exit 2).

    With `check_schema=False` a document of another schema version is returned as is (the gate reports it as a
    failure rather than as unreadable input)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a result document")
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path}: result document not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: unreadable: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise UserError(f"{path}: unreadable: {exc.strerror or exc}") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: unreadable: a result document is a JSON object, this is a {type(doc).__name__}")
    if check_schema and doc.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{path}: schema_version {doc.get('schema_version')!r}; this version reads {SCHEMA_VERSION}")
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict) or not all(isinstance(m, dict) for m in metrics.values()):
        raise UserError(f"{path}: unreadable: field 'metrics' must map each model to its metrics")
    for model, values in metrics.items():
        for key, value in values.items():
            if value is not None and not _number(value):
                raise UserError(
                    f"{path}: unreadable: metrics.{model}.{key} is {type(value).__name__}; allowed: a number or null"
                )
    return doc


def document_problems(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Whole-document reasons the gate fails: another schema, a run that did not complete, other overrides."""
    problems = []
    if base.get("overrides") or new.get("overrides"):
        if (base.get("overrides") or {}) != (new.get("overrides") or {}):
            problems.append(
                f"made with other command-line overrides (baseline {base.get('overrides') or {}}, "
                f"new {new.get('overrides') or {}}): not comparable"
            )
    for label, doc in (("baseline", base), ("new", new)):
        if doc.get("schema_version") != SCHEMA_VERSION:
            problems.append(f"{label} document has schema_version {doc.get('schema_version')!r}, not {SCHEMA_VERSION}")
        if doc.get("status") != "complete":
            problems.append(f"{label} document's status is {doc.get('status')!r}, not 'complete'")
    return problems


def _same(a: Any, b: Any) -> bool:
    """Equal, or numbers equal up to float round-off (1e-6 relative): thread counts and BLAS builds move the last
    digits of a metric without anything having changed."""
    if _number(a) and _number(b):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def _finite(value: Any) -> bool:
    return _number(value) and math.isfinite(value)


def _verdict(key: str, a: Any, b: Any, tol: float) -> str:
    if _finite(a) and not _finite(b):
        return "broken"  # a number became null (NaN/inf in the run) or inf
    sign = direction(key)
    if sign == 0 or not (_finite(a) and _finite(b)):
        return "changed"
    delta = b - a
    if sign * delta < -tol:
        return "regressed"
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
                rows.append(Row(model, key, a, b, tol, _verdict(key, a, b, tol)))
    return rows


def effective_tolerances(new: dict[str, Any], override: dict[str, float] | None) -> dict[str, float]:
    """Defaults, then the suite's `regression.tolerances`, then a --tolerances file."""
    merged = dict(DEFAULT_TOLERANCES)
    merged.update((new.get("suite", {}).get("regression") or {}).get("tolerances", {}))
    merged.update(override or {})
    return merged
