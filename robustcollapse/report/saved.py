"""A saved result document, shown again: its terminal tables (`robustcollapse show`) or its plots and HTML page
(`robustcollapse report`), without running anything."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from robustcollapse.config import Suite
from robustcollapse.errors import UserError
from robustcollapse.io import check_output, safe_child
from robustcollapse.report.document import ResultDocument, load_document
from robustcollapse.report.export import render
from robustcollapse.report.html import write_report
from robustcollapse.report.replicas import replica_tables
from robustcollapse.report.tables import headline_keys, print_results, result_tables
from robustcollapse.report.verdicts import verdict_tables


def load_result(path: Path) -> tuple[ResultDocument, Suite]:
    """A saved result document and its suite, validated; a suite that does not validate is a one-line UserError."""
    doc = load_document(path)
    try:
        suite = Suite.model_validate(doc["suite"])
    except Exception as exc:  # noqa: BLE001 - a document from another version or hand-edited
        raise UserError(f"{path}: its `suite` section does not validate ({type(exc).__name__})") from None
    return doc, suite


def show_result(path: Path, console: Console, style: str = "pm") -> ResultDocument:
    """Print the tables of a saved result document on `console`, as `robustcollapse eval` printed them."""
    doc, suite = load_result(path)
    print_results(doc, suite, console, style)
    return doc


def export_result(path: Path, fmt: str, style: str = "pm") -> str:
    """The tables of a saved result document and its verdict tables (headline metrics) as Markdown, LaTeX or CSV."""
    doc, suite = load_result(path)
    keys = headline_keys(suite)
    return render([*result_tables(doc, suite, style), *verdict_tables(doc, keys), *replica_tables(doc, keys)], fmt)


def report_result(path: Path, out: Path | None = None) -> tuple[Path, list[Path]]:
    """Write the plots (PNG) and index.html of a saved result document to `out` (default
    results/report-<suite name>/); return the page and the figures."""
    doc = load_document(path)
    folder = out or safe_child(Path("results"), f"report-{doc['suite'].get('name', path.stem)}")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder}: is a file, not a folder; give a folder for the figures and index.html")
    check_output(folder / "index.html", "--out", {path: "result document the report reads"}, "report page")
    try:
        return write_report(doc, folder)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
