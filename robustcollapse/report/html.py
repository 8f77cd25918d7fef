"""`robustcollapse report`: the PNG figures of a result document and one self-contained HTML page.

The page embeds every figure as a data: URI and needs no network or script to render; a short inline script only
records, on the <body>, how many images decoded (the browser test reads it). Each test is a <section> whose
heading carries a colour per test kind, so a screenshot shows which sections rendered.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustcollapse import registry
from robustcollapse.config import Suite
from robustcollapse.errors import UserError
from robustcollapse.io import atomic_write_text
from robustcollapse.metrics.spec import is_flag
from robustcollapse.report import plots
from robustcollapse.report.export import rows
from robustcollapse.report.tables import headline_keys, with_interval
from robustcollapse.report.trust import test_flags, untrusted
from robustcollapse.report.verdicts import verdict_tables
from robustcollapse.training.tracking import TRACKED

TRAINING_COLOUR = "#8c564b"  # the training section (each test kind names its own colour)
OWN_COLOURS = {"training": TRAINING_COLOUR, "verdicts": "#17becf"}  # the sections that are not a test


@dataclass
class Section:
    anchor: str
    title: str
    kind: str
    tables: list[str] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)


def _fmt(value: Any) -> str:
    """A value that is not a metric (a convergence epoch, a sidecar's accuracy): 4 significant digits, '—' if none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _metric_table(doc: dict[str, Any], columns: list[tuple[str, str]], test_id: str) -> str:
    models = list(doc["metrics"])
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    rows = []
    for key, header in columns:
        if is_flag(key):
            check = key.rsplit("/", 1)[-1]
            cells = []
            for m in models:
                found = test_flags(doc, m, test_id).get("checks", {}).get(check)
                cells.append("—" if found is None else ("<b class=flag>FLAG</b>" if found["flag"] else "ok"))
        else:
            cells = []
            for m in models:
                why = untrusted(doc, m, test_id, key)
                bounds = doc.get("intervals", {}).get(m, {}).get(key)
                text = html.escape(with_interval(key, doc["metrics"][m].get(key), bounds, "pm"))
                cells.append(text if why is None else f"<b class=flag title='{html.escape(why)}'>{text} ⚠</b>")
        cells_html = "".join(f"<td>{c}</td>" for c in cells)
        rows.append(f"<tr><th>{html.escape(header)}</th><td class=key>{html.escape(key)}</td>{cells_html}</tr>")
    return f"<table><tr><th>metric</th><th>key</th>{head}</tr>{''.join(rows)}</table>"


def build_sections(doc: dict[str, Any], out: Path) -> list[Section]:
    """Write every figure under `out` and return the page's sections in suite order (training first)."""
    try:
        suite = Suite.model_validate(doc["suite"])
    except Exception as exc:  # noqa: BLE001 - a document from another version or hand-edited
        raise UserError(f"its `suite` section does not validate ({type(exc).__name__})") from None
    sections = []
    histories = {m: info.get("history") or [] for m, info in doc["models"].items()}
    if any(histories.values()):
        training = Section("training", "Training and collapse over epochs", "training")
        path = plots.training_curves(histories, TRACKED, out / "training.png")
        if path is not None:
            training.figures.append(("Per-epoch curves (fixed training subset)", path))
        rows = "".join(
            f"<tr><th>{html.escape(m)}</th><td>{_fmt(info.get('convergence_epoch'))}</td>"
            f"<td>{len(histories[m])}</td><td>{_fmt((info.get('train_metrics') or {}).get('test_acc'))}</td></tr>"
            for m, info in doc["models"].items()
        )
        training.tables.append(
            f"<table><tr><th>model</th><th>convergence epoch</th><th>epochs</th><th>test acc</th></tr>{rows}</table>"
        )
        sections.append(training)
    for test_id, params in zip(suite.test_ids(), suite.test_entries(), strict=True):
        kind = registry.get("test", params.kind)
        section = Section(f"test-{test_id.replace('#', '-')}", f"{test_id}: {kind.title}", params.kind)
        section.tables.append(_metric_table(doc, kind.columns(params), test_id))
        section.figures.extend(kind.figures(doc, test_id, params, out))
        sections.append(section)
    verdicts = verdict_tables(doc, headline_keys(suite))
    if verdicts:
        section = Section("verdicts", "Verdicts against the reference model (headline metrics)", "verdicts")
        section.tables.extend(_plain_table(table) for table in verdicts)
        sections.append(section)
    return sections


def _plain_table(table: Any) -> str:
    """A rich table (the verdicts) as an HTML table with its title as caption."""
    title, header, body = rows(table)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><caption>{html.escape(title)}</caption><tr>{head}</tr>{lines}</table>"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
h1 { font-size: 1.6em; } h2 { color: white; padding: .3em .6em; border-radius: 4px; font-size: 1.2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .85em; }
th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: right; } th { background: #f4f4f4; }
td.key { color: #888; text-align: left; font-family: monospace; } .flag { color: #c00; }
figure { margin: 1em 0; } figcaption { font-size: .85em; color: #555; } img { max-width: 100%; }
nav a { margin-right: 1em; } .meta { color: #555; font-size: .9em; }
"""


def render_html(doc: dict[str, Any], sections: list[Section]) -> str:
    """The whole page, figures inlined."""
    suite = doc["suite"]
    env = doc.get("env", {})
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title.split(":")[0])}</a>' for s in sections)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>robustcollapse — {html.escape(suite['name'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>robustcollapse report — {html.escape(suite['name'])}</h1>",
        f"<p class=meta>{html.escape(suite.get('description', ''))}<br>data set {html.escape(suite['dataset'])}; "
        f"status {html.escape(str(doc.get('status')))}; models {html.escape(', '.join(doc['models']))}; "
        f"device {html.escape(str(env.get('device', '?')))}; torch {html.escape(str(env.get('torch', '?')))}</p>",
        f"<nav>{nav}</nav>",
    ]
    for s in sections:
        colour = OWN_COLOURS.get(s.kind) or registry.get("test", s.kind).colour
        parts.append(f'<section id="{s.anchor}" data-kind="{s.kind}">')
        parts.append(f'<h2 style="background:{colour}">{html.escape(s.title)}</h2>')
        parts.extend(s.tables)
        for caption, path in s.figures:
            parts.append(
                f'<figure><img alt="{html.escape(caption)}" src="{_data_uri(path)}">'
                f"<figcaption>{html.escape(caption)} ({html.escape(path.name)})</figcaption></figure>"
            )
        parts.append("</section>")
    parts.append(
        "<script>addEventListener('load', () => { const imgs = [...document.images]; "
        "document.body.dataset.images = imgs.length; "
        "document.body.dataset.decoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length; });</script>"
    )
    parts.append("</body></html>")
    return "".join(parts)


def write_report(doc: dict[str, Any], out: Path) -> tuple[Path, list[Path]]:
    """Write the figures and index.html under `out` (atomically for the page); return the page and the figures."""
    out.mkdir(parents=True, exist_ok=True)
    sections = build_sections(doc, out)
    page = out / "index.html"
    atomic_write_text(page, render_html(doc, sections))
    return page, [p for s in sections for _, p in s.figures]
