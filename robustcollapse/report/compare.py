"""Compare two result documents under direction-aware tolerances: the regression gate.

A key regresses when it moves in its bad direction by more than its tolerance. Direction comes from the
metric's name (accuracies, AUROC, AUPR, peak separation: higher is better; errors, calibration errors, NC
metrics, FPR@95, AURC, honesty flags: lower is better); other keys are reported, never judged. Tolerances:
the defaults below, overridden by `regression: {tolerances: {"adv/*": 0.02}}` in the suite or by a YAML file
(glob patterns; the longest matching pattern wins).
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


@dataclass
class Row:
    model: str
    key: str
    old: float | None
    new: float | None
    tolerance: float
    verdict: str  # regressed | improved | within | changed | missing | new


def load_document(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: result document not found") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{path}: schema_version {doc.get('schema_version')!r}; this version reads {SCHEMA_VERSION}")
    return doc


def _same(a: Any, b: Any) -> bool:
    """Equal, or numbers equal up to float round-off (1e-6 relative): thread counts and BLAS builds move the last
    digits of a metric without anything having changed."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def compare_documents(base: dict[str, Any], new: dict[str, Any], tolerances: dict[str, float]) -> list[Row]:
    """Every metric that moved, appeared or disappeared, with its verdict."""
    rows = []
    for model in sorted(set(base["metrics"]) | set(new["metrics"])):
        old_m, new_m = base["metrics"].get(model, {}), new["metrics"].get(model, {})
        for key in sorted(set(old_m) | set(new_m)):
            a, b = old_m.get(key), new_m.get(key)
            tol = tolerance(key, tolerances)
            if key not in new_m:
                rows.append(Row(model, key, a, None, tol, "missing"))
            elif key not in old_m:
                rows.append(Row(model, key, None, b, tol, "new"))
            elif not _same(a, b):
                sign = direction(key)
                delta = (b - a) if a is not None and b is not None else None
                if sign == 0 or delta is None:
                    verdict = "changed"
                elif sign * delta < -tol:
                    verdict = "regressed"
                elif sign * delta > 0:
                    verdict = "improved"
                else:
                    verdict = "within"
                rows.append(Row(model, key, a, b, tol, verdict))
    return rows


def effective_tolerances(new: dict[str, Any], override: dict[str, float] | None) -> dict[str, float]:
    """Defaults, then the suite's `regression.tolerances`, then a --tolerances file."""
    merged = dict(DEFAULT_TOLERANCES)
    merged.update((new.get("suite", {}).get("regression") or {}).get("tolerances", {}))
    merged.update(override or {})
    return merged
