"""Adversarial attacks: thin, registered wrappers around torchattacks, all in pixel space ([0, 1] inputs).

Each factory builds a configured torchattacks `Attack` for (model, norm, eps, steps, seed, num_classes). `norms`
says which threat models it supports; `bounded` whether it searches inside the eps-ball (minimal-perturbation
attacks such as CW and DeepFool are not: their result counts only where it lies within eps).

`autoattack` is the *standard* AutoAttack with its official budgets, assembled from torchattacks' parts:
APGD-CE (100 steps, 1 restart) -> APGD-T (100 steps x min(9, K-1) targets) -> FAB-T (100 steps x the same
targets) -> Square (5,000 queries), each stage only on the points still robust (torchattacks.MultiAttack).
torchattacks' own `AutoAttack` class builds these parts with 10 steps; it is not used. Its stages are listed
in `components` so the runner can tell which stage broke a point (Square is black-box, the others white-box).
`autoattack-rand` is the official version for randomised defences: APGD-CE and APGD-DLR (untargeted), 100 steps
each, every gradient the mean of 20 samples (EOT); the runner uses it for `autoattack` when EOT is on.
`fixed_budget` marks attacks whose budget ignores `steps` (single-step attacks, Square, AutoAttack). `mt-pgd`
(multi-targeted PGD) is ours (`pgd.py`): torchattacks has no margin-loss PGD aimed at each class in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torchattacks
from torch import nn
from torchattacks.attack import Attack

from robustcollapse.attacks.pgd import MultiTargeted
from robustcollapse.registry import register

Factory = Callable[[nn.Module, str, float, int, int, int], Attack]
TORCHATTACKS_NORM = {"linf": "Linf", "l2": "L2"}
AUTOATTACK_STEPS = 100
AUTOATTACK_SQUARE_QUERIES = 5000
AUTOATTACK_EOT = 20


@dataclass(frozen=True)
class AttackKind:
    """A registered attack: how to build it, which norms it supports, whether it stays inside eps, whether it
    reads gradients (white box), whether `steps` sets its budget, the registered attacks it chains, the loss it
    maximises ('ce', 'margin', 'dlr', ... ; the objective-mismatch checks read it) and whether it aims at target
    classes."""

    build: Factory
    norms: tuple[str, ...]
    bounded: bool
    iterative: bool
    white_box: bool = True
    fixed_budget: bool = False
    components: tuple[str, ...] = ()
    loss: str = "ce"
    targeted: bool = False

    def __call__(self, model: nn.Module, norm: str, eps: float, steps: int, seed: int, num_classes: int):
        return self.build(model, norm, eps, steps, seed, num_classes)


def _attack(
    name: str,
    doc: str,
    norms: tuple[str, ...],
    bounded: bool = True,
    iterative: bool = True,
    white_box: bool = True,
    fixed_budget: bool = False,
    components: tuple[str, ...] = (),
    loss: str = "ce",
    targeted: bool = False,
) -> Callable[[Factory], AttackKind]:
    def wrap(build: Factory) -> AttackKind:
        kind = AttackKind(build, norms, bounded, iterative, white_box, fixed_budget, components, loss, targeted)
        object.__setattr__(kind, "__doc__", doc)
        register("attack", name)(kind)
        return kind

    return wrap


def target_classes(num_classes: int) -> int:
    """The official AutoAttack uses 9 target classes, or K-1 when there are fewer."""
    return min(9, num_classes - 1)


@_attack("fgsm", "FGSM: one signed-gradient step of size eps (L-inf).", ("linf",), iterative=False, fixed_budget=True)
def fgsm(model, norm, eps, steps, seed, num_classes):
    return torchattacks.FGSM(model, eps=eps)


@_attack("pgd", "PGD (L-inf): `steps` steps of 2.5*eps/steps from a random start (Madry et al.).", ("linf",))
def pgd(model, norm, eps, steps, seed, num_classes):
    return torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=True)


@_attack("pgdl2", "PGD (L2): `steps` steps of 2.5*eps/steps from a random start.", ("l2",))
def pgdl2(model, norm, eps, steps, seed, num_classes):
    return torchattacks.PGDL2(model, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=True)


@_attack(
    "fgm",
    "Single L2 gradient step of length eps (PGD-L2 with one step, no random start).",
    ("l2",),
    iterative=False,
    fixed_budget=True,
)
def fgm(model, norm, eps, steps, seed, num_classes):
    return torchattacks.PGDL2(model, eps=eps, alpha=eps, steps=1, random_start=False)


@_attack(
    "cw",
    "Carlini-Wagner L2 (c=1, kappa=0, `steps` Adam steps); counts only within eps.",
    ("l2",),
    bounded=False,
    loss="margin",
)
def cw(model, norm, eps, steps, seed, num_classes):
    return torchattacks.CW(model, c=1.0, kappa=0.0, steps=steps, lr=0.01)


@_attack(
    "deepfool",
    "DeepFool (L2, overshoot 0.02, `steps` iterations); counts only within eps.",
    ("l2",),
    bounded=False,
    loss="linearised boundary",
)
def deepfool(model, norm, eps, steps, seed, num_classes):
    return torchattacks.DeepFool(model, steps=steps, overshoot=0.02)


@_attack("apgd-ce", "APGD with cross-entropy loss, `steps` steps, 1 restart (Croce & Hein 2020).", ("linf", "l2"))
def apgd_ce(model, norm, eps, steps, seed, num_classes):
    return torchattacks.APGD(
        model, norm=TORCHATTACKS_NORM[norm], eps=eps, steps=steps, n_restarts=1, seed=seed, loss="ce"
    )


@_attack(
    "apgd-t",
    "Targeted APGD (DLR loss), `steps` steps x min(9, K-1) target classes.",
    ("linf", "l2"),
    loss="dlr",
    targeted=True,
)
def apgd_t(model, norm, eps, steps, seed, num_classes):
    return torchattacks.APGDT(
        model,
        norm=TORCHATTACKS_NORM[norm],
        eps=eps,
        steps=steps,
        n_restarts=1,
        seed=seed,
        n_classes=target_classes(num_classes) + 1,
    )


@_attack(
    "fab",
    "Targeted FAB, `steps` steps x min(9, K-1) target classes.",
    ("linf", "l2"),
    loss="linearised boundary",
    targeted=True,
)
def fab(model, norm, eps, steps, seed, num_classes):
    return torchattacks.FAB(
        model,
        norm=TORCHATTACKS_NORM[norm],
        eps=eps,
        steps=steps,
        n_restarts=1,
        seed=seed,
        multi_targeted=True,
        n_classes=target_classes(num_classes) + 1,
    )


@_attack(
    "square",
    "Square Attack (black box), 5,000 queries, p_init 0.8.",
    ("linf", "l2"),
    white_box=False,
    fixed_budget=True,
    loss="margin",
)
def square(model, norm, eps, steps, seed, num_classes):
    return torchattacks.Square(
        model,
        norm=TORCHATTACKS_NORM[norm],
        eps=eps,
        n_queries=AUTOATTACK_SQUARE_QUERIES,
        n_restarts=1,
        p_init=0.8,
        loss="margin",
        seed=seed,
    )


@_attack("apgd-dlr", "Untargeted APGD with the DLR loss, `steps` steps, 1 restart.", ("linf", "l2"), loss="dlr")
def apgd_dlr(model, norm, eps, steps, seed, num_classes):
    return torchattacks.APGD(
        model, norm=TORCHATTACKS_NORM[norm], eps=eps, steps=steps, n_restarts=1, seed=seed, loss="dlr"
    )


@_attack(
    "mt-pgd",
    "Multi-targeted PGD: the margin z_t - z_y towards each of the top min(9, K-1) other classes in turn, `steps` "
    "steps of 2.5*eps/steps each from a random start (Gowal et al. 2019).",
    ("linf", "l2"),
    loss="margin",
    targeted=True,
)
def mt_pgd(model, norm, eps, steps, seed, num_classes):
    return MultiTargeted(model, norm, eps, steps, seed, target_classes(num_classes))


@_attack(
    "autoattack",
    "Standard AutoAttack at the official budgets: APGD-CE, APGD-T, FAB-T, Square (cascade).",
    ("linf", "l2"),
    fixed_budget=True,
    components=("apgd-ce", "apgd-t", "fab", "square"),
    loss="ensemble",
    targeted=True,
)
def autoattack(model, norm, eps, steps, seed, num_classes):
    stages = (apgd_ce, apgd_t, fab, square)  # each stage with the official 100 steps (Square: 5,000 queries)
    return torchattacks.MultiAttack([stage(model, norm, eps, AUTOATTACK_STEPS, seed, num_classes) for stage in stages])


@_attack(
    "autoattack-rand",
    "AutoAttack for randomised defences: APGD-CE then APGD-DLR, 100 steps, EOT over 20 samples (cascade).",
    ("linf", "l2"),
    fixed_budget=True,
    components=("apgd-ce", "apgd-dlr"),
    loss="ensemble",
)
def autoattack_rand(model, norm, eps, steps, seed, num_classes):
    return torchattacks.MultiAttack(
        [
            torchattacks.APGD(
                model,
                norm=TORCHATTACKS_NORM[norm],
                eps=eps,
                steps=AUTOATTACK_STEPS,
                n_restarts=1,
                seed=seed,
                loss=loss,
                eot_iter=AUTOATTACK_EOT,
            )
            for loss in ("ce", "dlr")
        ]
    )
