"""Fault injection: kill a suite run (SIGINT, SIGTERM, SIGKILL) during training, between tests, while writing the
document and inside a checkpoint save, then rerun. The rerun's document equals an uninterrupted run's, nothing that
was recorded as finished is recomputed, no complete document is ever replaced, and no temporary file is left."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inprocess import cli

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "faults.py"
SUITE = """\
name: tiny
dataset: digits
seed: 0
batch_size: 512
models:
  - name: a
    train: &recipe
      backbone: {name: mlp, hidden: 32, depth: 1}
      head: linear
      epochs: 1
      batch_size: 64
      lr: 0.003
  - name: b
    train:
      <<: *recipe
      head: {name: binary, d: 8, lam: 10}
tests:
  - kind: clean
  - kind: collapse
    split: test
"""
EVAL = ["eval", "suites/tiny.yaml", "--device", "cpu"]
pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the write fault reads /proc/self/fd"),
    pytest.mark.slow,  # kills real runs with signals at each point and reruns them
]


def killed(cwd: Path, *args: str, fault: tuple[str, str]) -> subprocess.CompletedProcess:
    """The run in a process of its own, which the fault driver signals at the fault point."""
    cmd = [sys.executable, str(DRIVER), *fault, "--", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def folder(tmp_path: Path, name: str) -> Path:
    where = tmp_path / name
    (where / "suites").mkdir(parents=True)
    (where / "suites" / "tiny.yaml").write_text(SUITE)
    return where


def leftovers(where: Path) -> list[str]:
    return sorted(p.name for p in (where / "results").rglob("*") if p.suffix in (".tmp", ".pending", ".lock"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    where = folder(tmp_path_factory.mktemp("reference"), "run")
    done = cli(where, *EVAL)
    assert done.exit_code == 0, done.output
    return json.loads((where / "results" / "tiny.json").read_text())


def same_metrics(doc: dict, reference: dict) -> bool:
    if set(doc["metrics"]) != set(reference["metrics"]):
        return False
    for model, values in reference["metrics"].items():
        mine = doc["metrics"][model]
        if set(mine) != set(values):
            return False
        for key, value in values.items():
            if value is None or mine[key] is None:
                if value != mine[key]:
                    return False
            elif not math.isclose(mine[key], value, rel_tol=1e-9, abs_tol=1e-12):
                return False
    return True


SCENARIOS = [
    # (point, signal, (model, test) recorded before the fault, was model a's checkpoint kept)
    ("train", "INT", ["a / clean", "a / collapse"], True),
    ("test", "TERM", ["a / clean"], True),
    ("test", "KILL", ["a / clean"], True),
    ("write:tiny.json", "KILL", ["a / clean", "a / collapse", "b / clean", "b / collapse"], True),
    ("commit:tiny-a.json", "KILL", [], True),  # killed after the checkpoint's commit point: the save is finished
    ("commit:tiny-a.json.pending", "KILL", [], False),  # killed before it: the half save is discarded
]


@pytest.mark.parametrize(("point", "sig", "recorded", "kept"), SCENARIOS)
def test_killed_run_then_rerun_equals_an_uninterrupted_run(tmp_path, reference, point, sig, recorded, kept):
    where = folder(tmp_path, "run")
    stopped = killed(where, *EVAL, fault=(point, sig))
    assert stopped.returncode == (-9 if sig == "KILL" else 130), stopped.stderr
    assert not (where / "results" / "tiny.json").exists()  # no complete document from an incomplete run
    if sig != "KILL":
        assert "interrupted:" in stopped.stderr and "Traceback" not in stopped.stderr
    if point == "write:tiny.json" and sig == "KILL":
        assert [p for p in leftovers(where) if p.startswith(".tiny.json.")]  # what SIGKILL leaves behind
    if sig != "KILL" and not point.startswith("write:"):
        partial = json.loads((where / "results" / "tiny.interrupted.json").read_text())
        assert partial["status"] == "interrupted" and "clean/acc" in partial["metrics"]["a"]

    rerun = cli(where, *EVAL)
    assert rerun.exit_code == 0, rerun.output
    skipped = [line.split("✓ ", 1)[1].split(":")[0] for line in rerun.output.splitlines() if "finished earlier" in line]
    assert skipped == recorded  # what was recorded is not recomputed; everything else is
    assert ("training a" in rerun.output) == (not kept)
    if point == "commit:tiny-a.json":
        assert "an interrupted save was completed" in rerun.output
    if point == "commit:tiny-a.json.pending":
        assert "an interrupted save was discarded" in rerun.output
    doc = json.loads((where / "results" / "tiny.json").read_text())
    assert doc["status"] == "complete" and same_metrics(doc, reference)
    assert not (where / "results" / "tiny.interrupted.json").exists()
    assert not (where / "results" / "tiny.json.partial").exists()
    assert leftovers(where) == []


def test_an_interrupted_rerun_never_replaces_the_complete_document(tmp_path):
    where = folder(tmp_path, "run")
    assert cli(where, *EVAL).exit_code == 0
    complete = (where / "results" / "tiny.json").read_bytes()
    for point, sig in (("test", "INT"), ("train", "TERM"), ("write:tiny.json", "KILL")):
        for ckpt in (where / "results" / "models").iterdir():
            ckpt.unlink()  # so that the `train` fault point is reached again
        stopped = killed(where, *EVAL, fault=(point, sig))
        assert stopped.returncode == (-9 if sig == "KILL" else 130), (point, stopped.stderr)
        assert (where / "results" / "tiny.json").read_bytes() == complete, point
