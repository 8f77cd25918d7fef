"""Each honesty check fires on a model built to trip it and stays silent on an ordinary model.

The models are tiny: the digits MLP of conftest.py behind a wrapper that breaks what the check looks for, or a
hand-written 4x4 model on synthetic points whose clean value is 0.5 in every pixel (so the model knows where the
clean point is and can shape the loss along the attack's path exactly).
"""

from __future__ import annotations

import pytest
import torch
from attack_models import Quantised
from randomised import Noisy
from torch import nn

from robustcollapse import registry
from robustcollapse.attacks import Probe, Runner, adversary, chance_limit, check_names, run_checks
from robustcollapse.data import to_float

EPS = [8 / 255, 32 / 255]


def probe(net: nn.Module, data, attacks=("fgsm", "pgd"), eps=EPS, steps=20, m=100, eot=1, classes=10, x=None, y=None):
    if x is None:
        for p in net.parameters():
            p.requires_grad_(False)
        x, y = to_float(data.test.x[:m]), data.test.y[:m]
    runner = Runner(net.eval(), x, y, "linf", 128, 0, classes, eot=eot)
    return Probe(runner, list(attacks), list(eps), steps, len(x), 0.02)


def fired(p: Probe, name: str) -> dict:
    return registry.get("check", name)(p)


def toy_points(n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """n 4x4 grey images, 0.5 +- 0.01 per pixel, all of class 0."""
    gen = torch.Generator().manual_seed(1)
    return 0.5 + 0.02 * (torch.rand(n, 1, 4, 4, generator=gen) - 0.5), torch.zeros(n, dtype=torch.long)


class Shift(nn.Module):
    """Toy model on toy_points: the logits of 3 classes as functions of u = mean(x - 0.5) / eps (and a 4th, never
    chosen)."""

    def __init__(self, logits, eps: float) -> None:
        super().__init__()
        self.logits = logits
        self.eps = eps
        self.anchor = nn.Parameter(torch.zeros(()))  # a parameter so the model can be frozen like any other

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = (x - 0.5).flatten(1).mean(1) / self.eps
        out = self.logits(u, x) + self.anchor
        return torch.cat([out, torch.full_like(out[:, :1], -50)], 1)  # a 4th class: APGD-T's DLR needs K >= 4


class Jittered(nn.Module):
    """Randomised with logits in the millions: +1e6 on every logit (softmax unchanged) and N(0, 1e-3) noise."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x).double() + 1e6
        return out + 1e-3 * torch.randn_like(out)


class OffManifold(nn.Module):
    """Masks gradients only off the data: a point on the 1/255 grid of stored images sees the model, any other
    point a quantised copy (zero gradient). The clean gradient is perfect; one step from it breaks points, but
    the random start of PGD lands off the grid and PGD never moves."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        on_grid = ((x * 255 - torch.round(x * 255)).abs() < 1e-4).flatten(1).all(1)
        return torch.where(on_grid[:, None], self.inner(x), self.inner(torch.round(x * 4) / 4))


class BatchDependent(nn.Module):
    """Centres each batch on its own mean: a prediction depends on which other images share the batch."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner((x - x.mean(0, keepdim=True) + 0.3).clamp(0, 1))


class Rugged(nn.Module):
    """Deterministic but rugged: a ripple of amplitude 4 and a wavelength far below eps on every logit."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.direction = nn.Parameter(torch.randn(64, 10, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + 4 * torch.sin(3000 * x.flatten(1) @ self.direction / 64)


def test_binomial_limit_is_the_upper_quantile():
    # 4 of 200 points at a 2 % rate is the expected count, not evidence; the bound is the 99 % quantile
    assert chance_limit(200, 0.02) == 9
    assert chance_limit(50, 0.0) == 0
    from scipy.stats import binom

    for m, rate in [(100, 0.02), (500, 0.05), (37, 0.1)]:
        k = chance_limit(m, rate)
        assert binom.sf(k, m, rate) <= 0.01 < binom.sf(k - 1, m, rate)


def test_checks_use_the_binomial_limit_for_their_points(model, data):
    p = probe(model, data, m=200)
    assert p.limit() == chance_limit(200, 0.02) == 9  # a fixed 2 % would fire on 5 points
    assert fired(p, "single_step_stronger")["threshold"] == pytest.approx(9 / 200)


def test_every_check_is_registered_with_its_source():
    assert registry.names("check") == sorted(check_names())
    pintor = {
        "silent success",
        "incomplete optimisation",
        "transfer failure",
        "unavailable gradients",
        "unstable predictions",
        "unconstrained attack failure",
    }
    sources = " ".join(registry.get("check", n).source.lower() for n in check_names())
    assert all(f"pintor et al. 2022, {indicator}" in sources for indicator in pintor)


def test_ordinary_model_trips_no_check(model, data):
    out = run_checks(probe(model, data, m=150))
    assert [n for n, c in out.items() if c["flag"]] == [], out
    assert out["transfer_failure"]["skipped"] and out["steps_sensitive"]["count"] <= chance_limit(150, 0.02)


def test_nondeterministic_sees_noise_under_large_logits(model, data):
    out = fired(probe(Jittered(model), data, m=30), "nondeterministic")
    assert out["flag"] and out["value"] == 1.0  # the old tolerance 1e-5 (1 + max |logit|) = 10 hid it


def test_bad_gradients_also_at_perturbed_points(model, data):
    out = fired(probe(OffManifold(model), data), "bad_gradients")
    assert out["at_clean"] == 0.0 and out["in_ball"] > 0.9 and out["flag"]
    assert fired(probe(Quantised(model), data), "bad_gradients")["at_clean"] > 0.9


def test_single_step_stronger_on_a_model_masking_off_the_data(model, data):
    out = fired(probe(OffManifold(model), data), "single_step_stronger")
    assert out["flag"] and out["value"] > 0.3


def _cliff(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Class 1 wins once the mean shift passes 0.5 eps_small, unless a pixel moved more than 0.2 (then class 0,
    flat)."""
    far = ((x - 0.5).flatten(1).abs().amax(1) > 0.2).double()
    z1 = (10 * (u - 0.5)) * (1 - far) - 10 * far
    return torch.stack([torch.zeros_like(u), z1, torch.full_like(u, -50)], 1)


def test_not_monotone_on_a_model_robust_only_far_away():
    x, y = toy_points()
    p = probe(Shift(_cliff, 0.1), None, attacks=["pgd"], eps=[0.1, 0.3], x=x, y=y, classes=4)
    out = fired(p, "not_monotone")
    assert out["flag"] and out["value"] > 0.9 and out["concerns"] == ["pgd"]


def test_unbounded_survivors_and_noise_on_a_quantised_model(model, data):
    p = probe(Quantised(model), data)
    assert fired(p, "unbounded_survivors")["flag"]
    noise = fired(p, "noise_not_weaker")
    assert noise["flag"] and noise["noise_acc"] < noise["attack_acc"] + 1  # both measured on the same m points


def test_noise_not_weaker_compares_the_same_points(model, data):
    p = probe(Quantised(model), data, m=60)
    out = fired(p, "noise_not_weaker")
    assert out["count"] <= 60 and out["value"] == out["count"] / 60


def _staircase(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Class 1 wins once the input, rounded to quarters, brightens on average by 1/20: zero gradient everywhere."""
    q = (torch.round(x * 4) / 4 - 0.5).flatten(1).mean(1)
    return torch.stack([torch.zeros_like(u), 40 * q - 2, torch.full_like(u, -50)], 1)


def test_black_box_stronger_runs_its_own_square_on_the_white_box_survivors(model, data):
    # it used to run at the largest eps (where everything is broken) or reuse AutoAttack's Square, which only sees
    # the points the APGDs and FAB left robust and so could not disagree with them
    x, y = toy_points(30)
    p = probe(Shift(_staircase, 0.2), None, attacks=["pgd"], eps=[0.2], x=x, y=y, classes=4)
    out = fired(p, "black_box_stronger")
    run = p.runner.memo[("square-1000", 0.2, 20, 30)]
    white_robust = p.runner.robust("pgd", 0.2, 20, 30)
    assert run.attacked == int(white_robust.sum()) > 20  # Square ran on the white-box survivors alone
    assert out["flag"] and out["count"] == int(run.success.sum()) > 20 and out["queries"] == 1000
    ordinary = probe(model, data, attacks=["pgd"], eps=[8 / 255, 1.0], m=60)
    quiet = fired(ordinary, "black_box_stronger")
    assert quiet["eps"] == 8 / 255 and not quiet["flag"]  # not eps 1, where PGD leaves nothing to compare


def test_invalid_adversarials_names_the_reason(model, data):
    p = probe(BatchDependent(model), data, attacks=["fgsm"], eps=[8 / 255], m=100)
    p.runner.run("fgsm", 8 / 255, 20, 100)
    out = fired(p, "invalid_adversarials")
    assert out["flag"] and "re-measured" in out["why"] and "outside eps" not in out["why"]

    p = probe(model, data, attacks=["fgsm"], eps=[8 / 255], m=50)

    def escaping(net: nn.Module):  # a check's own attack that steps out of the eps-ball
        return lambda x, y: (x + 3 * 8 / 255).clamp(0, 1)

    p.runner.run("escaping", 8 / 255, 20, 50, build=escaping)
    out = fired(p, "invalid_adversarials")
    assert out["flag"] and "escaping" in out["why"] and "beyond eps" in out["why"] and "re-measured" not in out["why"]


def test_invalid_adversarials_does_not_trust_the_runners_eps_test(model, data, monkeypatch):
    # plant the bug the issue found (an eps-ball test accepting anything): an unbounded attack's far inputs
    # would then count; the check re-measures the counted inputs and fires
    monkeypatch.setattr(adversary, "within", lambda delta, norm, eps: torch.ones(len(delta), dtype=torch.bool))
    p = probe(model, data, attacks=["fgsm"], eps=[8 / 255], m=50)

    def far(net: nn.Module):
        return lambda x, y: 1 - x

    p.runner.run("far", 8 / 255, 20, 50, build=far)
    out = fired(p, "invalid_adversarials")
    assert out["flag"] and out["counted_outside_eps"] > 0 and "counted adversarials outside eps" in out["why"]


def test_steps_sensitive_is_skipped_for_fixed_budgets_and_fires_on_a_noisy_model(model, data):
    assert fired(probe(model, data, attacks=["autoattack"], m=10), "steps_sensitive")["skipped"]
    out = fired(probe(Rugged(model), data, attacks=["pgd"], steps=10), "steps_sensitive")
    assert out["flag"], out


def _detour(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class 0 grows all the way to u = 1, but class 1 leads only for u in (0.35, 0.65)."""
    z1 = 0.05 - 2.2 * (u - 0.5) ** 2
    z2 = -3 + 2.9 * u
    return torch.stack([torch.zeros_like(u), z1, z2], 1)


def test_silent_success_on_a_model_whose_loss_passes_the_adversarial_region():
    x, y = toy_points()
    p = probe(Shift(_detour, 0.1), None, attacks=["pgd"], eps=[0.1], x=x, y=y, classes=4)
    out = fired(p, "silent_success")
    assert out["flag"] and out["value"] > 0.9
    assert p.runner.robust("pgd", 0.1, 20, len(x)).all()  # PGD itself reports every point robust


def test_incomplete_optimisation_counts_only_what_a_longer_run_confirms(model, data):
    out = fired(probe(Rugged(model), data, attacks=["pgd"], steps=1), "incomplete_optimisation")
    assert out["flag"] and out["count"] <= out["rising"] and out["confirm_steps"] == 5
    # on the ordinary model one step leaves the loss rising on many points, yet 5 steps break almost none of them:
    # the rise alone was a false alarm (the main job's baseline showed 25 rising points, 3 confirmed)
    plain = fired(probe(model, data, attacks=["pgd"], steps=1), "incomplete_optimisation")
    assert plain["rising"] > 3 * chance_limit(100, 0.02) and not plain["flag"]


def test_transfer_failure_on_a_randomised_model_under_eot(model, data):
    p = probe(Noisy(model), data, attacks=["pgd"], steps=10, eot=5)
    p.runner.run("pgd", 32 / 255, 10, p.m)
    out = fired(p, "transfer_failure")
    assert out["flag"] and out["concerns"] == ["pgd"]


def test_unstable_predictions_on_a_rugged_model(model, data):
    out = fired(probe(Rugged(model), data), "unstable_predictions")
    assert out["flag"] and out["value"] > 0.2
    assert not fired(probe(model, data), "unstable_predictions")["flag"]
