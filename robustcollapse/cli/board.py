"""`robustcollapse board`: one leaderboard of many result documents (the work is in `robustcollapse.report.board`).

A module of its own, registered on the group by `cli/__init__.py`, so `commands.py` stays within its room."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from robustcollapse.cli.commands import console, format_option, intervals_option
from robustcollapse.cli.errors import friendly
from robustcollapse.errors import UserError

# the board's default columns (`report/` names no metric): clean accuracy; the worst-case robust accuracy per threat
# model, across attack tests (worst/…, in suites with several) and each test's own; mean corruption accuracy; ECE;
# far-OOD AUROC of MSP (the first detector of every shipped suite); NC1. Those a document lacks are left out.
DEFAULT_METRICS = ("clean/acc", "worst/*/acc", "*/worst-*/acc", "*/mean/acc", "cal/ece", "ood/far/msp/auroc", "nc/nc1")


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--metric",
    "patterns",
    multiple=True,
    help="Columns: a glob over metric keys, repeatable (one matching no key is exit 2) "
    f"[default: {' '.join(DEFAULT_METRICS)}].",
)
@format_option(
    "html",
    help="Terminal tables, Markdown, LaTeX (booktabs), CSV, or one self-contained HTML page with sortable tables.",
)
@intervals_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the board to this file instead of stdout (not with --format table).",
)
@friendly
def board(results: tuple[Path, ...], patterns: tuple[str, ...], fmt: str, style: str, out: Path | None) -> None:
    """One leaderboard of many result documents: a row per (document, model), best first by the first column,
    numbers with their intervals and ⚠ marks as `eval` prints them, one table per data set."""
    from robustcollapse.report import board as leaderboard

    if out is not None and fmt == "table":
        raise UserError("--out writes a file: give --format markdown, latex, csv or html with it")
    groups = leaderboard.build(results, patterns or DEFAULT_METRICS, style, strict=bool(patterns))
    if fmt == "table":
        for table in leaderboard.tables(groups, console.width):
            console.print(table)
    elif out is None:
        sys.stdout.write(leaderboard.render(groups, fmt))
    else:
        leaderboard.write(leaderboard.render(groups, fmt), out, results)
        console.print(f"board: {out}", markup=False)
