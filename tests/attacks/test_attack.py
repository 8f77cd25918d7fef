"""The `attack` test kind on tiny CPU models: values against torchattacks itself, the worst case across attack
tests, EOT for a randomised model, and gradient-masking models that must raise the honesty flags (and mark the
numbers they concern) while an ordinary model raises none."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from attack_models import Quantised, Saturated
from randomised import Noisy

from robustcollapse import registry
from robustcollapse.attacks import Runner
from robustcollapse.config import ConfigError, load_suite
from robustcollapse.data import to_float
from robustcollapse.evaluate.attack import AttackParams
from robustcollapse.evaluate.base import Context
from tests.test_config import GOOD, write


def attack(model, data, **fields):
    params = AttackParams.model_validate({"kind": "attack", **fields})
    return registry.get("test", "attack").run(Context(model, data, data.test, 128, 0), params)


def test_robust_accuracy_equals_torchattacks_called_directly(model, data):
    n = 120
    result = attack(model, data, attacks=["pgd"], eps=["16/255"], steps=7, n_examples=n, checks=False)
    x, y = to_float(data.test.x[:n]), data.test.y[:n]
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.inference_mode():
        correct = model(x).argmax(1) == y
    torch.manual_seed(0)
    adv = torchattacks.PGD(model, eps=16 / 255, alpha=2.5 * (16 / 255) / 7, steps=7, random_start=True)(
        x[correct], y[correct]
    )
    with torch.inference_mode():
        direct = int((model(adv).argmax(1) == y[correct]).sum()) / n
    for p in model.parameters():
        p.requires_grad_(True)
    assert result.metrics["adv/pgd-linf-16_255/acc"] == direct
    assert result.metrics["adv/clean_acc"] == float(correct.double().mean())


def test_adversarial_accuracy_bounded_by_clean_and_unbounded_eps_breaks_everything(model, data):
    result = attack(
        model, data, attacks=["fgsm", "pgd"], eps=["4/255", "16/255", 1], steps=10, n_examples=150, checks=False
    )
    clean = result.metrics["adv/clean_acc"]
    accs = [result.metrics[f"adv/pgd-linf-{e}/acc"] for e in ("4_255", "16_255", "1")]
    assert clean > 0.85
    assert all(a <= clean for a in accs)
    assert accs == sorted(accs, reverse=True)
    assert accs[-1] <= 0.01
    worst = result.metrics["adv/worst-linf-16_255/acc"]
    assert worst <= min(result.metrics["adv/fgsm-linf-16_255/acc"], accs[1])


def test_ordinary_model_raises_no_flag(model, data):
    result = attack(
        model,
        data,
        attacks=["fgsm", "pgd"],
        eps=["8/255", "32/255"],
        steps=20,
        n_examples=150,
        check_examples=150,
        tolerance=0.03,
    )
    fired = [name for name, check in result.flags["checks"].items() if check["flag"]]
    assert fired == [], result.flags
    assert all(result.metrics[f"adv/flags/{name}"] == 0.0 for name in result.flags["checks"])
    assert result.flags["numbers"] == {} and result.flags["summary"] == "no check fired"
    assert result.details["eot"] == 1


@pytest.mark.parametrize("wrapper", [Quantised, Saturated])
def test_gradient_masking_models_raise_flags(model, data, wrapper):
    masked = wrapper(model).eval()
    result = attack(
        masked, data, attacks=["fgsm", "pgd"], eps=["8/255", "32/255"], steps=10, n_examples=100, check_examples=100
    )
    checks = result.flags["checks"]
    assert checks["bad_gradients"]["flag"] and checks["bad_gradients"]["value"] > 0.5
    assert checks["black_box_stronger"]["flag"], result.flags
    assert checks["unbounded_survivors"]["flag"], result.flags
    assert result.metrics["adv/flags/bad_gradients"] == 1.0
    # the numbers those checks concern are marked, with the reason, and the summary names what fired
    for key in ("adv/pgd-linf-8_255/acc", "adv/worst-linf-32_255/acc"):
        mark = result.flags["numbers"][key]
        assert mark["trusted"] is False and "bad_gradients" in mark["why"] and "black_box_stronger" in mark["why"]
    assert result.flags["summary"].startswith("fired: bad_gradients")


def test_randomised_model_is_attacked_with_eot(model, data):
    noisy = Noisy(model).eval()
    result = attack(noisy, data, attacks=["pgd"], eps=["32/255"], steps=2, n_examples=12, check_examples=12)
    assert result.flags["checks"]["nondeterministic"]["flag"]
    assert result.details["eot"] == 20 and result.details["attacks"]["pgd-linf-32_255"]["eot"] == 20
    fixed = attack(noisy, data, attacks=["pgd"], eps=["32/255"], steps=5, n_examples=40, checks=False, eot=3)
    assert fixed.details["eot"] == 3


def test_worst_case_is_the_tests_own_and_spans_attack_tests_on_shared_points(model, data):
    from robustcollapse.evaluate.evidence import across_key
    from robustcollapse.evaluate.runner import finish, record
    from robustcollapse.report.document import new_document

    tests = {
        "first": AttackParams.model_validate(
            {"kind": "attack", "attacks": ["fgsm"], "eps": ["16/255"], "n_examples": 120, "checks": False}
        ),
        "second": AttackParams.model_validate(
            {"kind": "attack", "prefix": "b", "attacks": ["pgd"], "eps": ["16/255"], "n_examples": 80, "checks": False}
        ),
    }
    doc = new_document({}, {})
    for test_id, params in tests.items():
        res = registry.get("test", "attack").run(Context(model, data, data.test, 128, 0), params)
        record(doc, "m", test_id, {"metrics": res.metrics, "details": res.details, "flags": {}, "seconds": 0})
    finish(doc, tests)
    x, y = to_float(data.test.x[:120]), data.test.y[:120]
    runner = Runner(model, x, y, "linf", 128, 0, 10)
    fgsm, pgd = runner.robust("fgsm", 16 / 255, 20, 120), runner.robust("pgd", 16 / 255, 20, 80)
    metrics = doc["metrics"]["m"]
    assert metrics["adv/worst-linf-16_255/acc"] == pytest.approx(float(fgsm.double().mean()))  # its own 120 points
    assert metrics["b/worst-linf-16_255/acc"] == pytest.approx(float(pgd.double().mean()))
    assert metrics[across_key("linf", 16 / 255)] == pytest.approx(float((fgsm[:80] & pgd).double().mean()))
    assert doc["details"]["m"]["attack tests together"]["linf-16_255"] == {"n": 80, "tests": ["first", "second"]}
    assert doc["details"]["m"]["second"]["worst"]["16_255"]["n"] == 80


def test_attack_entries_are_validated(tmp_path):
    base = GOOD.replace("  - kind: clean\n", "  - kind: attack\n    attacks: [pgd]\n    eps: [8/255]\n")
    assert load_suite(write(tmp_path, base)).test_entries()[0].eps == [pytest.approx(8 / 255)]
    for bad, message in [
        ("attacks: [pgd]", "unknown attack 'pdg' (did you mean 'pgd'?)"),
        ("eps: [8/255]", "eps 'eight' is not a number"),
    ]:
        replacement = {"attacks: [pgd]": "attacks: [pdg]", "eps: [8/255]": "eps: [eight]"}[bad]
        with pytest.raises(ConfigError, match=r"suite.yaml:\d+ tests\[0\]\.\w+.*" + message.split("(")[0]):
            load_suite(write(tmp_path, base.replace(bad, replacement)))
    with pytest.raises(ConfigError, match="attack 'pgd' supports norm linf, not l2"):
        load_suite(write(tmp_path, base.replace("eps: [8/255]", "eps: [0.5]\n    norm: l2")))
    with pytest.raises(ConfigError, match="prefix 'worst' is reserved"):
        load_suite(write(tmp_path, base.replace("eps: [8/255]", "eps: [8/255]\n    prefix: worst")))


def test_two_tests_writing_one_namespace_are_a_config_error(tmp_path):
    attack = "  - kind: attack\n    attacks: [pgd]\n    eps: [8/255]\n"
    twice = GOOD.replace("  - kind: clean\n", attack + attack)
    with pytest.raises(ConfigError, match=r"tests\[1\]: its metrics could overwrite those of tests\[0\].*prefix"):
        load_suite(write(tmp_path, twice))
    apart = GOOD.replace("  - kind: clean\n", attack + attack + "    prefix: aa\n")
    entries = load_suite(write(tmp_path, apart)).test_entries()
    assert [t.prefix for t in entries if t.kind == "attack"] == ["adv", "aa"]
    clean = GOOD.replace("  - kind: clean\n", "  - kind: clean\n  - kind: clean\n    bins: 50\n")
    with pytest.raises(ConfigError, match=r"`clean/…` and `clean/…`; one key, one writer\): keep one of them"):
        load_suite(write(tmp_path, clean))
    deepfool_prefix = attack.replace("eps:", "prefix: deepfool\n    eps:")
    nested = GOOD.replace("  - kind: clean\n", deepfool_prefix + "  - kind: deepfool\n")
    with pytest.raises(ConfigError, match="could overwrite"):
        load_suite(write(tmp_path, nested))


def test_no_shipped_suite_writes_a_key_twice():
    # with `run_test` refusing a key outside its test's namespace (exercised by every end-to-end run), disjoint
    # namespaces mean no key of any shipped suite's document has two writers
    from pathlib import Path

    for path in sorted(Path(__file__).parents[2].joinpath("suites").glob("*.yaml")):
        suite = load_suite(path)  # the loader refuses equal or nested namespaces
        spaces = [s for t in suite.test_entries() for s in registry.get("test", t.kind).namespace(t)]
        assert len(spaces) == len(set(spaces)), path
        assert all(not a.startswith(b + "/") for a in spaces for b in spaces), path
