"""robustcollapse.distributed on real process groups: two gloo ranks on the CPU, started from pytest.

Each rank gets the environment torchrun would give it (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT on a
free local port) and calls `setup`, so the env:// path the CLI will use is the one tested. The ranks run every
collective once in one spawn and save what they got; the tests compare that with what one process computes. One
more test starts real `torchrun` on a small script. Nothing here needs more than the CPU.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from robustcollapse import distributed as rd
from robustcollapse.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", rd.TIMEOUT_ENV)
# per-example blocks of each rank, as the runner would produce them: uneven, and one rank with nothing at all
SPLITS = {"3+2": (3, 2), "0+5": (0, 5), "5+0": (5, 0)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def full(n: int, dtype: torch.dtype) -> torch.Tensor:
    """The single-process tensor of n examples: rows differ, so an order or padding mistake shows."""
    values = torch.arange(n * 6, dtype=torch.float64).reshape(n, 2, 3) * 1.25 - 7
    return values.to(torch.int64) % 2 == 0 if dtype == torch.bool else values.to(dtype)


def join_as(rank: int, size: int, port: int, timeout_s: float | None = None) -> None:
    """Give this process the environment torchrun gives rank `rank`, then join the group through `setup`."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    if timeout_s is not None:
        os.environ[rd.TIMEOUT_ENV] = str(timeout_s)
    torch.set_num_threads(1)
    assert rd.setup(torch.device("cpu")) == torch.device("cpu")


def collectives(rank: int, port: int, out: str) -> None:
    """Rank `rank` of 2: every collective once, results saved to out/rank{rank}.pt."""
    join_as(rank, 2, port)
    got: dict[str, object] = {"world": rd.world(), "is_main": rd.is_main()}
    for name, sizes in SPLITS.items():
        start = sum(sizes[:rank])
        for dtype in (torch.float32, torch.int64, torch.bool):
            mine = full(sum(sizes), dtype)[start : start + sizes[rank]]
            got[f"gather/{name}/{dtype}"] = rd.gather(mine)
    block = rd.share(11)
    got["gather/share"] = rd.gather(torch.arange(11)[block.start : block.stop])
    got["all_sum"] = rd.all_sum(torch.tensor([1.5, 2.0]) * (rank + 1))
    got["all_sum/int64"] = rd.all_sum(torch.tensor([3, 4], dtype=torch.int64) * (rank + 1))
    strided = torch.arange(6.0).reshape(2, 3).T  # not contiguous: summed through a copy, written back in place
    got["all_sum/strided"] = (rd.all_sum(strided) is strided, strided.clone())
    got["broadcast"] = rd.broadcast_object({"from": rank, "data": [1, 2]})
    try:
        rd.gather(torch.zeros(2, 3 + rank))
    except ValueError as exc:
        got["mismatch"] = str(exc)
    rd.barrier()
    rd.teardown()
    torch.save(got, Path(out) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(collectives, args=(free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.bool], ids=str)
@pytest.mark.parametrize("split", SPLITS)
def test_gather_of_uneven_blocks_is_the_single_process_tensor(ranks: list[dict], split: str, dtype: torch.dtype):
    expected = full(sum(SPLITS[split]), dtype)
    for got in ranks:
        result = got[f"gather/{split}/{dtype}"]
        assert result.dtype == dtype and result.shape == expected.shape
        assert torch.equal(result, expected)


def test_gather_of_shared_blocks_restores_range(ranks: list[dict]):
    for got in ranks:
        assert got["gather/share"].tolist() == list(range(11))


def test_all_sum_and_broadcast(ranks: list[dict]):
    for got in ranks:
        assert got["all_sum"].tolist() == [1.5 * 3, 2.0 * 3]
        assert got["all_sum/int64"].tolist() == [9, 12]
        in_place, strided = got["all_sum/strided"]
        assert in_place and torch.equal(strided, 2 * torch.arange(6.0).reshape(2, 3).T)
        assert got["broadcast"] == {"from": 0, "data": [1, 2]}


def test_each_rank_knows_its_place_and_only_rank_0_is_main(ranks: list[dict]):
    assert [got["world"] for got in ranks] == [rd.World(0, 2, 0), rd.World(1, 2, 1)]
    assert [got["is_main"] for got in ranks] == [True, False]


def test_gather_refuses_blocks_of_different_trailing_shape_on_every_rank(ranks: list[dict]):
    for got in ranks:
        assert "ranks disagree" in got["mismatch"] and "[2, 3]" in got["mismatch"] and "[2, 4]" in got["mismatch"]


def meet(out: str, rank: int, size: int = 2) -> None:
    """Wait until every rank is up (its imports done), so that a short timeout times the collective, not a start
    delayed by a busy machine."""
    Path(out, f"up{rank}").touch()
    deadline = time.monotonic() + 120
    while not all(Path(out, f"up{r}").exists() for r in range(size)):
        assert time.monotonic() < deadline, "the other rank never started"
        time.sleep(0.01)


def lose_peer(rank: int, port: int, out: str, how: str) -> None:
    """Rank 1 vanishes (exits, or stays alive but never calls) before a gather; rank 0 records what it saw."""
    meet(out, rank)
    join_as(rank, 2, port, timeout_s=2)
    rd.barrier()
    if rank == 1:
        if how == "silent":
            time.sleep(4)
        os._exit(0)
    start = time.monotonic()
    try:
        rd.gather(torch.ones(3))
        message = "no error"
    except UserError as exc:
        message = str(exc)
    Path(out, "rank0.json").write_text(json.dumps({"message": message, "seconds": time.monotonic() - start}))
    os._exit(0)  # the group is broken: leave without the collective clean-up that would wait for the peer


@pytest.mark.slow  # waits out a rendezvous timeout
@pytest.mark.parametrize("how", ["exits", "silent"])
def test_a_lost_peer_is_one_line_not_a_hang(tmp_path: Path, how: str):
    mp.spawn(lose_peer, args=(free_port(), str(tmp_path), how), nprocs=2, join=True)
    seen = json.loads((tmp_path / "rank0.json").read_text())
    assert seen["message"].startswith("rank 0 of 2: peer lost during gather")
    assert seen["message"].endswith("re-run to resume") and "\n" not in seen["message"]
    assert seen["seconds"] < 3.5  # the 2 s timeout (a closed socket fails at once), not forever


def test_a_rank_that_never_comes_is_one_line(one_process: None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv(rd.TIMEOUT_ENV, "1")
    with pytest.raises(UserError, match="rank 0 of 2: could not join the 2 processes at .* within 1 s") as caught:
        rd.setup(torch.device("cpu"))  # MASTER_ADDR unset: torch's ValueError, one line
    assert "MASTER_ADDR" in str(caught.value)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    start = time.monotonic()
    with pytest.raises(UserError, match="rank 0 of 2: could not join the 2 processes at 127.0.0.1:"):
        rd.setup(torch.device("cpu"))  # rank 1 never starts: the store's wait times out
    assert time.monotonic() - start < 10 and not torch.distributed.is_initialized()


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 16])
@pytest.mark.parametrize("n", [0, 1, 5, 16, 17, 100, 1001])
def test_share_covers_range_once_in_order_and_balanced(n: int, size: int):
    blocks = [rd.share(n, rd.World(rank, size, rank)) for rank in range(size)]
    assert [i for block in blocks for i in block] == list(range(n))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    assert all(block.step == 1 for block in blocks)


@pytest.fixture
def one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)


def test_a_single_process_is_the_identity(one_process: None):
    t = torch.arange(5.0)
    assert rd.world() == rd.World(0, 1, 0) and rd.is_main()
    assert rd.setup(torch.device("cpu")) == torch.device("cpu")
    assert rd.gather(t) is t and rd.all_sum(t) is t and t.tolist() == [0, 1, 2, 3, 4]
    assert rd.broadcast_object({"a": 1}) == {"a": 1}
    assert rd.share(7) == range(7)
    rd.barrier()
    rd.teardown()


def test_collectives_before_setup_under_torchrun_refuse(one_process: None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert not rd.is_main() and rd.share(5) == range(3, 5)
    with pytest.raises(RuntimeError, match="setup"):
        rd.gather(torch.ones(1))


def test_setup_refuses_more_local_ranks_than_gpus(one_process: None, monkeypatch: pytest.MonkeyPatch):
    count = torch.cuda.device_count()
    monkeypatch.setenv("WORLD_SIZE", str(max(2, count + 1)))
    monkeypatch.setenv("RANK", str(count))
    monkeypatch.setenv("LOCAL_RANK", str(count))
    with pytest.raises(UserError, match=f"LOCAL_RANK {count} but this node has {count} CUDA device"):
        rd.setup(torch.device("cuda"))


@pytest.mark.parametrize("raw", ["soon", "0", "-5"])
def test_a_bad_timeout_is_one_line(monkeypatch: pytest.MonkeyPatch, raw: str):
    monkeypatch.setenv(rd.TIMEOUT_ENV, raw)
    with pytest.raises(UserError, match=rd.TIMEOUT_ENV):
        rd.timeout()


def test_bad_torchrun_environment_is_one_line():
    with pytest.raises(UserError, match="RANK=2, WORLD_SIZE=2"):
        rd.World.from_env({"RANK": "2", "WORLD_SIZE": "2"})
    assert rd.World.from_env({}) == rd.World(0, 1, 0)


SCRIPT = """
import json, sys, torch
from robustcollapse import distributed as rd
device = rd.setup(torch.device("cpu"))
me = rd.world()
block = rd.share(10)
scores = rd.gather(torch.arange(10.0)[block.start : block.stop] ** 2)
hits = rd.all_sum(torch.tensor([len(block)]))
if rd.is_main():
    json.dump({"size": me.size, "scores": scores.tolist(), "hits": int(hits)}, open(sys.argv[1], "w"))
rd.teardown()
"""


@pytest.mark.slow  # a torchrun launch
def test_torchrun_env_rendezvous(tmp_path: Path):
    script, out = tmp_path / "job.py", tmp_path / "out.json"
    script.write_text(SCRIPT)
    rdzv = f"--rdzv-endpoint=127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--rdzv-backend=c10d", rdzv]
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env |= {"PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(
            [*cmd, str(script), str(out)], env=env, capture_output=True, text=True, timeout=90, cwd=tmp_path
        )
    except subprocess.TimeoutExpired:
        pytest.skip("torchrun did not finish in 90 s here (no local rendezvous?)")
    if done.returncode != 0 and "rendezvous" in done.stderr.lower() and not out.exists():
        pytest.skip(f"torchrun cannot start here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(out.read_text()) == {"size": 2, "scores": [float(i * i) for i in range(10)], "hits": 10}
