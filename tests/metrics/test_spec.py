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


# Which way is better for every declared pattern, written here from what each metric measures (the docstrings of
# the modules that declare them and README "The regression gate"), independently of the specs: +1 higher is
# better, -1 lower is better, 0 reported but never judged. A new spec must be added here, with its direction.
DIRECTIONS = {
    # accuracy and calibration (metrics/calibration.py)
    "*/acc": +1,
    "*_acc": +1,  # train_acc, fine/kmeans_acc, ...
    "train_acc": +1,
    "test_acc": +1,
    "hier/top1": +1,
    "*/clean_acc": 0,  # an attack test's clean ceiling: a property of the points, not a robustness score
    "*/error": -1,
    "*/nll": -1,
    "*/brier": -1,
    "*/ece": -1,
    "*/aece": -1,
    "*/mce": -1,  # a calibration *error*: the worst bin's |acc - conf|
    "*/cwece": -1,
    "*/mean_conf": 0,  # neither high nor low confidence is better in itself
    "*/temperature": 0,
    "loss": -1,
    # OOD detection and misclassification detection: OOD / wrong is the positive class
    "*/auroc": +1,
    "*/aupr_in": +1,
    "*/aupr_out": +1,
    "*/fpr95": -1,
    "*/aurc": -1,  # risk integrated over coverage
    # neural collapse: every one measures a distance from the collapsed geometry (0 = fully collapsed)
    "*/nc1": -1,
    "*/within_between": -1,
    "*/equinorm": -1,
    "*/equiangular": -1,
    "*/maxangle": -1,
    "*/etf_means": -1,
    "*/etf_w": -1,
    "*/w_equinorm": -1,
    "*/nc3": -1,
    "*/nc4": -1,
    # separation of classes: larger margins and angles are better
    "*/ovr_margin_min": +1,
    "*/ovr_margin_mean": +1,
    "*/min_angle": +1,
    # binarity of the latent: well separated peaks and shared class codes are the goal; counts and fit
    # parameters are descriptive
    "*/peak_sep": +1,
    "*/same_code": +1,
    "*/peak_sep_std": 0,
    "*/gmm_loglik": 0,
    "*/gmm_sigma": 0,
    "*/class_codes": 0,
    "*/patterns": 0,
    "*/two_means_sep": 0,
    # robustness
    "*/flags/*": -1,  # an honesty check that fired (1) is worse than one that did not (0)
    "*/rel_drop": -1,  # accuracy lost under corruption
    "*/rel_norm": +1,  # DeepFool: a larger minimal perturbation is a more robust model
    "*/rel_norm_median": +1,
    "*/l2": 0,
    "*/success": 0,  # DeepFool flips nearly every point by design: not a robustness score
    # class hierarchy: how far the mistakes are
    "hier/mistake_severity": -1,
    "hier/dist@*": -1,
}


def test_every_declared_spec_has_the_direction_of_the_independent_table():
    import robustcollapse.evaluate  # noqa: F401  (every test kind, and the metrics modules it imports)
    import robustcollapse.training  # noqa: F401  (the per-epoch history's specs)

    specs = {s.pattern: s for s in declared()}
    assert sorted(specs) == sorted(DIRECTIONS), (
        f"declared but not in DIRECTIONS: {sorted(set(specs) - set(DIRECTIONS))}; "
        f"in DIRECTIONS but not declared: {sorted(set(DIRECTIONS) - set(specs))}"
    )
    wrong = {p: (specs[p].direction, sign) for p, sign in DIRECTIONS.items() if specs[p].direction != sign}
    assert not wrong, f"pattern: (declared, expected) {wrong}"
    for pattern, sign in DIRECTIONS.items():  # and the gate reads each spec's direction for its own keys
        key = pattern.replace("*", "x").replace("x_acc", "x/model_acc")
        assert spec_for(key).pattern == pattern and direction(key) == sign, key
    flags = {p for p, s in specs.items() if s.fmt == "flag"}
    assert flags == {"*/flags/*"} and specs["*/flags/*"].tolerance == 0.0  # a newly fired flag always regresses
