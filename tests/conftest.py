"""Shared fixtures: a working directory holding the smoke suite, run once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import robustcollapse.evaluate  # noqa: F401  (registers every plug-in, as the CLI and the API do)

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "suites"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests are marked `gpu` and skipped on machines without CUDA."""
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
