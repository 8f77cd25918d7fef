"""Checks for an objective mismatch, after Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks" (the DLR loss and APGD-T exist because cross-entropy attacks stall on
some models), and Carlini et al. 2019 (try other losses, targeted attacks, and compare attacks point by point).

None of these is gradient masking: the gradients are fine, but the untargeted loss leads nowhere. On a model whose
softmax spreads the wrong-class mass over many near-tied classes (the binary-latent head keeps its logits small),
cross-entropy ascends towards their average and stalls, while a margin loss aimed at one class breaks the point.

- `diffuse_softmax`: the indicator, read before any attack runs; when it fires the attack test adds a targeted
  attack (APGD-T) to its list and says so in the document.
- `targeted_stronger`, `loss_sensitive`, `white_box_disagreement`: evidence that one attack (or loss) breaks points
  another left robust, beyond what two equally strong randomised attacks disagree on by chance. They mark the rows of
  the weaker attacks, and the worst case only when the stronger run also breaks its robust points beyond chance.
"""

from __future__ import annotations

from typing import Any

import torch

from robustcollapse.attacks.checks.base import Probe, check, finding, skipped
from robustcollapse.attacks.pgd import PGD, MultiTargeted
from robustcollapse.attacks.threat import eps_label

DIFFUSE_SHARE = 1 / 3  # the runner-up holds under a third of the wrong-class mass: three or more real competitors
NO_UNTARGETED = "the test lists no untargeted iterative attack (its targeted or composite attacks are not misled)"
CHECK_TARGETS = 3  # targeted_stronger aims at the 3 classes the model ranks next (cost: 3 x steps per point)


def runner_up_share(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per point, the largest wrong class's share of the probability mass of all wrong classes (1/(K-1) when they
    tie, 1 when one class holds it all), computed from the logits so confident points do not underflow."""
    return logits.scatter(1, y[:, None], float("-inf")).softmax(1).amax(1)


@check(
    "diffuse_softmax",
    "the softmax spreads the wrong-class mass over many near-tied classes (runner-up under a third of it): "
    "untargeted losses ascend towards their average and stall, so the test adds a targeted attack (APGD-T)",
    "more clean-correct points than Binomial(m, tolerance) gives by chance",
    "Croce & Hein 2020 (DLR loss, APGD-T); Carlini et al. 2019 (targeted attacks)",
    order=15,
)
def diffuse_softmax(p: Probe) -> dict[str, Any]:
    if not p.untargeted():
        return skipped(NO_UNTARGETED)
    with torch.inference_mode():
        share = runner_up_share(p.runner.model(p.x).float(), p.y)
    diffuse = p.correct & (share < DIFFUSE_SHARE)
    return finding(
        int(diffuse.sum()),
        p.m,
        p.limit(),
        median_share=float(share.median()),
        concerns=p.untargeted(),
        worst_trusted=True,  # the test adds a targeted attack to its worst case when this fires
    )


def _evidence(p: Probe, eps: float, stronger: torch.Tensor, rows: list[str], **extra: Any) -> dict[str, Any]:
    """The finding of a comparison: for each row (an attack of the test), the points it left robust that the
    `stronger` run (robust mask over the m points) broke; the worst count decides, every row beyond chance is
    concerned, and the worst case is trusted unless its own robust points are broken beyond chance too."""
    broke = {row: int((p.runner.robust(row, eps, p.steps, p.m) & ~stronger).sum()) for row in rows}
    limit = p.limit()
    worst_case = int((p.worst(eps)[: p.m] & ~stronger).sum())
    return finding(
        max(broke.values(), default=0),
        p.m,
        limit,
        eps=eps,
        broke=broke,
        concerns=[row for row, count in broke.items() if count > limit],
        worst_trusted=worst_case <= limit,
        worst_broken=worst_case,
        **extra,
    )


@check(
    "targeted_stronger",
    "points robust under the test's untargeted iterative attacks but broken by a margin-loss PGD of the same "
    "budget aimed at each of the 3 classes ranked next (multi-targeted PGD), at the largest eps that leaves points",
    "more points than Binomial(m, tolerance) gives by chance",
    "Croce & Hein 2020; Gowal et al. 2019 (multi-targeted PGD); Carlini et al. 2019",
    order=140,
)
def targeted_stronger(p: Probe) -> dict[str, Any]:
    if not p.untargeted():
        return skipped(NO_UNTARGETED)
    eps = p.probe_eps()

    def targeted(model: torch.nn.Module) -> Any:
        return MultiTargeted(model, p.norm, eps, p.steps, p.runner.seed, CHECK_TARGETS)

    stronger = p.runner.robust(f"mt-pgd-{CHECK_TARGETS}", eps, p.steps, p.m, build=targeted)
    return _evidence(p, eps, stronger, p.untargeted(), targets=CHECK_TARGETS)


@check(
    "loss_sensitive",
    "points robust under PGD on cross-entropy but broken by the same PGD (same seeded start, step and budget) on "
    "the margin loss, at the largest eps that leaves points; marks the test's cross-entropy attacks",
    "more points than Binomial(m, tolerance) gives by chance",
    "Carlini & Wagner 2017 (margin loss); Croce & Hein 2020; Carlini et al. 2019",
    order=150,
)
def loss_sensitive(p: Probe) -> dict[str, Any]:
    if not p.untargeted():
        return skipped(NO_UNTARGETED)
    eps = p.probe_eps()
    runs = {}
    for loss in ("ce", "margin"):

        def build(model: torch.nn.Module, loss: str = loss) -> Any:
            return PGD(model, p.norm, eps, p.steps, p.runner.seed, loss)

        runs[loss] = p.runner.robust(f"pgd-{loss}-own", eps, p.steps, p.m, build=build)
    ce_rows = [name for name in p.untargeted() if p.kind(name).loss == "ce"]
    own = int((runs["ce"] & ~runs["margin"]).sum())  # our own CE-PGD is the cleanest comparison: same start
    found = _evidence(p, eps, runs["margin"], ce_rows, own_ce_left=own)
    if own > p.limit():
        found["concerns"] = ce_rows
    return {**found, **finding(max(found["count"], own), p.m, p.limit())}


@check(
    "white_box_disagreement",
    "points robust under one white-box attack of the test but broken by another at the same eps (on all the test's "
    "points; across tests the runner compares the tests of a model on the points they share)",
    "more points than Binomial(n, tolerance) gives by chance, n the points both attacks ran on",
    "Carlini et al. 2019 (compare attacks point by point); Croce & Hein 2020",
    order=160,
)
def white_box_disagreement(p: Probe) -> dict[str, Any]:
    names = [n for n in p.attacks if p.kind(n).white_box and (p.kind(n).iterative or p.kind(n).components)]
    worst_count, concerns, where, n = 0, set(), None, p.m
    for eps in p.eps:
        masks = {name: p.runner.result(name, eps, p.steps, p.m).robust for name in names} | p.added(eps)
        limit = p.limit(len(p.worst(eps)))
        for weak, weak_mask in masks.items():
            for strong, strong_mask in masks.items():
                if weak == strong or weak not in names:
                    continue
                shared = min(len(weak_mask), len(strong_mask))
                count = int((weak_mask[:shared] & ~strong_mask[:shared]).sum())
                if count > limit:
                    concerns.add(weak)
                if count > worst_count:
                    where = f"{strong} broke {count} points {weak} left robust at eps {eps_label(eps)}"
                    worst_count, n = count, shared
    n = max(n, 1)
    return finding(
        worst_count,
        n,
        p.limit(n),
        concerns=sorted(concerns),
        worst_trusted=True,  # every attack compared here is part of the worst case
        why=where if concerns else "",
    )
