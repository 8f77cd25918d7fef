"""Data-parallel training on gloo ranks started from pytest: the same history as one process within rounding,
only rank 0 writes the checkpoint, and one process trains bit for bit as the loop did before it learnt DDP.

The ranks get torchrun's environment from `tests.test_distributed.join_as`. Each trains the recipes below on the
digits (1437 training images: batches of 64 leave a last batch of 29, split 15 + 14 between two ranks; batches of
one leave rank 1 nothing, every step) and saves what it got; the single-process reference is trained in the pytest
process. The tolerances come from rounding alone: two ranks add a batch's gradient as two partial sums, one process
as one, so the weights differ in the last bits after the first step and Adam carries that along. Measured over 3
epochs: losses within 1.2e-8 relative, weights within 1.6e-7, accuracies equal, the collapse figures within 1e-6
relative — except the 2-means binarity of ReLU features, which a rounding-sized change can move by half (a
near-empty cluster's spread is divided by), so it is not compared. The bounds below leave a hundredfold margin and
a flipped image or two.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from robustcollapse import distributed as rd
from robustcollapse.config import Recipe
from robustcollapse.data import Dataset, Split, load_dataset, to_float
from robustcollapse.errors import UserError
from robustcollapse.models import Classifier
from robustcollapse.models.checkpoint import read_sidecar
from robustcollapse.training import loop, parallel
from tests.test_distributed import ROOT, TORCHRUN_ENV, free_port, join_as

pytestmark = pytest.mark.slow  # torchrun processes training together

BASE: dict[str, Any] = {
    "dataset": "digits",
    "backbone": {"name": "mlp", "hidden": 32, "depth": 2},
    "head": "linear",
    "epochs": 3,
    "batch_size": 64,
    "lr": 0.003,
    "seed": 0,
}
RECIPES = {
    "linear-augmented": {**BASE, "augment": {"crop": 1, "flip": True}},
    "binary-exp": {**BASE, "head": {"name": "binary", "d": 8, "lam": 10}},
    # every batch smaller than the world: rank 1's slice is always empty
    "binary-exp-batches-of-1": {**BASE, "head": {"name": "binary", "d": 8, "lam": 10}, "batch_size": 1, "epochs": 2},
}
TRAIN_IMAGES = {"binary-exp-batches-of-1": 40}  # the others train on all 1437
DIVERGING = {**BASE, "head": {"name": "binary", "d": 8, "lam": 10}, "lr": 1.0}  # exp(mean z²) overflows in epoch 1
LOSS_RTOL = 1e-6
WEIGHT_ATOL = 1e-5
FIGURE_RTOL = 1e-4  # the collapse figures of the history
ILL_CONDITIONED = {"bin/two_means_sep", "seconds"}


def recipe(name: str) -> Recipe:
    return Recipe.model_validate(RECIPES[name])


def trainer(rank: int, size: int, port: int, out: str) -> None:
    """Rank `rank` of `size`: train each recipe to out/<name>.safetensors, note who saved, keep what it got."""
    join_as(rank, size, port)
    real_save = parallel.save_checkpoint

    def spy(model: Classifier, weights: Path, meta: dict[str, Any]) -> dict[str, Any]:
        Path(out, f"{weights.stem}.saved-by-rank{rank}").touch()
        return real_save(model, weights, meta)

    parallel.save_checkpoint = spy
    cpu = torch.device("cpu")
    got: dict[str, Any] = {}
    for name in RECIPES:
        weights = Path(out, f"{name}.safetensors")
        model, sidecar = loop.train_to_checkpoint(recipe(name), digits(name), weights, cpu)
        got[name] = {"state": model.state_dict(), "sidecar": sidecar, "on_disk": weights.is_file()}
    try:
        loop.train_to_checkpoint(
            Recipe.model_validate(DIVERGING), digits("diverging"), Path(out, "diverging.safetensors"), cpu
        )
        got["diverging"] = "no error"
    except UserError as exc:
        got["diverging"] = str(exc)
    rd.teardown()
    torch.save(got, Path(out, f"rank{rank}.pt"))


def digits(name: str) -> Dataset:
    """The digits a recipe trains on: the first TRAIN_IMAGES[name] training images, or all."""
    data = load_dataset("digits")
    return dataclasses.replace(data, train=data.train.head(TRAIN_IMAGES.get(name)))


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One thread, as each rank has: with the two cores of a busy machine, threads that spin while waiting made the
    reference ten times slower than the ranks."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(trainer, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return out, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def single() -> dict[str, tuple[dict[str, torch.Tensor], list[dict[str, float]]]]:
    """The one-process reference, trained in the pytest process (which is no torchrun rank)."""
    assert "WORLD_SIZE" not in os.environ
    return {
        name: (lambda m, h: (m.state_dict(), h))(*loop.train_model(recipe(name), digits(name), torch.device("cpu")))
        for name in RECIPES
    }


def assert_same_history(got: list[dict[str, float]], want: list[dict[str, float]], n_train: int = 1437) -> None:
    """Loss to rounding, accuracies to two images, the collapse figures (but the ill-conditioned) to FIGURE_RTOL."""
    assert len(got) == len(want) and [r["epoch"] for r in got] == [r["epoch"] for r in want]
    for g, w in zip(got, want, strict=True):
        assert set(g) == set(w)
        assert math.isclose(g["loss"], w["loss"], rel_tol=LOSS_RTOL), (g["epoch"], g["loss"], w["loss"])
        assert abs(g["train_acc"] - w["train_acc"]) <= 2 / n_train, (g["epoch"], g["train_acc"], w["train_acc"])
        assert abs(g["test_acc"] - w["test_acc"]) <= 2 / 360, (g["epoch"], g["test_acc"], w["test_acc"])
        figures = set(w) - ILL_CONDITIONED - {"epoch", "loss", "train_acc", "test_acc"}
        assert figures and all(math.isclose(g[k], w[k], rel_tol=FIGURE_RTOL) for k in figures), (g, w)


@pytest.mark.parametrize("name", list(RECIPES))
def test_two_ranks_train_what_one_process_trains(two_ranks, single, name: str):
    _, ranks = two_ranks
    state, history = single[name]
    for got in ranks:
        assert_same_history(got[name]["sidecar"]["history"], history, TRAIN_IMAGES.get(name, 1437))
        for key, value in state.items():
            torch.testing.assert_close(got[name]["state"][key], value, rtol=0, atol=WEIGHT_ATOL, msg=key)


@pytest.mark.parametrize("name", list(RECIPES))
def test_only_rank_0_writes_and_every_rank_keeps_the_saved_model(two_ranks, name: str):
    out, ranks = two_ranks
    assert sorted(p.name for p in out.glob(f"{name}.saved-by-*")) == [f"{name}.saved-by-rank0"]
    assert all(got[name]["on_disk"] for got in ranks)  # rank 1 went on only after rank 0 had written
    assert ranks[1][name]["sidecar"] == ranks[0][name]["sidecar"] == read_sidecar(out / f"{name}.safetensors")
    for key, value in ranks[0][name]["state"].items():
        assert torch.equal(ranks[1][name]["state"][key], value), key  # bit for bit: one all-reduced gradient


def test_a_diverging_loss_stops_every_rank_alike(two_ranks):
    """No deadlock: the loss is the global one after the all-reduce, so every rank sees inf at the same step."""
    out, ranks = two_ranks
    assert ranks[0]["diverging"] == ranks[1]["diverging"]
    assert ranks[0]["diverging"].startswith("mlp+binary: training diverged at epoch 1 (loss inf")
    assert not (out / "diverging.safetensors").exists()


def old_epoch(model, opt, recipe: Recipe, train: Split, generator: torch.Generator, where: str) -> tuple[float, float]:
    """The loop's epoch as it was before data-parallel training (its augment inlined), kept as the oracle."""
    n, device = len(train), train.x.device
    steps = n // recipe.batch_size if n % recipe.batch_size == 1 else math.ceil(n / recipe.batch_size)
    order = torch.randperm(n, generator=generator).to(device)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    hit_sum = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for s in range(steps):
        idx = order[s * recipe.batch_size : (s + 1) * recipe.batch_size]
        x, crop = to_float(train.x[idx]), recipe.augment.crop
        b, c, h, w = x.shape
        if crop > 0:
            padded = torch.nn.functional.pad(x, (crop, crop, crop, crop))
            dy = torch.randint(0, 2 * crop + 1, (b,), generator=generator).to(x.device)
            dx = torch.randint(0, 2 * crop + 1, (b,), generator=generator).to(x.device)
            rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
            cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
            batch = torch.arange(b, device=x.device)[:, None, None, None]
            chan = torch.arange(c, device=x.device)[None, :, None, None]
            x = padded[batch, chan, rows, cols]
        if recipe.augment.flip:
            mask = (torch.rand(b, generator=generator) < 0.5).to(x.device)[:, None, None, None]
            x = torch.where(mask, x.flip(3), x)
        yb = train.y[idx]
        z, logits = model.forward_all(x)
        loss = model.loss(logits, z, yb)
        if not torch.isfinite(loss):
            raise UserError(f"{where} (loss {float(loss)}); lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach().double() * len(idx)
        hit_sum += (logits.detach().argmax(1) == yb).sum()
        seen += len(idx)
    return float(loss_sum) / seen, float(hit_sum) / seen


@pytest.mark.parametrize("name", ["linear-augmented", "binary-exp"])
def test_one_process_trains_bit_for_bit_as_before(
    single, name: str, one_process: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(loop, "_epoch", old_epoch)
    model, history = loop.train_model(recipe(name), digits(name), torch.device("cpu"))
    state, now = single[name]
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in history]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in now] == strip
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_batch_mean_is_the_mean_in_one_process(one_process: None):
    x = torch.randn(7, 3, requires_grad=True)
    assert torch.equal(rd.batch_mean(x), x.mean())


def test_loss_share_of_an_empty_slice_is_a_zero_that_back_propagates():
    logits = torch.zeros(0, 3, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(logits, torch.zeros(0, dtype=torch.long))
    assert loss.isnan()
    mine = parallel.loss_share(loss, 0, 2)
    mine.backward()
    assert mine.item() == 0 and logits.grad is not None and logits.grad.shape == (0, 3)
    whole = torch.tensor(2.5, requires_grad=True)
    assert parallel.loss_share(whole, 4, 4) is whole and parallel.loss_share(whole, 1, 4).item() == 2.5 / 4


@pytest.mark.slow  # a torchrun launch
def test_torchrun_trains_a_recipe_file_with_one_checkpoint(tmp_path: Path):
    """The CLI under real torchrun: `robustcollapse train RECIPE` on 2 ranks, one checkpoint, one set of lines."""
    (tmp_path / "recipe.yaml").write_text(
        "dataset: digits\nbackbone: {name: mlp, hidden: 16, depth: 1}\nhead: linear\nepochs: 2\nbatch_size: 64\n"
    )
    rdzv = f"--rdzv-endpoint=127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--rdzv-backend=c10d", rdzv]
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env |= {"PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    run = [*cmd, "-m", "robustcollapse", "train", "recipe.yaml", "--device", "cpu"]
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    weights = tmp_path / "results/models/digits-mlp-linear-s0.safetensors"
    assert len(read_sidecar(weights)["history"]) == 2
    assert done.stdout.count("checkpoint:") == 1 and done.stdout.count("epoch 2/2") == 1, done.stdout
