"""The versioned result document: one JSON per run, written atomically by `robustcollapse.io`.

`ResultDocument` types its fields (DESIGN.md §5): per model, `metrics` maps keys (see each key's MetricSpec) to a
number or null; `details` and `flags` hold each test's extra records by test id; `timings` the seconds per test.
Documents of another `schema_version` are refused by readers (the gate reports them as a failure)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, TypedDict

from robustcollapse.errors import UserError
from robustcollapse.io import read_json

SCHEMA_VERSION = 2
READABLE = (1, 2)  # version 1 had no intervals, n, samples or comparisons; it reads as a document without them
# the top-level fields that are JSON objects (readers call .get on them: another type is an unreadable document)
OBJECT_FIELDS = (
    *("suite", "env", "models", "intervals", "n", "samples", "comparisons", "replicas"),
    *("details", "flags", "timings", "overrides"),
)


class ResultDocument(TypedDict):
    """One run's results. `status` is complete only when every (model, test) finished."""

    schema_version: int
    status: Literal["running", "complete", "interrupted"]
    suite: dict[str, Any]
    env: dict[str, Any]
    models: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, float | None]]
    intervals: dict[str, dict[str, list[float | None]]]
    n: dict[str, dict[str, int]]
    samples: dict[str, dict[str, Any]]
    comparisons: dict[str, Any]
    replicas: dict[str, Any]
    details: dict[str, dict[str, Any]]
    flags: dict[str, dict[str, Any]]
    timings: dict[str, dict[str, float]]
    warnings: list[str]
    overrides: dict[str, Any]


def new_document(suite: dict[str, Any], env: dict[str, Any]) -> ResultDocument:
    """An empty result document, status running."""
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "running",
        "suite": suite,
        "env": env,
        "models": {},
        "metrics": {},
        "intervals": {},
        "n": {},
        "samples": {},
        "comparisons": {},
        "replicas": {},
        "details": {},
        "flags": {},
        "timings": {},
        "warnings": [],
        "overrides": {},
    }


def number(value: Any) -> bool:
    """A JSON number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite(value: Any) -> bool:
    """A JSON number (not a bool) that is neither NaN nor infinite."""
    return number(value) and math.isfinite(value)


def load_document(path: Path, check_schema: bool = True) -> ResultDocument:
    """Read a result document; anything that is not one is a one-line UserError (exit 2).

    With `check_schema=False` a document of another schema version is returned as is (the gate reports it as a
    failure rather than as unreadable input)."""
    path = Path(path)
    doc = read_json(path, "result document")
    if not isinstance(doc, dict):
        raise UserError(f"{path}: unreadable: a result document is a JSON object, this is a {type(doc).__name__}")
    if check_schema and doc.get("schema_version") not in READABLE:
        raise UserError(
            f"{path}: schema_version {doc.get('schema_version')!r}; this version reads "
            + " and ".join(map(str, READABLE))
        )
    for field in OBJECT_FIELDS:
        if field in doc and not isinstance(doc[field], dict):
            raise UserError(f"{path}: unreadable: field {field!r} is {type(doc[field]).__name__}; allowed: an object")
    if "warnings" in doc and not isinstance(doc["warnings"], list):
        raise UserError(f"{path}: unreadable: field 'warnings' is {type(doc['warnings']).__name__}; allowed: a list")
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict) or not all(isinstance(m, dict) for m in metrics.values()):
        raise UserError(f"{path}: unreadable: field 'metrics' must map each model to its metrics")
    for model, values in metrics.items():
        for key, value in values.items():
            if value is not None and not number(value):
                raise UserError(
                    f"{path}: unreadable: metrics.{model}.{key} is {type(value).__name__}; allowed: a number or null"
                )
    return doc
