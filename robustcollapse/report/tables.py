"""Terminal tables (rich): one per test in the suite, its metrics as rows and the models as columns."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from robustcollapse import registry
from robustcollapse.config import Suite
from robustcollapse.metrics.spec import format_value, is_flag
from robustcollapse.report.trust import test_flags, untrusted


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return format(value, spec)


def _flag_cell(check: dict[str, Any] | None) -> str:
    """'ok 0.000', a red 'FLAG 0.120' with the check's figure, or 'n/a' for a check that does not apply."""
    if check is None:
        return "—"
    if check.get("skipped"):
        return "[dim]n/a[/]"
    figure = _fmt(check.get("value"), ".3g")
    return f"[bold red]FLAG {figure}[/]" if check["flag"] else f"[green]ok[/] {figure}"


def fired_checks(doc: dict[str, Any]) -> list[str]:
    """'model / test: summary' for every (model, test) where an honesty check fired."""
    out = []
    for model, tests in doc["flags"].items():
        for test_id, record in tests.items():
            if any(check["flag"] for check in record.get("checks", {}).values()):
                out.append(f"{model} / {test_id}: {record['summary']}")
    return out


INTERVAL_STYLES = ("pm", "bracket", "none")  # 0.640 ± 0.094 | 0.640 [0.546, 0.734] | 0.640


def with_interval(key: str, value: Any, bounds: Any, style: str) -> str:
    """A value as its spec formats it, with its interval in `style`: `pm` prints half the interval's width (an
    asymmetric Wilson interval is then shown symmetric: use `bracket` to see its ends)."""
    text = format_value(key, value)
    if style == "none" or not isinstance(bounds, list) or len(bounds) != 2 or text == "—":
        return text
    low, high = bounds
    if not all(isinstance(b, (int, float)) and math.isfinite(b) for b in (low, high)):
        return text
    if style == "bracket":
        return f"{text} [{format_value(key, low)}, {format_value(key, high)}]"
    return f"{text} ± {format_value(key, (high - low) / 2)}"


def number_cell(doc: dict[str, Any], model: str, test_id: str, key: str, style: str) -> str:
    """A metric's cell (rich markup): its value with its interval in `style`, marked ⚠ in bold yellow when an
    honesty check of `test_id` does not trust it. The tables and `board` mark numbers with this one function."""
    bounds = doc.get("intervals", {}).get(model, {}).get(key)
    text = with_interval(key, doc["metrics"][model].get(key), bounds, style)
    return text if untrusted(doc, model, test_id, key) is None else f"[bold yellow]{text} ⚠[/]"


def result_tables(doc: dict[str, Any], suite: Suite, style: str = "pm") -> list[Table]:
    """One table per test id, titled with the test kind's title and the data it ran on; numbers with their
    intervals in `style` (see `with_interval`) where the document has them."""
    tables = []
    limit = doc["suite"].get("limit")
    for test_id, params in zip(suite.test_ids(), suite.test_entries(), strict=True):
        kind = registry.get("test", params.kind)
        custom = kind.tables(doc, test_id, params, suite.dataset)
        if custom is not None:
            tables.extend(custom)
            continue
        columns = kind.columns(params)
        split = getattr(params, "split", "test")
        where = f"{suite.dataset} {split}" + (f", first {limit}" if limit and split == "test" else "")
        summaries = [
            f"{m}: {test_flags(doc, m, test_id)['summary']}" for m in doc["metrics"] if test_flags(doc, m, test_id)
        ]
        marked = any(test_flags(doc, m, test_id).get("numbers") for m in doc["metrics"])
        caption = "; ".join(summaries) + ("  (⚠ = not trusted: a check fired)" if marked else "")
        table = Table(
            title=escape(f"{test_id}: {kind.title} ({where})"),
            title_justify="left",
            caption=escape(caption) or None,
            caption_justify="left",
        )
        table.add_column("metric", style="bold")
        table.add_column("key", style="dim")
        models = list(doc["metrics"])
        for model in models:
            table.add_column(escape(model), justify="right")
        for key, header in columns:
            if is_flag(key):
                check = key.rsplit("/", 1)[-1]
                cells = [_flag_cell(test_flags(doc, m, test_id).get("checks", {}).get(check)) for m in models]
            elif all(key not in doc["metrics"][m] for m in models):
                continue  # a metric no model has (e.g. the scaled calibration of a suite without temperature)
            else:
                cells = [number_cell(doc, m, test_id, key, style) for m in models]
            table.add_row(header, key, *cells)
        tables.append(table)
    return tables


def headline_keys(suite: Suite) -> set[str]:
    """The keys the verdict table prints: each test's headline (its table's rows by default)."""
    return {key for params in suite.test_entries() for key in registry.get("test", params.kind).headline(params)}


def print_results(doc: dict[str, Any], suite: Suite, console: Console, style: str = "pm") -> None:
    """Every table, then one line naming the honesty checks that fired (or saying none did), then the verdicts of
    each model against the reference (headline metrics)."""
    from robustcollapse.report.replicas import replica_tables
    from robustcollapse.report.verdicts import verdict_tables

    for table in result_tables(doc, suite, style):
        console.print(table)
    fired = fired_checks(doc)
    if fired:
        console.print("[bold red]honesty checks fired[/] — numbers marked ⚠ are not trusted: " + " | ".join(fired))
    elif doc["flags"]:
        console.print("[green]honesty checks: none fired[/]")
    for table in [*verdict_tables(doc, headline_keys(suite)), *replica_tables(doc, headline_keys(suite))]:
        console.print(table)
