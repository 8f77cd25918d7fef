"""Shared fixtures: a working directory holding the smoke suite, run once per session."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import robustcollapse.evaluate  # noqa: F401  (registers every plug-in, as the CLI and the API do)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # under `pytest -n N` each worker is one process of N: one torch thread each keeps the cores from being
    # oversubscribed (N workers x all-core intra-op pools thrash a 2-core CI machine)
    torch.set_num_threads(1)
    # and so is every process a test starts (a suite run, torchrun's ranks): with its own 2-thread pool beside the
    # other worker it would spin on a core that is not free
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # xdist starts its workers with COLUMNS=80; a rich Console made at import (the CLI's) would freeze that
    # width, and the tests that pass COLUMNS to one invocation would not get it
    os.environ.pop("COLUMNS", None)

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "suites"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests are marked `gpu` and skipped on machines without CUDA. (The slow tests are left where they are:
    xdist's work stealing hands each worker a contiguous share of the list, so gathering them at the front would
    queue them all on one worker.)"""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory with suites/ copied in (results/ is written relative to it)."""
    shutil.copytree(SUITES, tmp_path / "suites")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@dataclass(frozen=True)
class SmokeRun:
    """`robustcollapse eval suites/smoke.yaml` run in a fresh folder: the folder (suites/, results/smoke.json, the
    trained checkpoints) and what eval printed, 200 columns wide. The folder is shared: a test that writes copies it
    (`copy_to`)."""

    folder: Path
    output: str

    @property
    def doc(self) -> dict[str, Any]:
        """The document, read afresh (each caller may change its own)."""
        return json.loads((self.folder / "results" / "smoke.json").read_text())

    def copy_to(self, where: Path) -> Path:
        shutil.copytree(self.folder, where, dirs_exist_ok=True)
        return where


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """The smoke suite trained and evaluated once per test process, for every test that reads a real document, its
    tables or its checkpoints (each run is 5-10 s of a 2-core machine)."""
    from robustcollapse.cli import main  # not at the top: its console must not see xdist's COLUMNS (above)

    work = tmp_path_factory.mktemp("smoke")
    shutil.copytree(SUITES, work / "suites")
    old = Path.cwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(main, ["eval", "suites/smoke.yaml", "--device", "cpu"], env={"COLUMNS": "200"})
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return SmokeRun(work, result.output)
