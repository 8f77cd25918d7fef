"""Intervals, n and verdicts in a real result document (the smoke suite, run once), held to statsmodels; the rule
that an untrusted number never makes a verdict; the gate's use of the baseline's interval; `show --format`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from robustcollapse.cli import main
from robustcollapse.metrics import samples
from robustcollapse.report.gate import compare_documents
from robustcollapse.report.verdicts import UNTRUSTED, compare_models

proportion = pytest.importorskip("statsmodels.stats.proportion")
contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
multitest = pytest.importorskip("statsmodels.stats.multitest")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(smoke_run) -> tuple[Path, dict, str]:
    """The smoke suite evaluated once: its folder, its document and what eval printed."""
    return smoke_run.folder, smoke_run.doc, smoke_run.output


# Numbers that carry no interval, and why: the fitted temperature (a fit on held-out training images, not a mean
# over test examples), the honesty checks' 0/1 flags (their rates carry one, in `flags`), and the collapse and
# binarity statistics of the whole split (see README, "Intervals and verdicts")
NO_INTERVAL = ("cal/temperature", "cal/ts/temperature", "nc/", "bin/")


def test_every_clean_attack_corruption_ood_and_reliability_number_has_an_interval_and_its_n(smoke):
    _, doc, _ = smoke
    for model, metrics in doc["metrics"].items():
        numbers = [k for k, v in metrics.items() if isinstance(v, float | int) and "/flags/" not in k]
        judged = [k for k in numbers if not k.startswith(NO_INTERVAL)]
        assert {k.split("/")[0] for k in judged} == {"clean", "cal", "adv", "ood", "rel", "shift"}
        missing = [k for k in judged if k not in doc["intervals"][model] or k not in doc["n"][model]]
        assert not missing, missing
        for key in ("clean/acc", "clean/nll", "cal/ece", "cal/aece", "cal/cwece", "shift/mean/acc", "shift/mean/ece"):
            low, high = doc["intervals"][model][key]
            assert low < high and doc["n"][model][key] == (360 if key.startswith(("clean", "cal")) else 200)
        assert doc["n"][model]["ood/far/msp/auroc"] == 200 * 3  # the 200 ID examples shared, then each far set's
        for check in doc["flags"][model]["attack"]["checks"].values():
            if isinstance(check.get("count"), int):
                low, high = check["interval"]
                assert low <= check["value"] <= high


def test_each_numbers_evidence_in_the_document_gives_back_the_number(smoke):
    """Anyone can recompute a metric from the document's samples: each key's statistic on the stored arrays
    (float32) gives the metric (so its interval is the interval of that number)."""
    _, doc, _ = smoke
    checked = 0
    for model, tests in doc["samples"].items():
        for stored in tests.values():
            pool = {name: samples.decode(record) for name, record in stored["arrays"].items()}
            for key, record in stored["keys"].items():
                sample = samples.Sample.read(record)
                arrays = [pool[name][None] for group in sample.groups for name in group]
                value = float(samples.statistic_of(sample.statistic)(*arrays)[0])
                # scores stored as float32 can reorder near-ties: ranks move a rank statistic a little further
                ranked = sample.statistic.startswith(("auroc", "aupr", "fpr95", "ood_mean", "aurc", "aece"))
                assert value == pytest.approx(doc["metrics"][model][key], abs=1e-3 if ranked else 2e-5), (model, key)
                checked += 1
    assert checked > 300  # every clean, attack, OOD, reliability and corruption number of both models


def test_the_clean_accuracy_interval_is_statsmodels_wilson_on_the_recorded_n(smoke):
    _, doc, _ = smoke
    for model in doc["metrics"]:
        n, value = doc["n"][model]["clean/acc"], doc["metrics"][model]["clean/acc"]
        expected = proportion.proportion_confint(round(value * n), n, alpha=0.05, method="wilson")
        assert doc["intervals"][model]["clean/acc"] == pytest.approx(list(expected), abs=1e-9)


def test_the_comparisons_are_mcnemar_on_the_paired_examples_with_holm_within_each_test(smoke):
    _, doc, output = smoke
    comparisons = doc["comparisons"]
    assert comparisons["reference"] == "baseline" and comparisons["confidence"] == 0.95
    rows = comparisons["models"]["binary"]
    assert set(rows) >= {"clean", "attack", "ood", "corruption"}
    block = {m: doc["samples"][m]["clean"] for m in ("baseline", "binary")}
    a, b = (samples.decode(block[m]["arrays"]["hit"]) for m in ("baseline", "binary"))
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    row = rows["clean"]["clean/acc"]
    assert row["p"] == pytest.approx(contingency.mcnemar(table, exact=True).pvalue, abs=1e-12)
    assert row["difference"] == pytest.approx(
        doc["metrics"]["binary"]["clean/acc"] - doc["metrics"]["baseline"]["clean/acc"]
    )
    for per_test in rows.values():
        ps = [r["p"] for r in per_test.values()]
        expected = multitest.multipletests(ps, method="holm")[1]
        assert [r["p_holm"] for r in per_test.values()] == pytest.approx(list(expected), abs=1e-12)
    assert rows["clean"]["cal/ece"]["verdict"] == "worse"  # the binary head's underconfidence (ECE 0.76 vs 0.03)
    assert "verdicts: binary against baseline" in output and "worse" in output


def _two_model_doc(reference_hits: torch.Tensor, hits: torch.Tensor, untrusted_model: str | None) -> dict:
    block = lambda h: {  # noqa: E731
        "arrays": {"m": samples.encode(h)},
        "keys": {"adv/pgd-linf-8_255/acc": samples.proportion("m").record()},
    }
    flags = {}
    if untrusted_model:
        why = {"trusted": False, "why": "a check fired"}
        flags = {untrusted_model: {"attack": {"numbers": {"adv/pgd-linf-8_255/acc": why}}}}
    return {
        "suite": {"models": [{"name": "a"}, {"name": "b"}], "seed": 0},
        "metrics": {
            "a": {"adv/pgd-linf-8_255/acc": float(reference_hits.double().mean())},
            "b": {"adv/pgd-linf-8_255/acc": float(hits.double().mean())},
        },
        "samples": {"a": {"attack": block(reference_hits)}, "b": {"attack": block(hits)}},
        "flags": flags,
    }


@pytest.mark.parametrize(
    ("b_better", "untrusted_model", "expected"),
    [
        (True, None, "better"),
        (True, "b", UNTRUSTED),  # B's robust accuracy may be overstated: never "better" on it
        (True, "a", "better"),  # A overstated only makes B's lead larger
        (False, None, "worse"),
        (False, "a", UNTRUSTED),  # A may be overstated: B is not shown worse
        (False, "b", "worse"),
    ],
)
def test_an_untrusted_robust_accuracy_is_never_the_basis_of_a_verdict(b_better, untrusted_model, expected):
    low = torch.zeros(300, dtype=torch.bool)
    low[:60] = True
    high = low.clone()
    high[60:200] = True
    a, b = (low, high) if b_better else (high, low)
    rows = compare_models(_two_model_doc(a, b, untrusted_model))["models"]["b"]["attack"]
    assert rows["adv/pgd-linf-8_255/acc"]["verdict"] == expected


def test_the_gate_flags_a_move_beyond_tolerance_only_outside_the_baselines_interval():
    def doc(value: float, bounds: list[float] | None) -> dict:
        out = {"metrics": {"m": {"clean/acc": value}}, "timings": {}}
        if bounds is not None:
            out["intervals"] = {"m": {"clean/acc": bounds}}
        return out

    tolerances = {"clean/acc": 0.01}
    inside = compare_documents(doc(0.90, [0.85, 0.94]), doc(0.87, None), tolerances)
    outside = compare_documents(doc(0.90, [0.88, 0.92]), doc(0.87, None), tolerances)
    without = compare_documents(doc(0.90, None), doc(0.87, None), tolerances)
    assert [r.verdict for r in (*inside, *outside, *without)] == ["within", "regressed", "regressed"]


def test_show_exports_markdown_latex_and_csv_with_the_documents_values(smoke):
    work, doc, _ = smoke
    path = str(work / "results" / "smoke.json")
    value, (low, high) = doc["metrics"]["binary"]["clean/acc"], doc["intervals"]["binary"]["clean/acc"]
    cell = f"{value:.4f} ± {(high - low) / 2:.4f}"
    markdown = CliRunner().invoke(main, ["show", path, "--format", "markdown"])
    assert markdown.exit_code == 0, markdown.output
    assert "| acc | clean/acc | " in markdown.output and cell in markdown.output
    assert "**verdicts: binary against baseline" in markdown.output
    latex = CliRunner().invoke(main, ["show", path, "--format", "latex", "--intervals", "bracket"])
    assert latex.exit_code == 0 and r"\begin{tabular}" in latex.output and r"\toprule" in latex.output
    assert f"{value:.4f} [{low:.4f}, {high:.4f}]" in latex.output and "±" not in latex.output
    table = list(csv.reader(io.StringIO(CliRunner().invoke(main, ["show", path, "--format", "csv"]).output)))
    acc = next(row for row in table if row[2:3] == ["clean/acc"])
    assert acc[0].startswith("clean: ") and acc[4] == cell
    verdict_rows = [row for row in table if row[0].startswith("verdicts: binary against baseline")]
    assert any(row[2] == "cal/ece" and row[-1] == "worse" for row in verdict_rows)


def test_the_figures_carry_the_intervals(smoke, tmp_path, monkeypatch):
    """The ε curves get each point's interval as a band, the corruption heat map the n of its cells."""
    from robustcollapse import registry
    from robustcollapse.config import load_suite
    from robustcollapse.evaluate.evidence import acc_key
    from robustcollapse.report import plots

    work, doc, _ = smoke
    suite = load_suite(work / "suites" / "smoke.yaml")
    params = dict(zip(suite.test_ids(), suite.test_entries(), strict=True))
    seen: dict = {}
    monkeypatch.setattr(plots, "eps_curves", lambda curves, norm, path: seen.setdefault("eps", curves) and path)
    monkeypatch.setattr(plots, "corruption_heatmap", lambda grids, path, n=None: seen.setdefault("n", n) and path)
    registry.get("test", "attack").figures(doc, "attack", params["attack"], tmp_path)
    registry.get("test", "corruption").figures(doc, "corruption", params["corruption"], tmp_path)
    for attack, per_model in seen["eps"].items():
        for model, points in per_model.items():
            for eps, value, low, high in points:
                key = acc_key(params["attack"].prefix, attack, params["attack"].norm, eps)
                assert doc["metrics"][model][key] == value and [low, high] == doc["intervals"][model][key]
    assert seen["n"] == doc["details"]["baseline"]["corruption"]["n"] == 200
