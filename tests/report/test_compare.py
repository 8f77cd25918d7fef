"""`robustcollapse compare`: the direction-aware regression gate, which also fails on broken documents."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from robustcollapse.cli import main
from robustcollapse.report.gate import compare_documents, direction, effective_tolerances

BASE = {
    "schema_version": 1,
    "status": "complete",
    "suite": {"regression": {"tolerances": {"clean/*": 0.01}}},
    "timings": {"m": {"clean": 1.0, "collapse": 2.0}},
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
    assert (
        result.exit_code == 0 and "0 regressed, 0 broken, 0 missing, 0 improved, 0 within, 0 changed" in result.output
    )
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
    assert "gate failed: regressed: m:clean/acc" in result.stderr


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


def test_a_new_metric_passes_a_vanished_one_fails(tmp_path):
    doc = changed(**{"ood/x/msp/auroc": 0.7})
    assert run(tmp_path, doc).exit_code == 0
    del doc["metrics"]["m"]["nc/nc1"]
    result = run(tmp_path, doc)
    assert result.exit_code == 1 and "gate failed: missing: m:nc/nc1" in result.stderr
    assert "1 missing" in result.output and "1 new" in result.output


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf")])
def test_a_metric_that_became_null_nan_or_inf_fails(tmp_path, bad):
    for key in ("clean/acc", "bin/patterns"):  # judged or not, a number that broke is a failure
        result = run(tmp_path, changed(**{key: bad}))
        assert result.exit_code == 1, result.output
        assert f"gate failed: broken: m:{key}" in result.stderr


def test_a_vanished_model_or_test_fails(tmp_path):
    doc = copy.deepcopy(BASE)
    doc["metrics"]["other"] = doc["metrics"].pop("m")
    result = run(tmp_path, doc)
    assert result.exit_code == 1 and "gate failed: missing: m:<model>" in result.stderr
    doc = changed()
    del doc["timings"]["m"]["collapse"]
    result = run(tmp_path, doc)
    assert result.exit_code == 1 and "gate failed: missing: m:<test:collapse>" in result.stderr


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("status", "interrupted", "new document's status is 'interrupted', not 'complete'"),
        ("status", None, "new document's status is None, not 'complete'"),
        ("schema_version", 99, "new document has schema_version 99, not 1"),
    ],
)
def test_an_incomplete_or_other_schema_document_fails_the_gate(tmp_path, field, value, message):
    doc = changed()
    doc[field] = value
    result = run(tmp_path, doc)
    assert result.exit_code == 1 and f"gate failed: {message}" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "b.json: not valid JSON"),
        ("[1, 2]", "b.json: unreadable: a result document is a JSON object, this is a list"),
        ('{"schema_version": 1, "metrics": [1]}', "b.json: unreadable: field 'metrics' must map each model"),
        ('{"schema_version": 1, "metrics": {"m": {"clean/acc": "0.9"}}}', "metrics.m.clean/acc is str"),
    ],
)
def test_unreadable_input_is_exit_2_on_one_line(tmp_path, content, message):
    (tmp_path / "a.json").write_text(json.dumps(BASE))
    (tmp_path / "b.json").write_text(content)
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_crash_inside_compare_is_exit_2_not_a_regression(tmp_path, monkeypatch):
    import robustcollapse.report.gate as compare

    def crash(*args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(compare, "compare_documents", crash)
    result = run(tmp_path, BASE)
    assert result.exit_code == 2 and "cannot be compared" in result.stderr


@pytest.mark.slow  # a full smoke evaluation (and the shared one); `nox -s regression` gates the same run
def test_fresh_smoke_run_passes_the_committed_baseline_and_a_broken_metric_fails_it(smoke_run, workdir, monkeypatch):
    baseline = str(Path(__file__).resolve().parents[2] / "results" / "baselines" / "smoke.json")
    smoke_run.copy_to(workdir)  # a fresh run, trained from the recipes; the broken run below reuses its models
    shutil.copy("results/smoke.json", "ok.json")
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
    assert "m:cal/ece" not in bad.output and "regressed: baseline:cal/ece" in bad.stderr

    doc = json.loads(Path("ok.json").read_text())  # a real document with one metric broken, one test vanished
    doc["metrics"]["binary"]["nc/nc1"] = None
    del doc["timings"]["baseline"]["ood"]
    for key in [k for k in doc["metrics"]["baseline"] if k.startswith("ood/")]:
        del doc["metrics"]["baseline"][key]
    Path("broken.json").write_text(json.dumps(doc))
    broken_run = CliRunner().invoke(main, ["compare", "ok.json", "broken.json"])
    assert broken_run.exit_code == 1
    assert "broken: binary:nc/nc1" in broken_run.stderr and "missing: baseline:<test:ood>" in broken_run.stderr


def pair(old: dict[str, float], new: dict[str, float]) -> tuple[dict, dict]:
    """A baseline and a new document holding only these metrics (one model, one test)."""
    base = {**copy.deepcopy(BASE), "suite": {}, "metrics": {"m": dict(old)}}
    return base, {**copy.deepcopy(base), "metrics": {"m": dict(new)}}


def verdicts(old: dict[str, float], new: dict[str, float], tolerances: dict[str, float]) -> dict[str, str]:
    return {r.key: r.verdict for r in compare_documents(*pair(old, new), tolerances)}


# Every value and difference here is a sum of powers of two, so each delta is exactly its tolerance (or exactly
# 2**-20 beyond it): no float round-off decides which side of the boundary a move falls on.
JUST = 2.0**-20


def test_a_move_exactly_equal_to_its_tolerance_is_within_and_one_just_beyond_regresses():
    """README: the gate fails when a metric "regressed beyond its tolerance" -- a move of exactly the tolerance
    is still within it, for both directions, whether the tolerance is the user's or the spec's default."""
    tol = {"clean/acc": 0.25, "cal/ece": 0.25}
    # higher is better: 0.5 -> 0.25 is a drop of exactly 0.25
    assert verdicts({"clean/acc": 0.5}, {"clean/acc": 0.25}, tol) == {"clean/acc": "within"}
    assert verdicts({"clean/acc": 0.5}, {"clean/acc": 0.25 - JUST}, tol) == {"clean/acc": "regressed"}
    # lower is better: 0.25 -> 0.5 is a rise of exactly 0.25
    assert verdicts({"cal/ece": 0.25}, {"cal/ece": 0.5}, tol) == {"cal/ece": "within"}
    assert verdicts({"cal/ece": 0.25}, {"cal/ece": 0.5 + JUST}, tol) == {"cal/ece": "regressed"}
    # the spec's own default tolerance (`*/min_angle`: 1 degree), no user pattern
    assert verdicts({"nc/min_angle": 90.0}, {"nc/min_angle": 89.0}, {}) == {"nc/min_angle": "within"}
    assert verdicts({"nc/min_angle": 90.0}, {"nc/min_angle": 89.0 - 2.0**-10}, {}) == {"nc/min_angle": "regressed"}
    # a move in the good direction by exactly the tolerance is an improvement, not a regression
    assert verdicts({"clean/acc": 0.25}, {"clean/acc": 0.5}, tol) == {"clean/acc": "improved"}
    assert verdicts({"cal/ece": 0.5}, {"cal/ece": 0.25}, tol) == {"cal/ece": "improved"}


def test_the_gate_passes_a_move_of_exactly_its_tolerance_and_fails_one_just_beyond(tmp_path):
    (tmp_path / "tol.yaml").write_text("tolerances:\n  'clean/acc': 0.25\n  'cal/ece': 0.25\n")
    for old, new, code in (
        ({"clean/acc": 0.5, "cal/ece": 0.25}, {"clean/acc": 0.25, "cal/ece": 0.5}, 0),
        ({"clean/acc": 0.5, "cal/ece": 0.25}, {"clean/acc": 0.25 - JUST, "cal/ece": 0.5}, 1),
        ({"clean/acc": 0.5, "cal/ece": 0.25}, {"clean/acc": 0.25, "cal/ece": 0.5 + JUST}, 1),
    ):
        base, doc = pair(old, new)
        (tmp_path / "a.json").write_text(json.dumps(base))
        (tmp_path / "b.json").write_text(json.dumps(doc))
        args = [
            "compare",
            str(tmp_path / "a.json"),
            str(tmp_path / "b.json"),
            "--tolerances",
            str(tmp_path / "tol.yaml"),
        ]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == code, (new, result.output, result.stderr)
        if code == 0:
            assert "0 regressed, 0 broken, 0 missing, 0 improved, 2 within" in result.output
        else:
            assert "gate failed: regressed: m:" in result.stderr


@pytest.mark.parametrize("key", ["clean/acc", "cal/ece", "bin/patterns"])  # higher-, lower-better, not judged
def test_minus_infinity_is_broken_in_either_direction(tmp_path, key):
    """-inf is not a number the gate may judge: on a lower-is-better key it would read as a huge improvement, on
    a higher-is-better one as a regression; either way it is `broken` (json.dumps writes it as -Infinity, which
    Python's reader accepts, so a document can carry it)."""
    rows = compare_documents(BASE, changed(**{key: float("-inf")}), {})
    assert [(r.key, r.verdict) for r in rows] == [(key, "broken")]
    result = run(tmp_path, changed(**{key: float("-inf")}))
    assert result.exit_code == 1, result.output
    assert f"gate failed: broken: m:{key}" in result.stderr and "1 broken" in result.output
    assert "regressed" not in result.stderr


def test_every_non_finite_value_breaks_a_finite_metric_of_either_direction():
    for bad in (None, float("nan"), float("inf"), float("-inf")):
        for key, old in (("clean/acc", 0.5), ("cal/ece", 0.25), ("nc/min_angle", 90.0), ("bin/patterns", 3.0)):
            assert verdicts({key: old}, {key: bad}, {}) == {key: "broken"}, (key, bad)
    # a metric that was already null in the baseline and is non-finite again is reported, not a new failure
    assert verdicts({"cal/ece": None}, {"cal/ece": float("-inf")}, {}) == {"cal/ece": "changed"}


def test_a_written_document_stores_every_non_finite_number_as_null(tmp_path):
    """JSON has no NaN or infinities: write_json turns NaN, +inf and -inf into null (strict JSON, which other
    readers accept), and the gate reads each such null as a broken metric."""
    from robustcollapse.io import clean_numbers, write_json

    assert clean_numbers({"a": [float("nan"), float("inf"), float("-inf"), 0.5, (1.0,)]}) == {
        "a": [None, None, None, 0.5, [1.0]]
    }
    doc = changed(**{"clean/acc": float("-inf"), "cal/ece": float("inf"), "nc/nc1": float("nan")})
    write_json(tmp_path / "b.json", doc)
    text = (tmp_path / "b.json").read_text()

    def strict(name: str):
        raise AssertionError(f"{name} written into a result document")

    stored = json.loads(text, parse_constant=strict)["metrics"]["m"]
    assert stored["clean/acc"] is None and stored["cal/ece"] is None and stored["nc/nc1"] is None
    (tmp_path / "a.json").write_text(json.dumps(BASE))
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert result.exit_code == 1 and "gate failed: broken: m:cal/ece, m:clean/acc, m:nc/nc1" in result.stderr
