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
from robustcollapse.attacks import eps_label
from robustcollapse.config import Suite
from robustcollapse.errors import UserError
from robustcollapse.report import plots
from robustcollapse.report.tables import test_flags, untrusted

KIND_COLOURS = {
    "clean": "#1f77b4",
    "collapse": "#9467bd",
    "attack": "#d62728",
    "deepfool": "#e377c2",
    "reliability": "#17becf",
    "ood": "#2ca02c",
    "corruption": "#ff7f0e",
    "training": "#8c564b",
}
DEFAULT_COLOUR = "#7f7f7f"


@dataclass
class Section:
    anchor: str
    title: str
    kind: str
    tables: list[str] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _metric_table(doc: dict[str, Any], columns: list[tuple[str, str, str]], test_id: str) -> str:
    models = list(doc["metrics"])
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    rows = []
    for key, header, spec in columns:
        if spec == "flag":
            check = key.rsplit("/", 1)[-1]
            cells = []
            for m in models:
                found = test_flags(doc, m, test_id).get("checks", {}).get(check)
                cells.append("—" if found is None else ("<b class=flag>FLAG</b>" if found["flag"] else "ok"))
        else:
            cells = []
            for m in models:
                why = untrusted(doc, m, test_id, key)
                text = _fmt(doc["metrics"][m].get(key))
                cells.append(text if why is None else f"<b class=flag title='{html.escape(why)}'>{text} ⚠</b>")
        cells_html = "".join(f"<td>{c}</td>" for c in cells)
        rows.append(f"<tr><th>{html.escape(header)}</th><td class=key>{html.escape(key)}</td>{cells_html}</tr>")
    return f"<table><tr><th>metric</th><th>key</th>{head}</tr>{''.join(rows)}</table>"


def _figures_for(doc: dict[str, Any], test_id: str, params: Any, out: Path) -> list[tuple[str, Path]]:
    """The PNGs of one test, by kind."""
    kind, models, details = params.kind, list(doc["metrics"]), doc["details"]
    slug = test_id.replace("#", "-")
    figs: list[tuple[str, Path]] = []
    if kind == "clean":
        bins = {m: details[m][test_id]["reliability"] for m in models if "reliability" in details[m].get(test_id, {})}
        if bins:
            figs.append(("Reliability diagrams", plots.reliability_diagram(bins, out / f"{slug}-reliability.png")))
    elif kind == "attack":
        curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
        names = [*params.attacks, "worst"] if len(params.attacks) > 1 else list(params.attacks)
        for attack in names:
            for m in models:
                points = []
                for eps in params.eps:
                    value = doc["metrics"][m].get(f"adv/{attack}-{params.norm}-{eps_label(eps)}/acc")
                    if value is not None:
                        points.append((eps, value))
                if points:
                    curves.setdefault(attack, {})[m] = points
        if curves:
            figs.append(("Robust accuracy against ε", plots.eps_curves(curves, params.norm, out / f"{slug}-eps.png")))
    elif kind == "corruption":
        from robustcollapse.corruptions import resolve

        names = resolve(params.corruptions)
        grids = {}
        for m in models:
            acc = [
                [doc["metrics"][m].get(f"{params.prefix}/{c}/{s}/acc", float("nan")) for s in params.severities]
                for c in names
            ]
            grids[m] = (names, params.severities, acc)
        figs.append(("Accuracy per corruption and severity", plots.corruption_heatmap(grids, out / f"{slug}-heat.png")))
    elif kind == "ood":
        for m in models:
            roc = details[m].get(test_id, {}).get("roc")
            if roc:
                figs.append((f"ROC curves — {m}", plots.roc_curves(roc, m, out / f"{slug}-roc-{m}.png")))
    elif kind == "collapse":
        for m in models:
            hists = details[m].get(test_id, {}).get("latent_histograms")
            if hists:
                path = plots.latent_histograms(hists, m, out / f"{slug}-latent-{m}.png")
                figs.append((f"Latent coordinates — {m}", path))
    return figs


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
        path = plots.training_curves(histories, out / "training.png")
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
        section.figures.extend(_figures_for(doc, test_id, params, out))
        sections.append(section)
    return sections


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
        colour = KIND_COLOURS.get(s.kind, DEFAULT_COLOUR)
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
    tmp = page.with_suffix(".html.tmp")
    tmp.write_text(render_html(doc, sections), encoding="utf-8")
    tmp.replace(page)
    return page, [p for s in sections for _, p in s.figures]
