"""Running attacks on a fixed set of points: the runner shared by the attack test and its honesty checks.

Every attack runs on the clean-correct points among the first n (a clean mistake counts as non-robust). An
adversarial example counts only if it is misclassified, inside [0, 1] and within eps (`threat.py`: tolerance 1e-5
for L-inf, 1e-4 relative for L2), all three re-measured here, not taken from the attack. A composite attack
(AutoAttack) runs its stages as a cascade, each on the points still robust, and records which stage broke which
point, so a black-box stage (Square) is told apart from the white-box ones. With `eot` > 1 gradient attacks see the
mean logits of `eot` forward passes (expectation over transformation, Athalye et al. 2018) and AutoAttack runs its
`rand` version.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robustcollapse import registry
from robustcollapse.attacks.library import AttackKind
from robustcollapse.attacks.threat import in_unit_range, perturbation_norm, within
from robustcollapse.distributed import map_chunks
from robustcollapse.progress import track


class Expectation(nn.Module):
    """EOT view of a randomised model: the mean of `samples` forward passes (gradients average with it)."""

    def __init__(self, model: nn.Module, samples: int) -> None:
        super().__init__()
        self.model = model
        self.samples = samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.model(x) for _ in range(self.samples)]).mean(0)


@dataclass
class Attacked:
    """Outcome of one attack at one eps on n points (masks over the n points)."""

    robust: torch.Tensor  # bool: correct and not validly broken
    success: torch.Tensor  # bool: counted adversarial examples
    broken_by: dict[str, torch.Tensor]  # stage name -> points that stage broke (one entry for a plain attack)
    size: torch.Tensor  # perturbation size of the returned input (0 where not attacked)
    in_range: torch.Tensor  # bool: returned input inside [0, 1]
    seconds: float
    attacked: int
    eps: float
    bounded: bool
    recount_mismatch: int = 0  # predictions that change when the stored inputs are re-measured in other batches
    surrogate_fooled: torch.Tensor | None = None  # misclassified by the view the attack saw (EOT), if it differs
    version: str = "standard"

    @property
    def returned_excess(self) -> float:
        """Largest size beyond eps among returned inputs of an attack that claims to search inside eps."""
        return float((self.size - self.eps).clamp_min(0).max()) if self.bounded and len(self.size) else 0.0

    @property
    def mean_norm(self) -> float:
        """Mean perturbation size of the counted adversarial examples (nan when there are none)."""
        return float(self.size[self.success].mean()) if bool(self.success.any()) else float("nan")


def stage_names(name: str, kind: AttackKind | None) -> tuple[str, ...]:
    """The registered names of an attack's stages: its components, or the attack itself."""
    return kind.components if kind is not None and kind.components else (name,)


@dataclass
class Runner:
    """Runs attacks on a fixed set of points, memoised per (attack, eps, steps, n)."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    norm: str
    batch_size: int
    seed: int
    num_classes: int
    eot: int = 1
    memo: dict[tuple[str, float, int, int], Attacked] = field(default_factory=dict)
    _correct: torch.Tensor | None = None

    def predict(self, x: torch.Tensor, batch_size: int, model: nn.Module | None = None) -> torch.Tensor:
        """Predicted classes of x, in batches of `batch_size`, by `model` (default: the runner's model)."""
        net = model or self.model

        def batch(start: int, stop: int) -> tuple[torch.Tensor]:
            with torch.inference_mode():
                return (net(x[start:stop]).argmax(1),)

        return map_chunks(len(x), batch_size, batch)[0].to(x.device)

    def clean_correct(self, n: int) -> torch.Tensor:
        """Which of the first n points the model gets right (one pass over all points, computed once)."""
        if self._correct is None:
            self._correct = self.predict(self.x, self.batch_size) == self.y
        return self._correct[:n]

    @property
    def attacked_model(self) -> nn.Module:
        """The model gradient attacks see: the model itself, or its EOT mean."""
        return self.model if self.eot <= 1 else Expectation(self.model, self.eot)

    def robust(
        self, name: str, eps: float, steps: int, n: int, build: Callable[..., Any] | None = None
    ) -> torch.Tensor:
        """Robust mask of the first n points, sliced from a larger run of the same attack when there is one."""
        return self.result(name, eps, steps, n, build).robust[: min(n, len(self.x))]

    def result(self, name: str, eps: float, steps: int, n: int, build: Callable[..., Any] | None = None) -> Attacked:
        """The run of `name` covering at least the first n points (a memoised larger run, or a new one)."""
        n = min(n, len(self.x))
        for (memo_name, memo_eps, memo_steps, memo_n), res in self.memo.items():
            if (memo_name, memo_eps, memo_steps) == (name, eps, steps) and memo_n >= n:
                return res
        return self.run(name, eps, steps, n, build)

    def _kind(self, name: str) -> tuple[AttackKind, str]:
        if name == "autoattack" and self.eot > 1:
            return registry.get("attack", "autoattack-rand"), "rand"
        return registry.get("attack", name), "standard"

    def run(
        self,
        name: str,
        eps: float,
        steps: int,
        n: int,
        build: Callable[..., Any] | None = None,
        among: torch.Tensor | None = None,
    ) -> Attacked:
        """Attack the clean-correct points among the first n; `build` makes a check's own (unregistered) attack;
        `among` (a mask over the n points) restricts it to those points (a cascade on what other attacks left
        robust: give such a run its own name, its robust mask counts the other points as broken)."""
        n = min(n, len(self.x))  # a suite limit below n_examples must not make a second, identical run
        key = (name, eps, steps, n)
        if key in self.memo:
            return self.memo[key]
        kind, version = (None, "standard") if build is not None else self._kind(name)
        stages = self._stages(name, kind, version, eps, steps, build)
        x, y = self.x[:n], self.y[:n]
        correct = self.clean_correct(n) if among is None else self.clean_correct(n) & among[:n]
        start = time.perf_counter()
        adv, broken_by = self._cascade(stages, x, y, correct, eps)
        seconds = time.perf_counter() - start
        pred = self.predict(adv, self.batch_size)
        success = correct & (pred != y) & within(adv - x, self.norm, eps) & in_unit_range(adv)
        surrogate = self.attacked_model if version == "standard" else self.model
        fooled = None if surrogate is self.model else correct & (self.predict(adv, self.batch_size, surrogate) != y)
        result = Attacked(
            robust=correct & ~success,
            success=success,
            broken_by=broken_by,
            size=perturbation_norm(adv - x, self.norm),
            in_range=in_unit_range(adv),
            seconds=seconds,
            attacked=int(correct.sum()),
            eps=eps,
            bounded=build is not None or kind.bounded,  # the checks' own attacks all search inside eps
            recount_mismatch=int((self.predict(adv, max(1, self.batch_size // 2 + 1)) != pred).sum()),
            surrogate_fooled=fooled,
            version=version,
        )
        self.memo[key] = result
        return result

    def _stages(
        self,
        name: str,
        kind: AttackKind | None,
        version: str,
        eps: float,
        steps: int,
        build: Callable[..., Any] | None,
    ) -> list[tuple[str, Callable[..., torch.Tensor]]]:
        """The attack as named stages: a composite's components (run as a cascade), else the attack itself."""
        target = self.model if version == "rand" else self.attacked_model  # APGD's own EOT in the rand version
        attack = (
            build(target) if build is not None else kind(target, self.norm, eps, steps, self.seed, self.num_classes)
        )
        stages = list(getattr(attack, "attacks", [attack])) if kind is not None and kind.components else [attack]
        return list(zip(stage_names(name, kind), stages, strict=True))

    def _cascade(
        self,
        stages: list[tuple[str, Callable[..., torch.Tensor]]],
        x: torch.Tensor,
        y: torch.Tensor,
        correct: torch.Tensor,
        eps: float,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each stage on the points still robust, seeded per batch: the returned inputs and, per stage, the points
        it broke validly (misclassified, within eps, inside [0, 1], re-measured here rather than taken from it).
        Under torchrun each rank attacks its share of the batches; every rank gets every adversarial input."""
        adv = x.clone()
        broken_by = {}
        remaining = correct.clone()
        for stage_name, stage in stages:
            idx = torch.nonzero(remaining).squeeze(1)
            with track(len(idx), f"{stage_name} {self.norm} eps {eps:.4g}", unit="points") as advance:
                if len(idx):
                    adv[idx] = self._attack_points(stage, x, y, idx, advance).to(adv.device, adv.dtype)
            pred = self.predict(adv, self.batch_size)
            broken = remaining & (pred != y) & within(adv - x, self.norm, eps) & in_unit_range(adv)
            broken_by[stage_name] = broken
            remaining = remaining & ~broken
        return adv, broken_by

    def _attack_points(
        self,
        stage: Callable[..., torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        idx: torch.Tensor,
        advance: Callable[[int], None],
    ) -> torch.Tensor:
        """One stage on the points `idx`, in batches each seeded alike (so a batch's result does not depend on
        which rank ran it or what ran before): their adversarial inputs, in the order of `idx`."""

        def batch(start: int, stop: int) -> tuple[torch.Tensor]:
            b = idx[start:stop]
            torch.manual_seed(self.seed)
            return (stage(x[b], y[b]).detach(),)

        return map_chunks(len(idx), self.batch_size, batch, advance=advance)[0]
