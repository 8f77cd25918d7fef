"""`robustcollapse compare`: the direction-aware regression gate."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from robustcollapse.cli import main
from robustcollapse.report.compare import compare_documents, direction, effective_tolerances

BASE = {
    "schema_version": 1,
    "suite": {"regression": {"tolerances": {"clean/*": 0.01}}},
    "metrics": {
        "m": {
            "clean/acc": 0.90,
            "cal/ece": 0.05,
            "nc/nc1": 0.40,
            "adv/flags/bad_gradients": 0.0,
            "bin/patterns": 300.0,
            "adv/pgd-linf-8_255/acc": 0.30,
        }
    },
}


def run(tmp_path: Path, new: dict, *extra: str):
    (tmp_path / "a.json").write_text(json.dumps(BASE))
    (tmp_path / "b.json").write_text(json.dumps(new))
    return CliRunner().invoke(main, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), *extra])


def changed(**metrics: float) -> dict:
    doc = copy.deepcopy(BASE)
    doc["metrics"]["m"].update(metrics)
    return doc


def test_float_round_off_is_not_a_move(tmp_path):
    result = run(tmp_path, changed(**{"clean/acc": 0.90 + 1e-9, "nc/nc1": 0.40 * (1 - 1e-8)}))
    assert result.exit_code == 0 and "0 regressed, 0 improved, 0 within" in result.output
    result = run(tmp_path, changed(**{"clean/acc": 0.90 + 1e-4}))
    assert "1 improved" in result.output


def test_directions():
    assert direction("clean/acc") == 1 and direction("ood/svhn/energy/auroc") == 1
    assert direction("cal/ece") == -1 and direction("ood/svhn/energy/fpr95") == -1 and direction("nc/nc1") == -1
    assert direction("adv/flags/not_monotone") == -1 and direction("bin/patterns") == 0
    assert direction("fine/kmeans_acc") == 1 and direction("nc/min_angle") == 1 and direction("hier/dist@3") == -1


def test_identical_documents_pass(tmp_path):
    result = run(tmp_path, BASE)
    assert result.exit_code == 0 and "0 regressed" in result.output


def test_planted_regression_fails_naming_the_key(tmp_path):
    result = run(tmp_path, changed(**{"clean/acc": 0.85}))
    assert result.exit_code == 1
    assert "regression: m:clean/acc" in result.output


def test_improvement_and_within_tolerance_pass(tmp_path):
    assert run(tmp_path, changed(**{"clean/acc": 0.95, "cal/ece": 0.01})).exit_code == 0
    assert run(tmp_path, changed(**{"clean/acc": 0.895})).exit_code == 0  # suite tolerance 0.01 for clean/*


def test_lower_is_better_keys(tmp_path):
    assert run(tmp_path, changed(**{"cal/ece": 0.08})).exit_code == 1
    assert run(tmp_path, changed(**{"adv/flags/bad_gradients": 1.0})).exit_code == 1  # a newly fired flag
    assert run(tmp_path, changed(**{"bin/patterns": 9000.0})).exit_code == 0  # not judged, only reported


def test_tolerance_file_overrides_and_longest_pattern_wins(tmp_path):
    (tmp_path / "tol.yaml").write_text("tolerances:\n  'adv/*': 0.5\n  'adv/pgd-*/acc': 0.01\n")
    result = run(tmp_path, changed(**{"adv/pgd-linf-8_255/acc": 0.2}), "--tolerances", str(tmp_path / "tol.yaml"))
    assert result.exit_code == 1
    tolerances = effective_tolerances(BASE, {"adv/*": 0.5})
    rows = compare_documents(BASE, changed(**{"adv/pgd-linf-8_255/acc": 0.2}), tolerances)
    assert [r.verdict for r in rows] == ["within"]


def test_missing_and_new_keys_are_reported(tmp_path):
    doc = changed()
    del doc["metrics"]["m"]["nc/nc1"]
    doc["metrics"]["m"]["ood/x/msp/auroc"] = 0.7
    result = run(tmp_path, doc)
    assert result.exit_code == 0
    assert "1 missing, 1 new" in result.output


def test_schema_mismatch_is_a_clear_error(tmp_path):
    doc = changed()
    doc["schema_version"] = 99
    result = run(tmp_path, doc)
    assert result.exit_code == 2 and "schema_version 99; this version reads 1" in result.output


@pytest.mark.parametrize("name", ["a.json"])
def test_smoke_run_compares_equal_to_itself(workdir, name):
    assert CliRunner().invoke(main, ["eval", "suites/smoke.yaml", "--device", "cpu", "--json", name]).exit_code == 0
    result = CliRunner().invoke(main, ["compare", name, name])
    assert result.exit_code == 0 and "0 regressed, 0 improved" in result.output


def test_fresh_smoke_run_passes_the_committed_baseline_and_a_broken_metric_fails_it(workdir, monkeypatch):
    baseline = str(Path(__file__).resolve().parents[2] / "results" / "baselines" / "smoke.json")
    assert (
        CliRunner().invoke(main, ["eval", "suites/smoke.yaml", "--device", "cpu", "--json", "ok.json"]).exit_code == 0
    )
    good = CliRunner().invoke(main, ["compare", baseline, "ok.json"])
    assert good.exit_code == 0, good.output

    import robustcollapse.evaluate.clean as clean

    real = clean.calibration_report

    def broken(logits, labels, n_bins=15):  # an ECE bug that overstates miscalibration
        report = real(logits, labels, n_bins)
        return {**report, "ece": report["ece"] + 0.1}

    monkeypatch.setattr(clean, "calibration_report", broken)
    assert (
        CliRunner().invoke(main, ["eval", "suites/smoke.yaml", "--device", "cpu", "--json", "bad.json"]).exit_code == 0
    )
    bad = CliRunner().invoke(main, ["compare", baseline, "bad.json"])
    assert bad.exit_code == 1
    assert "m:cal/ece" not in bad.output and "baseline:cal/ece" in bad.output
