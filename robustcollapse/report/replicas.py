"""Seeds as replicas: a model entry with `seeds: [0, 1, 2]` is trained and evaluated once per seed (models
`NAME-s0`, `NAME-s1`, ... with `replica_of: NAME`). Per replicated model and metric: the per-seed values, their mean
± sd and a Student t interval of the mean; between a replicated model and the reference's replicas: Welch's test
on the seed-level values (difference, interval, p, Holm across the metrics, verdict), and which spread dominates —
the seeds' (training noise) or the examples' (test-set noise, from the paired example-level comparison of the
first replicas)."""

from __future__ import annotations

import math
from typing import Any

from rich.markup import escape
from rich.table import Table
from scipy import stats

from robustcollapse.metrics.intervals import holm, t_interval, verdict, welch_interval
from robustcollapse.metrics.spec import format_value, spec_for
from robustcollapse.report.document import finite
from robustcollapse.report.verdicts import reference_of


def groups_of(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Replicated model name -> its members (the per-seed models that have metrics), in seed order."""
    out: dict[str, list[str]] = {}
    for entry in doc.get("suite", {}).get("models", []):
        if isinstance(entry, dict) and entry.get("replica_of") and entry.get("name") in doc["metrics"]:
            out.setdefault(entry["replica_of"], []).append(entry["name"])
    return out


def summarise(doc: dict[str, Any]) -> dict[str, Any]:
    """`replicas` of a document: per replicated model its members and, per metric every member has a finite
    value of, the values, mean, sd and t interval; and the seed-level comparisons with the reference's replicas."""
    confidence = float(doc["suite"].get("confidence", 0.95))
    groups = groups_of(doc)
    models: dict[str, Any] = {}
    for group, members in groups.items():
        rows = {}
        for key in doc["metrics"][members[0]]:
            values = [doc["metrics"][m].get(key) for m in members]
            if all(finite(v) for v in values):
                mean, sd, low, high = t_interval(values, confidence)
                rows[key] = {"values": values, "mean": mean, "sd": sd, "interval": [low, high]}
        models[group] = {"members": members, "metrics": rows}
    reference = reference_of(doc)
    ref_group = next((g for g, members in groups.items() if reference in members), None)
    comparisons = {}
    if ref_group is not None:
        for group in groups:
            if group != ref_group:
                comparisons[group] = _compare(doc, models[ref_group], models[group], confidence)
    return {"confidence": confidence, "reference": ref_group, "models": models, "comparisons": comparisons}


def _example_se(doc: dict[str, Any], model: str, key: str, confidence: float) -> float | None:
    """The standard error of the example-level paired difference of `model` against the reference on `key`
    (its interval's half-width over the normal quantile), or None when it was not compared."""
    for rows in doc.get("comparisons", {}).get("models", {}).get(model, {}).values():
        if key in rows and all(finite(b) for b in rows[key]["interval"]):
            low, high = rows[key]["interval"]
            return (high - low) / (2 * float(stats.norm.ppf((1 + confidence) / 2)))
    return None


def _compare(doc: dict[str, Any], ref: dict[str, Any], other: dict[str, Any], confidence: float) -> dict[str, Any]:
    keys = [k for k in other["metrics"] if k in ref["metrics"]]
    found = {}
    for key in keys:
        a, b = ref["metrics"][key]["values"], other["metrics"][key]["values"]
        difference, low, high, p, se = welch_interval(a, b, confidence)
        found[key] = {"difference": difference, "interval": [low, high], "p": p, "se": se}
    tested = [k for k in keys if finite(found[k]["p"])]
    for key, p_holm in zip(tested, holm([found[k]["p"] for k in tested]) if tested else [], strict=True):
        found[key]["p_holm"] = p_holm
    for key, row in found.items():
        spec = spec_for(key)
        direction = spec.higher_is_better if spec else None
        p_holm = row.get("p_holm", math.nan)
        row["verdict"] = verdict(row["difference"], *row["interval"], p_holm, direction, alpha=1 - confidence)
        example = _example_se(doc, other["members"][0], key, confidence)
        row["example_se"] = example
        if example is not None and finite(row["se"]):
            row["dominates"] = "seeds" if row["se"] > example else "examples"
    return found


def seed_tolerances(doc: dict[str, Any]) -> dict[str, float]:
    """`compare --tolerances auto`: per metric, the move two single runs of one replicated model make by seed
    alone at the document's confidence, t_{(1+c)/2, n-1} * sqrt(2) * sd over seeds (the largest over replicated
    models); empty when the document has no replicas."""
    replicas = doc.get("replicas") or {}
    confidence = float(replicas.get("confidence", 0.95))
    out: dict[str, float] = {}
    for info in replicas.get("models", {}).values():
        quantile = float(stats.t.ppf((1 + confidence) / 2, len(info["members"]) - 1))
        for key, row in info["metrics"].items():
            if finite(row.get("sd")):
                out[key] = max(out.get(key, 0.0), quantile * math.sqrt(2) * row["sd"])
    return out


def replica_tables(doc: dict[str, Any], keys: set[str] | None = None) -> list[Table]:
    """Per replicated model: each seed's value, mean ± sd and the t interval (the metrics in `keys`, or all); per
    replicated model against the reference's replicas: the seed-level Welch comparison and the dominant spread."""
    replicas = doc.get("replicas") or {}
    level = round(100 * replicas.get("confidence", 0.95))
    tables = []
    for group, info in replicas.get("models", {}).items():
        members = info["members"]
        table = Table(
            title=escape(f"replicas: {group} over {len(members)} seeds (mean ± sd, {level}% t interval of the mean)"),
            title_justify="left",
        )
        for header in ("metric", *members, "mean ± sd", "t interval"):
            table.add_column(escape(header), justify="left" if header == "metric" else "right")
        for key, row in info["metrics"].items():
            if keys is None or key in keys:
                low, high = row["interval"]
                table.add_row(
                    escape(key),
                    *(format_value(key, v) for v in row["values"]),
                    f"{format_value(key, row['mean'])} ± {format_value(key, row['sd'])}",
                    f"[{format_value(key, low)}, {format_value(key, high)}]",
                )
        tables.append(table)
    for group, rows in replicas.get("comparisons", {}).items():
        table = Table(
            title=escape(f"seed-level verdicts: {group} against {replicas['reference']} (Welch over seeds)"),
            title_justify="left",
            caption="dominant spread: seeds when the seed-level standard error exceeds the example-level one",
            caption_justify="left",
        )
        for header in ("metric", "difference [interval]", "p (Holm)", "verdict", "dominant spread"):
            table.add_column(header, justify="left" if header in ("metric", "verdict") else "right")
        for key, row in rows.items():
            if keys is None or key in keys:
                low, high = row["interval"]
                interval = f"{row['difference']:+.3f} [{low:+.3f}, {high:+.3f}]" if finite(low) else "—"
                p_holm = row.get("p_holm")
                table.add_row(
                    escape(key),
                    interval,
                    f"{p_holm:.2g}" if finite(p_holm) else "—",
                    row["verdict"],
                    row.get("dominates", "—"),
                )
        tables.append(table)
    return tables
