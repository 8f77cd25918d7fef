"""MetricSpecs: every key a suite writes is declared once, with the direction and default tolerance the gate
uses; the tables, the page and the gate read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustcollapse import registry
from robustcollapse.config import load_suite
from robustcollapse.metrics.spec import MetricSpec, declare, declared, format_value, is_flag, spec_for
from robustcollapse.report.gate import direction, tolerance

ROOT = Path(__file__).resolve().parents[2]


def baseline_keys() -> set[str]:
    doc = json.loads((ROOT / "results" / "baselines" / "smoke.json").read_text())
    return {key for metrics in doc["metrics"].values() for key in metrics}


def test_every_key_of_the_committed_baseline_has_a_spec():
    missing = sorted(k for k in baseline_keys() if spec_for(k) is None)
    assert not missing, missing


@pytest.mark.parametrize("suite", ["smoke.yaml", "mnist.yaml", "cifar.yaml", "cifar100.yaml"])
def test_every_table_row_of_the_shipped_suites_has_a_spec(suite):
    loaded = load_suite(ROOT / "suites" / suite)
    for params in loaded.test_entries():
        for key, header in registry.get("test", params.kind).columns(params):
            assert spec_for(key) is not None, f"{suite}: {params.kind} row {key!r} ({header}) has no MetricSpec"


@pytest.mark.parametrize(
    ("key", "sign", "tol"),
    [
        ("clean/acc", 1, 0.02),
        ("shift/fog/3/acc", 1, 0.02),
        ("fine/kmeans_acc", 1, 0.02),
        ("cal/ts/ece", -1, 0.02),
        ("nc/nc1", -1, 0.05),
        ("nc/train/within_between", -1, 0.05),
        ("nc/min_angle", 1, 1.0),
        ("ood/svhn/knn/fpr95", -1, 0.02),
        ("ood/near/vim/auroc", 1, 0.02),
        ("adv/flags/not_monotone", -1, 0.0),
        ("adv/worst-linf-8_255/acc", 1, 0.02),
        ("hier/dist@5", -1, 0.02),
        ("rel/msp/aurc", -1, 0.02),
        ("bin/patterns", 0, 0.02),
        ("adv/clean_acc", 0, 0.02),
        ("aa/clean_acc", 0, 0.02),
        ("shift/clean/acc", 1, 0.02),
        ("aa/flags/targeted_stronger", -1, 0.0),
        ("aa/autoattack-linf-0.1/acc", 1, 0.02),
        ("worst/linf-0.1/acc", 1, 0.02),
        ("deepfool/success", 0, 0.02),
    ],
)
def test_direction_and_default_tolerance_come_from_the_spec(key, sign, tol):
    assert direction(key) == sign
    assert tolerance(key, {}) == tol


def test_a_user_pattern_beats_the_spec_default_and_the_longest_user_pattern_wins():
    assert tolerance("nc/nc1", {"*": 0.2}) == 0.2  # the suite asked for 0.2 everywhere
    assert tolerance("adv/pgd-linf-8_255/acc", {"adv/*": 0.5, "adv/pgd-*/acc": 0.01}) == 0.01
    assert tolerance("nc/nc1", {"clean/*": 0.01}) == 0.05  # no user pattern matches: the spec's


def test_the_longest_pattern_wins_and_a_pattern_is_declared_once():
    assert spec_for("train_acc").label == "training accuracy"  # "train_acc" beats "*_acc"
    assert spec_for("fine/kmeans_acc").label == "accuracy"
    with pytest.raises(ValueError, match="declared twice"):
        declare(MetricSpec("*/nc1", "something else"))
    assert len({s.pattern for s in declared()}) == len(declared())


def test_values_are_formatted_as_their_spec_says():
    assert format_value("nc/nc1", 0.000123456) == "0.0001235"
    assert format_value("nc/min_angle", 59.94) == "59.9"
    assert format_value("adv/flags/bad_gradients", 1.0) == "1"
    assert format_value("no/such/key", 0.5) == "0.5000"


def test_missing_values_and_flags():
    assert format_value("clean/acc", None) == "—" and format_value("clean/acc", float("nan")) == "—"
    assert format_value("no/such/key", 0.123456, default=".4g") == "0.1235"
    assert is_flag("adv/flags/not_monotone") and not is_flag("clean/acc") and not is_flag("no/such/key")
