"""`robustcollapse board`: many result documents in one table per data set, best first, with the intervals and ⚠
marks `eval` prints. Real smoke documents — the committed baseline, and (one slow test) the smoke suite evaluated
once by this code — and copies of them edited to known values."""

from __future__ import annotations

import copy
import csv
import html
import io
import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from robustcollapse.cli import main
from robustcollapse.cli.board import DEFAULT_METRICS
from robustcollapse.report import board
from robustcollapse.report.export import rows
from robustcollapse.report.trust import untrusted

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
BASELINE = ROOT / "results" / "baselines" / "smoke.json"  # the gate's smoke baseline: a real document, schema 1
WORST = "adv/worst-linf-8_255/acc"  # the smoke suite's attack test: its own worst case at eps 8/255


def renamed(doc: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A copy of `doc` whose models are renamed in every per-model section."""
    out = copy.deepcopy(doc)
    for field in ("models", "metrics", "intervals", "n", "samples", "details", "flags", "timings"):
        if isinstance(out.get(field), dict):
            out[field] = {names.get(model, model): value for model, value in out[field].items()}
    return out


def put(doc: dict[str, Any], model: str, key: str, value: float | None, bounds: list[float] | None = None) -> None:
    doc["metrics"][model][key] = value
    if bounds is not None:
        doc["intervals"][model][key] = bounds


def derived(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Documents made from a smoke document by editing it: b.json (other models, schema 2, known clean accuracies
    and intervals), copy.json (the same numbers), mnist.json (another data set, edited to interleave with
    digits'), old.json (schema 1: no intervals), ranked.json (four models of known clean accuracy and NC1) and
    distrusted.json (a check distrusts baseline's worst case)."""
    b = renamed(doc, {"baseline": "wide", "binary": "narrow"})
    b["schema_version"] = 2
    b.setdefault("intervals", {"wide": {}, "narrow": {}})
    put(b, "wide", "clean/acc", 0.99, [0.97, 0.995])
    put(b, "narrow", "clean/acc", 0.5, [0.4, 0.6])

    mnist = renamed(doc, {"baseline": "m-top", "binary": "m-low"})
    mnist["suite"]["dataset"] = "mnist"
    put(mnist, "m-top", "clean/acc", 0.995)  # above every digits row: one list across data sets would lead with it
    put(mnist, "m-low", "clean/acc", 0.10)

    old = copy.deepcopy(doc)
    old["schema_version"] = 1
    old.pop("intervals", None)

    ranked = renamed(doc, {"baseline": "m1", "binary": "m2"})
    ranked["metrics"]["m3"] = dict(ranked["metrics"]["m1"])
    ranked["metrics"]["m4"] = dict(ranked["metrics"]["m1"])
    for model, acc, nc1 in (("m1", 0.7, 0.1), ("m2", 0.9, 0.3), ("m3", 0.8, 0.2), ("m4", None, None)):
        put(ranked, model, "clean/acc", acc)
        put(ranked, model, "nc/nc1", nc1)

    distrusted = copy.deepcopy(doc)
    distrusted["flags"]["baseline"]["attack"].setdefault("numbers", {})[WORST] = {"trusted": False, "why": "planted"}
    return {
        "b.json": b,
        "copy.json": doc,
        "mnist.json": mnist,
        "old.json": old,
        "ranked.json": ranked,
        "distrusted.json": distrusted,
    }


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The committed smoke baseline as smoke.json (a real document of the tool, schema 1: no intervals), and the
    documents `derived` makes from it. Cheap: nothing is evaluated."""
    work = tmp_path_factory.mktemp("board")
    shutil.copytree(ROOT / "suites", work / "suites")
    doc = json.loads(BASELINE.read_text())
    for name, made in {"smoke.json": doc, **derived(doc)}.items():
        (work / name).write_text(json.dumps(made))
    return work, doc


@pytest.fixture(scope="module")
def fresh(smoke_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """smoke.json as this code writes it now (the shared smoke run), and its derived documents."""
    work = tmp_path_factory.mktemp("board-fresh")
    shutil.copytree(ROOT / "suites", work / "suites")
    shutil.copy(smoke_run.folder / "results" / "smoke.json", work / "smoke.json")
    doc = smoke_run.doc
    for name, made in derived(doc).items():
        (work / name).write_text(json.dumps(made))
    return work, doc


def run(work: Path, *args: str, columns: int = 300) -> Any:
    old_cwd = Path.cwd()
    os.chdir(work)
    try:
        return CliRunner().invoke(main, ["board", *args], env={"COLUMNS": str(columns)})
    finally:
        os.chdir(old_cwd)


def cells(work: Path, *args: str, patterns: tuple[str, ...] = ()) -> list[tuple[str, list[str], list[list[str]]]]:
    """Each group's (title, header, rows) as plain text, as every format prints them."""
    old_cwd = Path.cwd()
    os.chdir(work)
    try:
        groups = board.build([Path(a) for a in args], patterns or DEFAULT_METRICS, strict=bool(patterns))
    finally:
        os.chdir(old_cwd)
    return [rows(table) for table in board.tables(groups)]


def unlatex(text: str) -> str:
    """The plain text of a LaTeX cell as `export.latex` escapes it (the characters board cells hold)."""
    for escaped, char in ((r"$\pm$", "±"), (r"$^{\dagger}$", "⚠"), (r"\_", "_"), ("--", "—")):
        text = text.replace(escaped, char)
    return text


def order(body: list[list[str]]) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in body]


DEFAULT_COLUMNS = [
    "clean/acc",
    "adv/worst-linf-8_255/acc",
    "adv/worst-linf-32_255/acc",
    "shift/mean/acc",
    "cal/ece",
    "ood/far/msp/auroc",
    "nc/nc1",
]


def test_rows_sort_best_first_by_the_first_default_column(docs):
    work, doc = docs
    [(title, header, body)] = cells(work, "smoke.json", "b.json", "copy.json")
    assert header == ["document", "model", *DEFAULT_COLUMNS]
    assert title == "digits: 3 documents, 6 rows, by clean/acc (higher is better)"
    assert 0.5 < doc["metrics"]["binary"]["clean/acc"] < doc["metrics"]["baseline"]["clean/acc"] < 0.99
    assert order(body) == [
        ("b.json", "wide"),  # 0.99
        ("smoke.json", "baseline"),
        ("copy.json", "baseline"),  # a tie keeps the order the documents were given in
        ("smoke.json", "binary"),
        ("copy.json", "binary"),
        ("b.json", "narrow"),  # 0.50
    ]


def test_lower_is_better_sorts_ascending_and_missing_values_go_last(docs):
    work, _ = docs
    [(title, _, body)] = cells(work, "ranked.json", patterns=("clean/acc", "nc/nc1"))
    assert [model for _, model in order(body)] == ["m2", "m3", "m1", "m4"]  # clean/acc 0.9, 0.8, 0.7, none
    assert body[-1][2:] == ["—", "—"]
    [(title, _, body)] = cells(work, "ranked.json", patterns=("nc/nc1", "clean/acc"))
    assert title.endswith("by nc/nc1 (lower is better)")
    assert [model for _, model in order(body)] == ["m1", "m3", "m2", "m4"]  # NC1 0.1, 0.2, 0.3, none


def test_cells_carry_their_intervals_and_old_documents_bare_values(docs):
    work, doc = docs
    [(_, header, body)] = cells(work, "smoke.json", "b.json")
    by_row = {(row[0], row[1]): dict(zip(header, row, strict=True)) for row in body}
    assert by_row["b.json", "wide"]["clean/acc"] == "0.9900 ± 0.0125"  # [0.97, 0.995]
    assert by_row["b.json", "narrow"]["clean/acc"] == "0.5000 ± 0.1000"
    assert by_row["smoke.json", "baseline"]["clean/acc"] == f"{doc['metrics']['baseline']['clean/acc']:.4f}"
    assert not any("±" in cell for row in body if row[0] == "smoke.json" for cell in row), "schema 1: bare values"
    bracket = run(work, "b.json", "--metric", "clean/acc", "--intervals", "bracket", "--format", "csv")
    assert bracket.exit_code == 0 and 'wide,"0.9900 [0.9700, 0.9950]"' in bracket.stdout


def assert_marks_follow_untrusted(work: Path, doc: dict[str, Any], name: str) -> None:
    """The models whose cell of a number `untrusted()` reports (the first such key of the document) carry ⚠, and
    only those; the terminal table explains the mark."""
    found = [
        (model, key)
        for model, tests in doc["flags"].items()
        for test in tests
        for key in doc["metrics"][model]
        if untrusted(doc, model, test, key)
    ]
    assert found, "the smoke run distrusts some robust accuracy (binary's PGD rows)"
    key = found[0][1]
    [(_, _, body)] = cells(work, name, patterns=(key,))
    assert {row[1] for row in body if row[2].endswith(" ⚠")} == {model for model, k in found if k == key}
    table = run(work, name, "--metric", key)
    assert table.exit_code == 0 and "⚠ = not trusted: a check fired" in table.stdout


def test_a_number_untrusted_reports_is_marked_as_evals_tables_mark_it(docs):
    work, doc = docs
    [(_, header, body)] = cells(work, "distrusted.json")
    marked = {row[1]: row[header.index(WORST)] for row in body}
    assert marked["baseline"].endswith(" ⚠") and not marked["binary"].endswith("⚠")
    old_cwd = Path.cwd()
    os.chdir(work)
    try:
        [group] = board.build([Path("distrusted.json")], [WORST])
    finally:
        os.chdir(old_cwd)
    cell = next(row.cells[0] for row in group.rows if row.model == "baseline")
    assert cell.why == "planted" and cell.markup.startswith("[bold yellow]") and cell.markup.endswith(" ⚠[/]")
    assert_marks_follow_untrusted(work, doc, "smoke.json")


@pytest.mark.slow  # trains and evaluates the smoke suite (~30 s on 2 cores)
def test_a_document_eval_writes_now_gives_the_default_columns_intervals_and_marks(fresh):
    work, doc = fresh
    [(_, header, body)] = cells(work, "smoke.json", "old.json")
    assert header == ["document", "model", *DEFAULT_COLUMNS], "the default columns match the keys eval writes"
    for row in body:
        metrics, intervals = doc["metrics"][row[1]], doc["intervals"][row[1]]
        for key, text in zip(DEFAULT_COLUMNS, row[2:], strict=True):
            value = f"{metrics[key]:{'.4g' if key == 'nc/nc1' else '.4f'}}"
            if row[0] == "old.json" or key not in intervals:
                assert text == value, (row[:2], key)
            else:
                low, high = intervals[key]
                assert text == f"{value} ± {(high - low) / 2:.4f}", (row[:2], key)
    assert_marks_follow_untrusted(work, doc, "smoke.json")


def test_two_data_sets_are_two_tables_never_one_list(docs):
    work, _ = docs
    groups = cells(work, "smoke.json", "mnist.json", "b.json")
    assert [title.split(":")[0] for title, _, _ in groups] == ["digits", "mnist"]
    (_, _, digits), (_, _, mnist) = groups
    assert {row[0] for row in digits} == {"smoke.json", "b.json"} and {row[0] for row in mnist} == {"mnist.json"}
    assert order(mnist) == [("mnist.json", "m-top"), ("mnist.json", "m-low")]
    assert order(digits)[0] == ("b.json", "wide"), "mnist's 0.995 does not lead the digits table"
    table = run(work, "smoke.json", "mnist.json")
    assert table.exit_code == 0 and table.stdout.count("by clean/acc (higher is better)") == 2


def test_markdown_latex_and_csv_hold_the_same_cells(docs):
    work, _ = docs
    files = ("smoke.json", "mnist.json", "distrusted.json", "b.json")
    expected = cells(work, *files)
    assert sum(len(body) for _, _, body in expected) == 8

    markdown = run(work, *files, "--format", "markdown")
    assert markdown.exit_code == 0, markdown.output
    blocks = [block for block in markdown.stdout.strip().split("\n\n") if block.startswith("|")]
    titles = re.findall(r"^\*\*(.*)\*\*$", markdown.stdout, re.M)
    parsed = []
    for title, block in zip(titles, blocks, strict=True):
        lines = [line[2:-2].split(" | ") for line in block.splitlines()]
        parsed.append((title, lines[0], lines[2:]))
    assert parsed == expected

    latex = run(work, *files, "--format", "latex")
    parsed = []
    for env in latex.stdout.split(r"\begin{table}")[1:]:
        title = re.search(r"\\caption\{(.*)\}", env).group(1)
        lines = env.split("\\toprule\n")[1].split("\\bottomrule")[0].replace("\\midrule\n", "").splitlines()
        header, *body = [unlatex(line.removesuffix(r" \\")).split(" & ") for line in lines]
        parsed.append((unlatex(title), header, body))
    assert parsed == expected
    assert r"$^{\dagger}$" in latex.stdout and r"$\pm$" in latex.stdout

    table = list(csv.reader(io.StringIO(run(work, *files, "--format", "csv").stdout)))
    assert table[0] == ["table", *expected[0][1]]
    assert [row[1:] for row in table if row[0] != "table"] == [row for _, _, body in expected for row in body]
    assert {row[0] for row in table[1:]} >= {title for title, _, _ in expected}


def test_html_page_is_self_contained_and_holds_the_sortable_tables(docs):
    work, _ = docs
    result = run(work, "smoke.json", "mnist.json", "distrusted.json", "--format", "html", "--out", "out/board.html")
    assert result.exit_code == 0, result.output
    assert "board: out/board.html" in result.stdout
    page = (work / "out" / "board.html").read_text()
    expected = cells(work, "smoke.json", "mnist.json", "distrusted.json")
    assert page.count("<table class=board>") == 2 and page.count("<script>") == 1
    assert "addEventListener('click'" in page and "aria-sort" in page
    assert not re.search(r"https?://|src=|<link", page), "nothing fetched"
    parsed = []
    for title, table in re.findall(r"<h2>(.*?)</h2><table class=board>(.*?)</table>", page, re.S):
        lines = [
            [html.unescape(re.sub("<[^>]+>", "", cell)) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr)]
            for tr in re.findall(r"<tr>(.*?)</tr>", table)
        ]
        parsed.append((html.unescape(title), lines[0], lines[1:]))
    assert parsed == expected
    assert 'title="planted"' in page, "the reason a number is not trusted shows on hover"


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian: apt-get install chromium)")
def test_clicking_a_header_sorts_the_html_table(docs, tmp_path):
    work, _ = docs
    assert run(work, "ranked.json", "--format", "html", "--out", "ranked.html").exit_code == 0
    page = (work / "ranked.html").read_text()
    # click nc/nc1 (lower is better: ascending first), record the order, click again (reversed), record it
    probe = (
        "<script>const t = document.querySelector('table.board'); const th = [...t.tHead.rows[0].cells]"
        ".find(c => c.textContent === 'nc/nc1'); const seen = () => [...t.tBodies[0].rows].map(r => r.cells[1]"
        ".textContent).join(','); th.click(); const first = seen(); th.click();"
        " document.body.dataset.sorted = first + ';' + seen();</script></body>"
    )
    (tmp_path / "probe.html").write_text(page.replace("</body>", probe))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    dom = subprocess.run(
        [CHROMIUM, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (tmp_path / "probe.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-sorted="m1,m3,m2,m4;m2,m3,m1,m4"' in dom.stdout, "best first, then reversed; missing stays last"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.json"], "missing.json: result document not found"),
        (["list.json"], "list.json: unreadable: a result document is a JSON object, this is a list"),
        (["suites/smoke.yaml"], "suites/smoke.yaml: not valid JSON"),
        (["smoke.json", "--metric", "clean/acc", "--metric", "nope/*"], "--metric 'nope/*' matches no metric key"),
        (["smoke.json", "--format", "html", "--out", "smoke.json"], "that is the result document the board reads"),
        (["smoke.json", "--out", "x.md"], "--out writes a file: give --format markdown, latex, csv or html"),
        (["smoke.json", "smoke.json"], "a result document is given twice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(docs, args, message):
    work, _ = docs
    (work / "list.json").write_text("[1, 2]")
    before = (work / "smoke.json").read_bytes()
    result = run(work, *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error: "), result.stderr
    assert (work / "smoke.json").read_bytes() == before


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_a_narrow_terminal_splits_the_columns_and_keeps_every_number_on_one_line(docs, columns):
    work, _ = docs
    [(_, header, body)] = cells(work, "smoke.json", "b.json", "distrusted.json")
    result = run(work, "smoke.json", "b.json", "distrusted.json", columns=columns)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= columns
    for key in header[2:]:
        assert sum(f" {key} ┃" in line for line in lines) == 1, f"{key}: one header, whole, on one line"
    for row in body:
        for text in row[2:]:
            assert any(row[0] in line and row[1] in line and text in line for line in lines), (row[:2], text)
    titles = re.findall(r"; columns? (\d+)(?:-(\d+))? of (\d+)", " ".join(result.stdout.split()))
    assert len(titles) > 1, "split into parts, each title saying which columns it holds"
    spans = [(int(first), int(last or first), int(n)) for first, last, n in titles]
    assert spans[0][0] == 1 and spans[-1][1] == len(header) - 2 == spans[0][2]
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans)), spans
    assert "⚠ = not trusted" in result.stdout


def test_the_parts_are_the_columns_in_order_each_one_as_wide_as_the_terminal_allows(docs):
    work, _ = docs
    old_cwd = Path.cwd()
    os.chdir(work)
    try:
        [group] = board.build([Path("smoke.json"), Path("b.json")], DEFAULT_METRICS, strict=False)
    finally:
        os.chdir(old_cwd)
    every = list(range(len(group.columns)))
    assert board._parts(group, None) == [every] and board._parts(group, 400) == [every]
    assert board._parts(group, 10) == [[i] for i in every], "no room: one column per part, never none"
    parts = board._parts(group, 80)
    assert [i for part in parts for i in part] == every and 1 < len(parts) < len(every)
    narrow = board.tables([group], 80)
    assert len(narrow) == len(parts)
    for table in narrow:
        console = Console(width=80, record=True, file=io.StringIO())
        console.print(table)
        assert max(map(len, console.export_text().splitlines())) <= 80
