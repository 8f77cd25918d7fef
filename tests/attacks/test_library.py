"""The registered attacks: AutoAttack at its official budgets, and its `rand` version under EOT."""

from __future__ import annotations

import torch
import torchattacks
from randomised import Noisy

from robustcollapse import registry
from robustcollapse.attacks import AUTOATTACK_SQUARE_QUERIES, AUTOATTACK_STEPS, Runner


def test_autoattack_uses_the_official_budgets(model):
    build = registry.get("attack", "autoattack")
    multi = build(model, "linf", 8 / 255, 20, 0, 10)
    apgd, apgdt, fab, square = multi.attacks
    assert isinstance(apgd, torchattacks.APGD) and apgd.steps == AUTOATTACK_STEPS == 100
    assert apgd.loss == "ce" and apgd.n_restarts == 1
    assert isinstance(apgdt, torchattacks.APGDT) and apgdt.steps == 100 and apgdt.n_target_classes == 9
    assert isinstance(fab, torchattacks.FAB) and fab.steps == 100 and fab.multi_targeted and fab.n_target_classes == 9
    assert isinstance(square, torchattacks.Square) and square.n_queries == AUTOATTACK_SQUARE_QUERIES == 5000
    assert all(a.eps == 8 / 255 for a in multi.attacks)
    # fewer classes than 10: K-1 targets
    assert build(model, "l2", 0.5, 20, 0, 4).attacks[1].n_target_classes == 3


def test_autoattack_runs_its_rand_version_under_eot(model):
    x = torch.rand(4, 1, 8, 8)
    runner = Runner(Noisy(model).eval(), x, torch.zeros(4, dtype=torch.long), "linf", 8, 0, 10, eot=20)
    kind, version = runner._kind("autoattack")
    assert version == "rand" and kind.components == ("apgd-ce", "apgd-dlr")
    stages = kind(model, "linf", 8 / 255, 20, 0, 10).attacks
    assert [(a.loss, a.eot_iter, a.steps) for a in stages] == [("ce", 20, 100), ("dlr", 20, 100)]
