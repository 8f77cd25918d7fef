"""The terminal tables in paper-ready formats: Markdown, LaTeX (booktabs) and CSV, from the same rich Tables
`show` prints, so every format holds the same cells (values with their intervals, the ⚠ marks, the verdicts)."""

from __future__ import annotations

import csv
import io

from rich.table import Table
from rich.text import Text

FORMATS = ("table", "markdown", "latex", "csv")
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "⚠": r"$^{\dagger}$",
    "ε": r"$\varepsilon$",
    "—": "--",
    "−": "-",
}


def plain(cell: object) -> str:
    """A cell's text without rich markup or styles."""
    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(str(cell)).plain if cell is not None else ""


def rows(table: Table) -> tuple[str, list[str], list[list[str]]]:
    """A table's title, header and rows as plain text."""
    header = [plain(column.header) for column in table.columns]
    columns = [[plain(cell) for cell in column.cells] for column in table.columns]
    return plain(table.title or ""), header, [list(row) for row in zip(*columns, strict=True)]


def _markdown_cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text.replace("\n", " "))


def markdown(tables: list[Table]) -> str:
    """One Markdown table per rich table, its title as a bold line above it."""
    out = []
    for table in tables:
        title, header, body = rows(table)
        lines = [f"**{_markdown_cell(title)}**", "", "| " + " | ".join(map(_markdown_cell, header)) + " |"]
        lines.append("|" + "|".join("---:" if col.justify == "right" else "---" for col in table.columns) + "|")
        lines += ["| " + " | ".join(map(_markdown_cell, row)) + " |" for row in body]
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def latex(tables: list[Table]) -> str:
    """One booktabs `table` environment per rich table (needs \\usepackage{booktabs}), its title as caption."""
    out = []
    for table in tables:
        title, header, body = rows(table)
        spec = "".join("r" if col.justify == "right" else "l" for col in table.columns)
        lines = [
            r"\begin{table}[ht]",
            r"\centering",
            rf"\caption{{{_latex(title)}}}",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            " & ".join(map(_latex, header)) + r" \\",
            r"\midrule",
            *(" & ".join(map(_latex, row)) + r" \\" for row in body),
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
        ]
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def csv_text(tables: list[Table]) -> str:
    """Every table as CSV rows with the table's title as first column: one file a spreadsheet can filter."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for table in tables:
        title, header, body = rows(table)
        writer.writerow(["table", *header])
        writer.writerows([title, *row] for row in body)
    return buffer.getvalue()


def render(tables: list[Table], fmt: str) -> str:
    """The tables in `fmt` (markdown, latex or csv)."""
    if fmt == "markdown":
        return markdown(tables)
    if fmt == "latex":
        return latex(tables)
    if fmt == "csv":
        return csv_text(tables)
    raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS[1:])}")
