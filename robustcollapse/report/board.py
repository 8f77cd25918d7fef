"""`robustcollapse board`: many result documents side by side, one row per (document, model), best first.

Columns are metric keys picked by glob patterns over the documents' keys. Each cell is the cell `eval`'s tables
print (`tables.number_cell`: the value with its interval where the document has one, ⚠ where an honesty check
does not trust it), so a board never shows a number more confidently than the run that made it. Documents of
different data sets (or of the same data set on a `--limit`ed test subset) measure different things: each such
group is its own table, sorted on its own, never one list across them.
"""

from __future__ import annotations

import fnmatch
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from robustcollapse.errors import UserError
from robustcollapse.io import atomic_write_text, check_output
from robustcollapse.metrics.spec import spec_for
from robustcollapse.report import export
from robustcollapse.report.document import ResultDocument, finite, load_document
from robustcollapse.report.tables import number_cell
from robustcollapse.report.trust import untrusted


@dataclass(frozen=True)
class Cell:
    """One number of the board: its value (None when missing), its table cell (rich markup) and, when an honesty
    check does not trust it, why."""

    value: float | None
    markup: str
    why: str | None


@dataclass(frozen=True)
class Row:
    """One (document, model): the document as given on the command line, and a cell per column."""

    document: str
    model: str
    cells: list[Cell]


@dataclass(frozen=True)
class Group:
    """The documents of one data set (and test subset): their columns and rows, sorted by the first column."""

    dataset: str
    limit: int | None
    documents: list[str]
    columns: list[str]
    rows: list[Row]

    @property
    def title(self) -> str:
        subset = f", first {self.limit} test examples" if self.limit else ""
        order = {1: "higher is better", -1: "lower is better"}.get(direction(self.columns[0]), "not ranked")
        documents = f"{len(self.documents)} document" + ("s" if len(self.documents) > 1 else "")
        return f"{self.dataset}{subset}: {documents}, {len(self.rows)} rows, by {self.columns[0]} ({order})"


def direction(key: str) -> int:
    """+1 when higher is better for `key`, -1 when lower is, 0 when its spec does not say (or it has none)."""
    spec = spec_for(key)
    return 0 if spec is None else spec.direction


def load_documents(paths: Sequence[Path]) -> list[tuple[str, ResultDocument]]:
    """Each path's document, labelled as the path was given; anything unreadable is a one-line UserError."""
    if len(set(map(str, paths))) != len(paths):
        raise UserError("a result document is given twice; give each once")
    docs = []
    for path in paths:
        doc = load_document(path)
        if not isinstance(doc.get("suite"), dict) or not isinstance(doc["suite"].get("dataset"), str):
            raise UserError(f"{path}: no suite.dataset: cannot tell which data set its numbers are on")
        docs.append((str(path), doc))
    return docs


def _keys(docs: list[tuple[str, ResultDocument]]) -> list[str]:
    """Every metric key of the documents, in the order they first appear (a test's own order: eps ascending)."""
    return list(dict.fromkeys(key for _, doc in docs for metrics in doc["metrics"].values() for key in metrics))


def _select(keys: list[str], patterns: Sequence[str]) -> list[str]:
    """The keys each pattern matches, pattern by pattern, each key once."""
    return list(dict.fromkeys(key for pattern in patterns for key in keys if fnmatch.fnmatchcase(key, pattern)))


def _trust_test(doc: ResultDocument, model: str, key: str) -> str:
    """The test whose honesty checks distrust `key` of `model` ("" when none does)."""
    return next((test for test in doc["flags"].get(model, {}) if untrusted(doc, model, test, key)), "")


def _cell(doc: ResultDocument, model: str, key: str, style: str) -> Cell:
    value = doc["metrics"][model].get(key)
    test = _trust_test(doc, model, key)
    why = untrusted(doc, model, test, key) if test else None
    return Cell(value if finite(value) else None, number_cell(doc, model, test, key, style), why)


def _sorted(rows: list[Row], key: str) -> list[Row]:
    """Best first by the first column's direction (input order when it has none); missing values last."""
    sign = direction(key)
    if sign == 0:
        return rows
    return sorted(rows, key=lambda r: (r.cells[0].value is None, -sign * (r.cells[0].value or 0.0)))


def build(paths: Sequence[Path], patterns: Sequence[str], style: str = "pm", strict: bool = True) -> list[Group]:
    """The board of the documents at `paths`: one group per data set (and `--limit`), in the order the data sets
    first appear, its columns the keys `patterns` (globs) match in its documents. With `strict` (patterns the user
    chose) a pattern that matches no key of any document is a UserError; a group with no column at all always is."""
    docs = load_documents(paths)
    for _, doc in docs:
        doc.setdefault("flags", {})
        doc.setdefault("intervals", {})
    every = _keys(docs)
    for pattern in patterns if strict else ():
        if not _select(every, [pattern]):
            example = f"keys look like {every[0]}" if every else "they have no metrics"
            raise UserError(f"--metric {pattern!r} matches no metric key of any document ({example})")
    grouped: dict[tuple[str, int | None], list[tuple[str, ResultDocument]]] = {}
    for label, doc in docs:
        grouped.setdefault((doc["suite"]["dataset"], doc["suite"].get("limit")), []).append((label, doc))
    groups = []
    for (dataset, limit), members in grouped.items():
        columns = _select(_keys(members), patterns)
        if not columns:
            raise UserError(f"no metric of the documents on {dataset} is a board column; pick some with --metric")
        rows = [
            Row(_label(label, doc), model, [_cell(doc, model, key, style) for key in columns])
            for label, doc in members
            for model in doc["metrics"]
        ]
        groups.append(Group(dataset, limit, [label for label, _ in members], columns, _sorted(rows, columns[0])))
    return groups


def _label(label: str, doc: ResultDocument) -> str:
    """A document as its rows name it: its path, and its status when it is not complete."""
    status = doc.get("status")
    return label if status == "complete" else f"{label} ({status})"


def _parts(group: Group, width: int | None) -> list[list[int]]:
    """The group's metric columns (indices) split into consecutive parts whose tables each fit `width` terminal
    columns, every cell and header on one line (all in one part when `width` is None; one column per part when the
    names leave no room for more). A rich table spends 3 columns per column on borders and padding, and 1 more."""
    if width is None:
        return [list(range(len(group.columns)))]
    names = sum(max([len(header), *map(len, labels)]) + 3 for header, labels in _name_columns(group)) + 1
    parts: list[list[int]] = [[]]
    used = names
    for i, key in enumerate(group.columns):
        needed = max([len(key), *(Text.from_markup(row.cells[i].markup).cell_len for row in group.rows)]) + 3
        if parts[-1] and used + needed > width:
            parts.append([])
            used = names
        parts[-1].append(i)
        used += needed
    return parts


def _name_columns(group: Group) -> list[tuple[str, list[str]]]:
    return [("document", [row.document for row in group.rows]), ("model", [row.model for row in group.rows])]


def tables(groups: list[Group], width: int | None = None) -> list[Table]:
    """Rich tables of the groups: one per group (what `show`'s exporters turn into Markdown, LaTeX or CSV), or, for
    a terminal `width` columns wide, a group's columns split over as many tables as it takes to print every number
    on one line, the rows in the same order in each."""
    out = []
    for group in groups:
        parts = _parts(group, width)
        for part in parts:
            marked = any(row.cells[i].why for row in group.rows for i in part)
            span = f"column {part[0] + 1}" if len(part) == 1 else f"columns {part[0] + 1}-{part[-1] + 1}"
            title = group.title if len(parts) == 1 else f"{group.title}; {span} of {len(group.columns)}"
            table = Table(
                title=escape(title),
                title_justify="left",
                caption="⚠ = not trusted: a check fired" if marked else None,
                caption_justify="left",
            )
            table.add_column("document", style="dim", overflow="fold")  # folded, never cut: a name must stay whole
            table.add_column("model", style="bold", overflow="fold")
            for i in part:
                cell_width = max(Text.from_markup(row.cells[i].markup).cell_len for row in group.rows)
                table.add_column(escape(group.columns[i]), justify="right", overflow="fold", min_width=cell_width)
            for row in group.rows:
                table.add_row(escape(row.document), escape(row.model), *(row.cells[i].markup for i in part))
            out.append(table)
    return out


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
table { border-collapse: collapse; margin: .6em 0 2em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: right; } td.name { text-align: left; }
th { background: #f4f4f4; cursor: pointer; user-select: none; } th[aria-sort=descending]::after { content: " ▼"; }
th[aria-sort=ascending]::after { content: " ▲"; } .flag { color: #b36b00; font-weight: bold; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: .85em; }
"""

# click a header: sort by that column, best first (descending when higher is better or unsaid, ascending when lower
# is better, names A to Z); click it again: the reverse. A missing value (no data-v) stays last either way.
SCRIPT = """
document.querySelectorAll('table.board').forEach(table => {
  table.querySelectorAll('thead th').forEach((th, col) => th.addEventListener('click', () => {
    const now = th.getAttribute('aria-sort');
    const down = now ? now === 'ascending' : !['-1', 'text'].includes(th.dataset.dir);
    table.querySelectorAll('thead th').forEach(other => other.removeAttribute('aria-sort'));
    th.setAttribute('aria-sort', down ? 'descending' : 'ascending');
    const body = table.tBodies[0];
    const key = row => row.cells[col].dataset.v;
    const rows = [...body.rows].sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === undefined || y === undefined) return (x === undefined) - (y === undefined);
      const diff = th.dataset.dir === 'text' ? x.localeCompare(y) : Number(x) - Number(y);
      return down ? -diff : diff;
    });
    rows.forEach(row => body.appendChild(row));
  }));
});
"""


def _html_table(group: Group) -> str:
    marked = any(cell.why for row in group.rows for cell in row.cells)
    sorted_by = {1: ' aria-sort="descending"', -1: ' aria-sort="ascending"'}.get(direction(group.columns[0]), "")
    head = '<th data-dir="text">document</th><th data-dir="text">model</th>' + "".join(
        f'<th data-dir="{direction(key)}"{sorted_by if i == 0 else ""}>{html.escape(key)}</th>'
        for i, key in enumerate(group.columns)
    )
    body = []
    for row in group.rows:
        cells = [
            f'<td class=name data-v="{html.escape(row.document)}">{html.escape(row.document)}</td>',
            f'<td class=name data-v="{html.escape(row.model)}">{html.escape(row.model)}</td>',
        ]
        for cell in row.cells:
            value = "" if cell.value is None else f' data-v="{cell.value!r}"'
            text = html.escape(export.plain(cell.markup))
            if cell.why is not None:
                text = f'<span class=flag title="{html.escape(cell.why)}">{text}</span>'
            cells.append(f"<td{value}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption = "<caption>⚠ = not trusted: a check fired (hover for which)</caption>" if marked else ""
    return (
        f"<h2>{html.escape(group.title)}</h2><table class=board>{caption}<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def render_html(groups: list[Group]) -> str:
    """One self-contained page (inline CSS and script, nothing fetched): a sortable table per group."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>robustcollapse board</title>"
        f"<style>{STYLE}</style></head><body><h1>robustcollapse board</h1>"
        + "".join(_html_table(group) for group in groups)
        + f"<script>{SCRIPT}</script></body></html>\n"
    )


def render(groups: list[Group], fmt: str) -> str:
    """The board as text in `fmt`: html (the page) or markdown, latex or csv (`show`'s exporters)."""
    if fmt == "html":
        return render_html(groups)
    return export.render(tables(groups), fmt)


def write(text: str, out: Path, inputs: Sequence[Path]) -> None:
    """Write the board to `out` through the write guard: never over one of its input documents (or another
    artefact of the tool), atomically."""
    check_output(out, "--out", {path: "result document the board reads" for path in inputs}, "board")
    atomic_write_text(out, text)
