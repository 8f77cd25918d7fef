"""`robustcollapse report`: the figures' data, the PNGs, the HTML page, and the page in a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from robustcollapse import registry
from robustcollapse.cli import main
from robustcollapse.metrics.binarity import latent_histograms, two_means_separation
from robustcollapse.metrics.ood import roc_points
from robustcollapse.report.html import TRAINING_COLOUR

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
EXPECTED = [
    "training.png",
    "clean-reliability.png",
    "collapse-latent-baseline.png",
    "collapse-latent-binary.png",
    "attack-eps.png",
    "ood-roc-baseline.png",
    "ood-roc-binary.png",
    "corruption-heat.png",
]


@pytest.fixture(scope="module")
def smoke_report(smoke_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The smoke suite trained and evaluated once, and its report written to report/."""
    work = smoke_run.copy_to(tmp_path_factory.mktemp("report"))
    old = Path.cwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(main, ["report", "results/smoke.json", "--out", "report"])
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(old)
    return work, smoke_run.doc


def test_roc_points_known_answers():
    perfect = roc_points(torch.tensor([0.0, 0.1, 0.2]), torch.tensor([1.0, 2.0]))
    assert perfect["tpr"][0] == 1.0 and len(perfect["fpr"]) == 101
    reversed_ = roc_points(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.1]))
    assert reversed_["tpr"][50] == 0.0 and reversed_["tpr"][-1] == 1.0
    gen = torch.Generator().manual_seed(0)
    same = roc_points(torch.randn(20000, generator=gen), torch.randn(20000, generator=gen))
    assert np.allclose(same["tpr"], same["fpr"], atol=0.03), "identical distributions: the diagonal"
    assert all(b >= a for a, b in zip(same["tpr"], same["tpr"][1:], strict=False))


def test_two_means_separation_and_histograms():
    gen = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, (2000, 4), generator=gen).float() * 2 - 1
    binary = signs + 0.1 * torch.randn(2000, 4, generator=gen)
    gaussian = torch.randn(2000, 4, generator=gen)
    # two peaks at ±1 with σ 0.1: standardised centres ±0.995, within-cluster σ ≈ 0.0995 -> separation ≈ 20
    assert two_means_separation(binary) == pytest.approx(20, rel=0.1)
    assert two_means_separation(gaussian) < 3.5
    hists = latent_histograms(binary, max_dims=3, bins=10)
    assert [h["dim"] for h in hists] == [0, 1, 2] and all(sum(h["counts"]) == 2000 for h in hists)
    assert hists[0]["counts"][0] > 0 and hists[0]["counts"][4] + hists[0]["counts"][5] == 0, "the gap in the middle"


def test_report_writes_every_figure_and_the_page(smoke_report):
    work, doc = smoke_report
    for name in EXPECTED:
        data = (work / "report" / name).read_bytes()
        assert data[:8] == PNG and len(data) > 5000, name
    page = (work / "report" / "index.html").read_text()
    for anchor in ("training", "test-clean", "test-collapse", "test-attack", "test-ood", "test-corruption"):
        assert f'id="{anchor}"' in page
    assert page.count('src="data:image/png;base64,') == len(EXPECTED)
    assert "http://" not in page and "https://" not in page, "self-contained: nothing fetched"
    # what the figures are drawn from
    history = doc["models"]["binary"]["history"]
    assert len(history) == 8 and {"nc/nc1", "nc/etf_means", "bin/same_code", "bin/two_means_sep"} <= set(history[0])
    assert history[-1]["nc/nc1"] < history[0]["nc/nc1"], "training collapses the tracked subset"
    roc = doc["details"]["binary"]["ood"]["roc"]["gaussian_noise"]["msp"]
    assert roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0


def test_report_of_a_bad_document_is_one_line(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    result = CliRunner().invoke(main, ["report", str(tmp_path / "bad.json")])
    assert result.exit_code == 2 and "not valid JSON" in result.output


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian: apt-get install chromium)")
def test_page_renders_its_sections_in_a_headless_browser(smoke_report, tmp_path):
    from PIL import Image

    work, _ = smoke_report
    url = (work / "report" / "index.html").as_uri()
    dom = _chromium(tmp_path / "p1", "--virtual-time-budget=5000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body is not None
    attrs = dict(re.findall(r'data-(\w+)="(\d+)"', body.group(1)))
    assert attrs == {"images": str(len(EXPECTED)), "decoded": str(len(EXPECTED))}, "every figure decoded"

    shot = tmp_path / "shot.png"
    result = _chromium(tmp_path / "p2", "--window-size=1400,9000", f"--screenshot={shot}", url)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    for kind in ("training", "clean", "collapse", "attack", "ood", "corruption"):
        hexa = TRAINING_COLOUR if kind == "training" else registry.get("test", kind).colour
        colour = np.array([int(hexa[i : i + 2], 16) for i in (1, 3, 5)])
        count = int((np.abs(pixels.astype(int) - colour).sum(1) <= 6).sum())
        assert count > 2000, f"the {kind} section heading did not render ({count} pixels of its colour)"


def test_a_model_name_cannot_write_outside_the_report_folder(smoke_report, tmp_path, monkeypatch):
    """Names from a document become file names through one safe alphabet: a model named `../../../evil` (a path
    traversal, which wrote `evil.png` outside --out) gets its figures inside --out, and nothing else is written."""
    work, _ = smoke_report
    doc = json.loads((work / "results" / "smoke.json").read_text())
    for field in ("models", "metrics", "details", "flags", "timings"):
        doc[field]["../../../evil"] = doc[field].pop("binary")
    text = json.dumps(doc)
    where = tmp_path / "a" / "b" / "c"
    where.mkdir(parents=True)
    (where / "r.json").write_text(text)
    monkeypatch.chdir(where)
    result = CliRunner().invoke(main, ["report", "r.json", "--out", "out"])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert all(str(p).startswith("a/b/c/out/") for p in written if p.name != "r.json"), written
    assert any("evil" in p.name for p in written), written  # the model's own figures exist, renamed
