"""An interrupted suite keeps what finished (exit 130) beside, never over, a complete document; a rerun resumes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from robustcollapse import registry
from robustcollapse.cli import main
from robustcollapse.io import atomic_write_bytes


def test_interrupt_keeps_finished_results_and_rerun_resumes(workdir, monkeypatch):
    collapse = registry.get("test", "collapse")
    real_run = collapse.run
    calls = {"n": 0}

    def interrupted(ctx, params):
        calls["n"] += 1
        raise KeyboardInterrupt

    monkeypatch.setattr(collapse, "run", staticmethod(interrupted))
    first = CliRunner().invoke(main, ["eval", "suites/smoke.yaml", "--device", "cpu"])
    assert first.exit_code == 130
    assert "interrupted" in first.output and "rerun the same command to resume" in first.output
    assert "finished so far: results/smoke.interrupted.json" in first.output
    assert not Path("results/smoke.json").exists()  # only a complete run writes the document
    doc = json.loads(Path("results/smoke.interrupted.json").read_text())
    assert doc["status"] == "interrupted"
    assert "clean/acc" in doc["metrics"]["baseline"]  # the finished (baseline, clean) result is kept
    partial = json.loads(Path("results/smoke.json.partial").read_text())
    assert list(partial["results"]["baseline"]) == ["clean"]

    ran = []

    def counting(ctx, params):
        ran.append(params.kind)
        return real_run(ctx, params)

    monkeypatch.setattr(collapse, "run", staticmethod(counting))
    second = CliRunner().invoke(main, ["eval", "suites/smoke.yaml", "--device", "cpu"])
    assert second.exit_code == 0, second.output
    assert "✓ baseline / clean: finished earlier, skipped" in second.output
    assert ran == ["collapse", "collapse"]  # the baseline's clean test was not run again
    doc = json.loads(Path("results/smoke.json").read_text())
    assert doc["status"] == "complete" and "nc/nc1" in doc["metrics"]["binary"]
    assert doc["metrics"]["baseline"]["clean/acc"] == partial["results"]["baseline"]["clean"]["metrics"]["clean/acc"]
    assert not Path("results/smoke.json.partial").exists() and not Path("results/smoke.interrupted.json").exists()
    complete = Path("results/smoke.json").read_bytes()

    # Ctrl-C on a rerun of the completed suite (during training or between tests) leaves the complete document as it was
    monkeypatch.setattr(collapse, "run", staticmethod(interrupted))
    third = CliRunner().invoke(main, ["eval", "suites/smoke.yaml", "--device", "cpu"])
    assert third.exit_code == 130
    assert Path("results/smoke.json").read_bytes() == complete
    assert json.loads(Path("results/smoke.interrupted.json").read_text())["status"] == "interrupted"

    import robustcollapse.training.recipes as models

    def interrupted_training(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "train_to_checkpoint", interrupted_training)
    for ckpt in Path("results/models").glob("smoke-*"):
        ckpt.unlink()
    assert CliRunner().invoke(main, ["eval", "suites/smoke.yaml", "--device", "cpu"]).exit_code == 130
    assert Path("results/smoke.json").read_bytes() == complete


def test_changed_suite_does_not_reuse_partial_results(workdir, monkeypatch):
    collapse = registry.get("test", "collapse")
    real_run = collapse.run

    def interrupted(ctx, params):
        raise KeyboardInterrupt

    monkeypatch.setattr(collapse, "run", staticmethod(interrupted))
    assert CliRunner().invoke(main, ["eval", "suites/smoke.yaml", "--device", "cpu"]).exit_code == 130
    monkeypatch.setattr(collapse, "run", staticmethod(real_run))
    result = CliRunner().invoke(main, ["eval", "suites/smoke.yaml", "--device", "cpu", "--limit", "100"])
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.output


def test_atomic_write_replaces_whole_and_keeps_the_umask_permissions(tmp_path):
    """A crash mid-write leaves the old file intact; the new file is as readable as a plain open() would make it."""
    target = tmp_path / "r.json"
    atomic_write_bytes(target, b"old")

    old_umask = os.umask(0o022)
    try:
        atomic_write_bytes(target, b"new")
        assert target.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old_umask)
    with pytest.raises(TypeError):
        atomic_write_bytes(target, None)  # type: ignore[arg-type]  # write() fails after the temp file exists
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
