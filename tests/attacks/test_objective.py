"""Objective mismatch: models whose softmax spreads the wrong-class mass over many near-tied classes fool untargeted
cross-entropy attacks without any gradient masking. Each new check fires on a model built to trip it and stays
silent on the ordinary digits MLP; the attack test adds a targeted attack for such a model; evidence flows between
the attack tests of a model in both directions; and the shared PGD keeps every iterate inside [0, 1]."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustcollapse import registry
from robustcollapse.attacks import chance_limit
from robustcollapse.attacks.checks.croce2020 import runner_up_share
from robustcollapse.attacks.pgd import MultiTargeted, margin_loss, traced_pgd
from robustcollapse.evaluate.attack import AttackParams
from robustcollapse.evaluate.base import Context
from robustcollapse.evaluate.evidence import ACROSS, pack, unpack
from robustcollapse.evaluate.runner import finish, record
from robustcollapse.report.document import new_document
from tests.attacks.test_checks import fired, probe

EPS = 32 / 255


class Diffuse(nn.Module):
    """The binary head's symptom on the digits MLP: the true class keeps a clear lead, and the other nine classes sit
    nearly tied far below it (their logits squeezed to a tenth, then shifted down), so the softmax over the wrong
    classes is almost flat and cross-entropy's gradient points at their average."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inner(x)
        return 0.1 * (z - z.mean(1, keepdim=True))


def attack(model, data, **fields):
    params = AttackParams.model_validate({"kind": "attack", **fields})
    return registry.get("test", "attack").run(Context(model, data, data.test, 128, 0), params)


def test_runner_up_share_known_answers():
    logits = torch.tensor([[5.0, 0.0, 0.0, 0.0], [5.0, 2.0, 0.0, -1.0], [0.0, 1000.0, 0.0, -1000.0]])
    share = runner_up_share(logits, torch.tensor([0, 0, 1]))
    expected = [1 / 3, math.exp(2) / (math.exp(2) + 1 + math.exp(-1)), 0.5]  # no underflow at huge logits
    assert share.tolist() == pytest.approx(expected, rel=1e-6)


def test_diffuse_softmax_fires_on_squeezed_logits_and_not_on_the_model(model, data):
    out = fired(probe(Diffuse(model), data, m=100), "diffuse_softmax")
    assert out["flag"] and out["value"] > 0.5 and out["median_share"] < 1 / 3
    quiet = fired(probe(model, data, m=100), "diffuse_softmax")
    assert not quiet["flag"] and quiet["count"] <= chance_limit(100, 0.02)


def test_targeted_and_margin_attacks_break_what_cross_entropy_leaves(model, data):
    p = probe(Diffuse(model), data, attacks=["pgd"], eps=[EPS], m=100)
    targeted = fired(p, "targeted_stronger")
    assert targeted["flag"] and targeted["concerns"] == ["pgd"] and targeted["broke"]["pgd"] > p.limit()
    loss = fired(p, "loss_sensitive")
    assert loss["flag"] and loss["concerns"] == ["pgd"] and loss["own_ce_left"] > p.limit()
    # the checks' own runs: the same seeded PGD start, so CE vs margin is a fair comparison
    assert {"mt-pgd-3", "pgd-ce-own", "pgd-margin-own"} <= {key[0] for key in p.runner.memo}


def test_objective_checks_skip_a_test_without_untargeted_attacks(model, data):
    p = probe(Diffuse(model), data, attacks=["autoattack"], m=20)
    for name in ("diffuse_softmax", "targeted_stronger", "loss_sensitive"):
        assert fired(p, name)["skipped"] and not fired(p, name)["flag"], name
    assert not p.runner.memo  # nothing was attacked to decide that


def test_objective_checks_are_silent_on_the_ordinary_model(model, data):
    p = probe(model, data, attacks=["pgd", "apgd-ce"], eps=[8 / 255, EPS], m=150)
    for name in ("targeted_stronger", "loss_sensitive", "white_box_disagreement"):
        out = fired(p, name)
        assert not out["flag"], (name, out)


def test_white_box_disagreement_marks_the_weaker_attack(model, data):
    p = probe(Diffuse(model), data, attacks=["pgd", "apgd-t"], eps=[EPS], m=100)
    out = fired(p, "white_box_disagreement")
    assert out["flag"] and out["concerns"] == ["pgd"] and "apgd-t broke" in out["why"]
    pgd, apgd_t = p.runner.robust("pgd", EPS, 20, 100), p.runner.robust("apgd-t", EPS, 20, 100)
    assert out["count"] == int((pgd & ~apgd_t).sum())


def test_attack_test_adds_a_targeted_attack_for_a_diffuse_softmax(model, data):
    result = attack(Diffuse(model), data, attacks=["fgsm", "pgd"], eps=[EPS], steps=10, n_examples=100)
    assert "added apgd-t" in result.details["warnings"][0]
    assert result.details["worst"]["32_255"]["attacks"] == ["fgsm", "pgd", "apgd-t"]
    added = result.details["attacks"]["apgd-t-linf-32_255"]
    worst = result.metrics["adv/worst-linf-32_255/acc"]
    listed = min(result.metrics["adv/fgsm-linf-32_255/acc"], result.metrics["adv/pgd-linf-32_255/acc"])
    assert worst < listed - 0.05 and added["broken_by_stage"]["apgd-t (added)"] > 5
    numbers = result.flags["numbers"]
    assert numbers["adv/pgd-linf-32_255/acc"]["trusted"] is False  # the untargeted row, not the worst case
    assert "adv/worst-linf-32_255/acc" not in numbers, numbers
    plain = attack(model, data, attacks=["fgsm", "pgd"], eps=[EPS], steps=10, n_examples=100)
    assert "warnings" not in plain.details and plain.details["worst"]["32_255"]["attacks"] == ["fgsm", "pgd"]


def test_evidence_flows_both_ways_between_attack_tests(model, data):
    diffuse = Diffuse(model)
    tests = {
        "weak": AttackParams.model_validate(
            {"kind": "attack", "attacks": ["pgd"], "eps": [EPS], "n_examples": 120, "checks": False}
        ),
        "strong": AttackParams.model_validate(
            {"kind": "attack", "prefix": "aa", "attacks": ["apgd-t"], "eps": [EPS], "n_examples": 80, "checks": False}
        ),
    }
    for order in (["weak", "strong"], ["strong", "weak"]):  # the weak test first, then last
        doc = new_document({}, {})
        results = {}
        for test_id in order:
            res = registry.get("test", "attack").run(Context(diffuse, data, data.test, 128, 0), tests[test_id])
            results[test_id] = res
            record(doc, "m", test_id, {"metrics": res.metrics, "details": res.details, "flags": {}, "seconds": 0})
        finish(doc, {t: tests[t] for t in order})
        mark = doc["flags"]["m"]["weak"]["numbers"]["adv/pgd-linf-32_255/acc"]
        assert mark["trusted"] is False and "apgd-t (test strong)" in mark["why"]
        assert doc["metrics"]["m"]["adv/flags/white_box_disagreement"] == 1.0
        assert "strong" not in doc["flags"]["m"]  # the stronger test is not marked
        weak = unpack(results["weak"].details["worst"]["32_255"]["robust"], 120)
        strong = unpack(results["strong"].details["worst"]["32_255"]["robust"], 80)
        assert doc["metrics"]["m"]["worst/linf-32_255/acc"] == float((weak[:80] & strong).double().mean())
        assert doc["details"]["m"][ACROSS]["linf-32_255"] == {"n": 80, "tests": order}
        # each test's own worst case keeps its own key and points
        assert doc["metrics"]["m"]["adv/worst-linf-32_255/acc"] == float(weak.double().mean())


def test_masks_round_trip_through_the_document():
    mask = torch.rand(37, generator=torch.Generator().manual_seed(0)) > 0.5
    assert torch.equal(unpack(pack(mask), 37), mask)


def test_a_key_written_twice_stops_the_run():
    doc = new_document({}, {})
    record(doc, "m", "clean", {"metrics": {"cal/ece": 0.1}, "details": {}, "flags": {}, "seconds": 0})
    with pytest.raises(RuntimeError, match="'cal/ece' was already written"):
        record(doc, "m", "clean#2", {"metrics": {"cal/ece": 0.2}, "details": {}, "flags": {}, "seconds": 0})
    assert doc["metrics"]["m"]["cal/ece"] == 0.1


class Outside(nn.Module):
    """Every pixel pushed to 1.5 (outside [0, 1]) makes class 9 win; inside the range it is the inner model."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inner(x.clamp(0, 1))
        over = (x - 1).clamp_min(0).flatten(1).sum(1)
        return z + torch.nn.functional.one_hot(torch.full_like(over, 9, dtype=torch.long), 10) * 1000 * over[:, None]


class Ramp(nn.Module):
    """Class 0 at 5; class 9 at 4.9 + 100 (mean pixel - 1): it rises with every pixel but wins only beyond 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.zeros(len(x), 10)
        z[:, 0] = 5
        z[:, 9] = 4.9 + 100 * (x.flatten(1).mean(1) - 1)
        return z


def test_traced_pgd_stays_inside_the_pixel_range():
    # planted bug: without the clamp, PGD climbs out of [0, 1] where this model is fooled
    x = torch.full((20, 1, 8, 8), 0.9)
    y = torch.zeros(20, dtype=torch.long)
    for loss in ("ce", "margin"):
        adv, losses, fooled = traced_pgd(Ramp(), x, y, "linf", 0.3, 10, 0, loss=loss)
        assert adv.min() >= 0 and adv.max() <= 1 and adv.max() == 1  # it pushed up to the edge, not past it
        assert not fooled.any()
    assert MultiTargeted(Ramp(), "linf", 0.3, 5, 0, 3)(x, y).max() <= 1


def test_out_of_range_adversarials_never_count(model, data):
    # planted bug: dropping in_unit_range from the success or the cascade mask would count these as broken
    p = probe(Outside(model), data, attacks=["fgsm"], eps=[8 / 255], m=50)

    def overshoot(net: nn.Module):  # inside eps, but above 1 where pixels are already bright
        return lambda x, y: x + 8 / 255

    res = p.runner.run("overshoot", 8 / 255, 20, 50, build=overshoot)
    correct = p.runner.clean_correct(50)
    assert not res.success.any() and torch.equal(res.robust, correct)
    assert not res.broken_by["overshoot"].any()
    out = fired(p, "invalid_adversarials")
    assert out["flag"] and "outside [0, 1]" in out["why"] and out["counted_outside_range"] == 0


def test_margin_loss_is_the_runner_up_gap():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 4.0, 1.0]])
    assert margin_loss(logits, torch.tensor([0, 0])).tolist() == [-1.0, 4.0]
