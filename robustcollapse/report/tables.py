"""Terminal tables (rich): one per test in the suite, its metrics as rows and the models as columns."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from robustcollapse import registry
from robustcollapse.config import Suite


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return format(value, spec)


def _flag_cell(check: dict[str, Any] | None) -> str:
    """'ok 0.000' or a red 'FLAG 0.120' with the check's figure."""
    if check is None:
        return "—"
    figure = _fmt(check.get("value"), ".3g")
    return f"[bold red]FLAG {figure}[/]" if check["flag"] else f"[green]ok[/] {figure}"


def result_tables(doc: dict[str, Any], suite: Suite) -> list[Table]:
    """One table per test id, titled with the test kind's title and the data it ran on."""
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
        table = Table(title=escape(f"{test_id}: {kind.title} ({where})"), title_justify="left")
        table.add_column("metric", style="bold")
        table.add_column("key", style="dim")
        models = list(doc["metrics"])
        for model in models:
            table.add_column(escape(model), justify="right")
        for key, header, spec in columns:
            if spec == "flag":
                check = key.rsplit("/", 1)[-1]
                cells = [_flag_cell(doc["flags"].get(m, {}).get(test_id, {}).get(check)) for m in models]
            elif all(key not in doc["metrics"][m] for m in models):
                continue  # a metric no model has (e.g. the scaled calibration of a suite without temperature)
            else:
                cells = [_fmt(doc["metrics"][m].get(key), spec) for m in models]
            table.add_row(header, key, *cells)
        tables.append(table)
    return tables


def print_results(doc: dict[str, Any], suite: Suite, console: Console) -> None:
    for table in result_tables(doc, suite):
        console.print(table)
