"""Our `autoattack` (torchattacks' parts at the official budgets, as a cascade) against the authors' own AutoAttack
(the `pyautoattack` package, Croce & Hein's code) on the same model and points.

Both are randomised (random starts, Square's random squares) and the two implementations draw differently, so in
general they agree only up to points at the very edge of breaking. On this model and these 150 points they agree
point for point for seeds 0, 1 and 2 (78 robust, measured when this test was written); we allow 1 point (a
near-boundary point may flip under another BLAS or CPU). That is tight enough to catch a weakened AutoAttack: its
first stage alone (APGD-CE, no targeted stage) leaves 81 points robust, PGD-10 leaves 87 — both fail here (the
test checks the first of these itself).
"""

from __future__ import annotations

import pytest
import torch

from robustcollapse.attacks import Runner, within
from robustcollapse.data import to_float

pyautoattack = pytest.importorskip("pyautoattack")

N = 150
EPS = 24 / 255
TOLERANCE = 1 / N


def original_robust(model, x, y, seed: int) -> torch.Tensor:
    attack = pyautoattack.AutoAttack(model, norm="Linf", eps=EPS, version="standard", seed=seed)
    attack.verbose = False
    adv, _ = attack.run_standard_evaluation(x, y, batch_size=N)
    with torch.no_grad():
        fooled = (model(adv).argmax(1) != y) & within(adv - x, "linf", EPS) & (adv >= 0).flatten(1).all(1)
        correct = model(x).argmax(1) == y
    return correct & ~(fooled & (adv <= 1).flatten(1).all(1))


@pytest.mark.slow
def test_autoattack_equals_the_original_within_its_randomness(model, data):
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    x, y = to_float(data.test.x[:N]), data.test.y[:N]
    ours = Runner(model, x, y, "linf", N, 0, 10).run("autoattack", EPS, 100, N)
    theirs = original_robust(model, x, y, seed=0)
    clean = float((model(x).argmax(1) == y).double().mean())
    acc_ours, acc_theirs = float(ours.robust.double().mean()), float(theirs.double().mean())
    assert 0.1 < acc_theirs < clean - 0.1  # an eps where the attack matters, not all or nothing
    assert abs(acc_ours - acc_theirs) <= TOLERANCE, (acc_ours, acc_theirs)
    assert int((ours.robust ^ theirs).sum()) <= 2  # the same points, not two different sets of the same size
    untargeted = Runner(model, x, y, "linf", N, 0, 10).run("apgd-ce", EPS, 100, N)  # the planted weakening
    assert float(untargeted.robust.double().mean()) - acc_theirs > TOLERANCE
    for p in model.parameters():
        p.requires_grad_(True)
