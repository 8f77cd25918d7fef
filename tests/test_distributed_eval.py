"""Data-parallel evaluation under torchrun (gloo, 2 CPU ranks): the document equals one process's, and a lost rank
fails the run with a clear message while the finished (model, test) pairs survive for the rerun."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from inprocess import cli
from same_document import differences

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")
LIMIT = ["--limit", "32"]
pytestmark = pytest.mark.slow  # torchrun processes evaluating whole suites


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    """One thread per process in both runs: the ranks then compute each batch exactly as one process does."""
    clean = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    return clean | {"PYTHONPATH": os.pathsep.join([str(ROOT), clean.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}


def torchrun(*args: str) -> list[str]:
    rdzv = f"--rdzv-endpoint=127.0.0.1:{free_port()}"
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--rdzv-backend=c10d", rdzv, *args]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the smoke suite and its two models trained (one process)."""
    folder = tmp_path_factory.mktemp("dist")
    shutil.copytree(ROOT / "suites", folder / "suites")
    done = cli(folder, "train", "suites/smoke.yaml", "--device", "cpu")
    assert done.exit_code == 0, done.output[-2000:]
    return folder


def test_two_ranks_write_the_document_one_process_writes(trained: Path):
    eval_args = ["eval", "suites/smoke.yaml", "--device", "cpu", "--quiet", *LIMIT]
    one = cli(trained, *eval_args, "--json", "one.json")  # one process: this one
    assert one.exit_code == 0, one.output[-2000:]
    two = run(torchrun("-m", "robustcollapse", *eval_args, "--json", "two.json"), trained)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (json.loads((trained / f).read_text()) for f in ("one.json", "two.json"))
    assert b["env"]["processes"] == 2 and a["env"]["processes"] == 1
    assert differences(a, b) == []  # every metric, detail and flag identical: each batch ran as in one process
    assert len(b["metrics"]["binary"]) > 100
    assert two.stdout.count("results: two.json") == 1, "rank 0 alone prints"


DIE = """
import os, sys
from robustcollapse import registry
from robustcollapse.cli import main
import robustcollapse.evaluate

kind = registry.get("test", "ood")
real = kind.run

def run(ctx, params):
    if os.environ.get("RANK") == "1":
        os._exit(7)  # this rank dies when the first OOD test starts
    return real(ctx, params)

kind.run = staticmethod(run)
sys.exit(main(sys.argv[1:]))
"""


def test_a_lost_rank_fails_the_run_and_the_rerun_resumes(trained: Path):
    (trained / "die.py").write_text(DIE)
    args = ["eval", "suites/smoke.yaml", "--device", "cpu", "--quiet", *LIMIT, "--json", "lost.json"]
    lost = run(torchrun("die.py", *args), trained)
    assert lost.returncode != 0
    assert "exitcode" in lost.stderr and ": 7" in lost.stderr.split("exitcode")[-1][:40], lost.stderr[-2000:]
    assert not (trained / "lost.json").exists(), "no complete document from a failed run"
    state = json.loads((trained / "lost.json.partial").read_text())
    assert sorted(state["results"]["baseline"]) == ["attack", "clean", "collapse"]
    rerun = cli(trained, *args)
    assert rerun.exit_code == 0, rerun.output[-2000:]
    for test in ("clean", "collapse", "attack"):
        assert f"baseline / {test}: finished earlier, skipped" in rerun.stdout
    assert json.loads((trained / "lost.json").read_text())["status"] == "complete"


def test_bf16_and_channels_last_are_recorded_and_move_the_numbers_little(trained: Path):
    base = ["eval", "suites/smoke.yaml", "--device", "cpu", "--quiet", *LIMIT, "--tests", "clean,collapse"]
    fp32 = cli(trained, *base, "--json", "fp32.json")
    bf16 = cli(trained, *base, "--bf16", "--channels-last", "--json", "bf16.json")
    assert fp32.exit_code == 0 and bf16.exit_code == 0, bf16.output[-2000:]
    a, b = (json.loads((trained / f).read_text()) for f in ("fp32.json", "bf16.json"))
    assert b["overrides"] == a["overrides"] | {"bf16": True, "channels_last": True}
    for model in a["metrics"]:
        assert abs(b["metrics"][model]["clean/acc"] - a["metrics"][model]["clean/acc"]) <= 1 / 32
        assert b["metrics"][model]["clean/nll"] != a["metrics"][model]["clean/nll"], "autocast did not take effect"
    gate = cli(trained, "compare", "fp32.json", "bf16.json")
    assert gate.exit_code == 1 and "other command-line overrides" in gate.stderr
