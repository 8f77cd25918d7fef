"""Verdicts between models: every model against the suite's reference model, metric by metric, on the examples both
were scored on (the per-example evidence a run keeps in the document's `samples`).

For each test and each metric both models have evidence for: the difference B - A with a paired interval and
p-value (exact McNemar and Newcombe's interval for proportions, the paired bootstrap otherwise), Holm's correction
across the metrics of that test, and a verdict from `intervals.verdict` in the direction of the key's MetricSpec.
A robust accuracy the honesty checks do not trust is never the basis of a verdict: an untrusted number of B never
makes B "better" (it may overstate B), an untrusted number of A never makes B "worse"."""

from __future__ import annotations

from typing import Any

import torch
from rich.markup import escape
from rich.table import Table

from robustcollapse.metrics import samples
from robustcollapse.metrics.intervals import holm, verdict
from robustcollapse.metrics.spec import format_value, spec_for
from robustcollapse.report.trust import untrusted

UNTRUSTED = "not judged: untrusted"
VERDICTS = ("better", "worse", "no detectable difference", UNTRUSTED, "not judged")


def reference_of(doc: dict[str, Any]) -> str | None:
    """The suite's `reference:` model, else its first model with metrics (None for an empty document)."""
    suite = doc.get("suite", {})
    named = suite.get("reference")
    entries = [m for m in suite.get("models", []) if isinstance(m, dict)]
    if named is not None:  # a model, or a replicated model: its first replica
        chosen = [m.get("name") for m in entries if named in (m.get("name"), m.get("replica_of"))]
        if chosen and chosen[0] in doc["metrics"]:
            return chosen[0]
    order = [m.get("name") for m in entries]
    return next((m for m in [*order, *doc["metrics"]] if m in doc["metrics"]), None)


def _pool(block: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {name: samples.decode(record) for name, record in block["arrays"].items()}


def compare_models(doc: dict[str, Any]) -> dict[str, Any]:
    """`comparisons` of a document: {"reference", "confidence", "models": {model: {test id: {key: record}}}}, each
    record the difference, its interval, p, Holm's p, the method, n, both values and the verdict."""
    reference = reference_of(doc)
    confidence = float(doc["suite"].get("confidence", 0.95))
    out: dict[str, Any] = {"reference": reference, "confidence": confidence, "models": {}}
    if reference is None:
        return out
    for model in doc["metrics"]:
        if model == reference:
            continue
        per_test = {}
        for test_id, block in doc["samples"].get(model, {}).items():
            ref_block = doc["samples"].get(reference, {}).get(test_id)
            rows = _compare_test(doc, (reference, model), test_id, (ref_block, block)) if ref_block else {}
            if rows:
                per_test[test_id] = rows
        out["models"][model] = per_test
    return out


def _compare_test(
    doc: dict[str, Any], models: tuple[str, str], test_id: str, blocks: tuple[dict[str, Any], dict[str, Any]]
) -> dict[str, Any]:
    """Model B against reference A on every metric of one test both have evidence for, Holm within the test."""
    (reference, model), (ref_block, block) = models, blocks
    confidence = float(doc["suite"].get("confidence", 0.95))
    a_pool, b_pool = _pool(ref_block), _pool(block)
    a_evidence = {key: samples.Sample.read(record) for key, record in ref_block["keys"].items()}
    b_evidence = {key: samples.Sample.read(record) for key, record in block["keys"].items()}
    seed = int(doc["suite"].get("seed", 0))
    found = samples.paired_all(a_evidence, a_pool, b_evidence, b_pool, confidence, seed)
    rows = {}
    for (key, c), p_holm in zip(found.items(), holm([c.p for c in found.values()]), strict=True):
        spec = spec_for(key)
        direction = spec.higher_is_better if spec else None
        said = verdict(c.difference, c.low, c.high, p_holm, direction, alpha=1 - confidence)
        if (said == "better" and untrusted(doc, model, test_id, key)) or (
            said == "worse" and untrusted(doc, reference, test_id, key)
        ):
            said = UNTRUSTED
        rows[key] = c.record() | {
            "p_holm": p_holm,
            "verdict": said,
            "reference_value": doc["metrics"][reference].get(key),
            "value": doc["metrics"][model].get(key),
        }
    return rows


def _p(p: float, method: str) -> str:
    """A p-value; a bootstrap's 0 means below one over its resamples."""
    if p == 0 and "bootstrap" in method:
        return f"<{1 / samples.RESAMPLES:.0e}"
    return f"{p:.2g}"


def verdict_counts(doc: dict[str, Any], model: str) -> dict[str, int]:
    """How many metrics of `model` got each verdict against the reference."""
    rows = [r for test in doc.get("comparisons", {}).get("models", {}).get(model, {}).values() for r in test.values()]
    return {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS if any(r["verdict"] == v for r in rows)}


def verdict_tables(doc: dict[str, Any], keys: set[str] | None = None) -> list[Table]:
    """One table per compared model: for each test, the metrics (all, or those in `keys`) with both values, the
    difference and its interval, Holm's p and the verdict; the counts of every verdict (over every metric) in the
    caption."""
    comparisons = doc.get("comparisons") or {}
    reference = comparisons.get("reference")
    tables = []
    for model, per_test in comparisons.get("models", {}).items():
        counts = ", ".join(f"{n} {v}" for v, n in verdict_counts(doc, model).items())
        level = round(100 * comparisons.get("confidence", 0.95))
        table = Table(
            title=escape(f"verdicts: {model} against {reference} (paired on the same examples, {level}% intervals)"),
            title_justify="left",
            caption=escape(f"{counts}; p after Holm's correction within each test"),
            caption_justify="left",
        )
        for header, justify in (
            ("test", "left"),
            ("metric", "left"),
            (reference, "right"),
            (model, "right"),
            ("difference [interval]", "right"),
            ("p (Holm)", "right"),
            ("verdict", "left"),
        ):
            table.add_column(escape(str(header)), justify=justify)  # type: ignore[arg-type]
        for test_id, rows in per_test.items():
            for key, row in rows.items():
                if keys is not None and key not in keys:
                    continue
                low, high = row["interval"]
                style = {"better": "green", "worse": "red"}.get(row["verdict"], "dim")
                table.add_row(
                    escape(test_id),
                    escape(key),
                    format_value(key, row["reference_value"]),
                    format_value(key, row["value"]),
                    f"{row['difference']:+.3f} [{low:+.3f}, {high:+.3f}]",
                    _p(row["p_holm"], row["method"]),
                    f"[{style}]{row['verdict']}[/]",
                )
        tables.append(table)
    return tables
