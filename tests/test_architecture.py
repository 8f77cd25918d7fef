"""The house rules (README "Architecture"), checked on the source: every module imports on its own, the import
layers hold (import-linter, as `nox -s lint` runs it), and no module or function outgrows its room."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "robustcollapse"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50


def modules() -> list[str]:
    """Every module of the package (`__main__` is run, not imported)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


# Each module is imported in a child forked from an interpreter that holds the heavy third-party libraries but no
# robustcollapse module, so a module that only imports through a cycle or an import-order accident fails here.
IMPORT_ALONE = """
import os, sys, importlib
import numpy, scipy.io, scipy.optimize, scipy.stats, sklearn.cluster, sklearn.datasets, sklearn.metrics
import sklearn.mixture, sklearn.model_selection, torch, torchvision, torchattacks, pydantic, rich.progress, click
import yaml, safetensors.torch, PIL.Image, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as exc:
            print(f"{name}: {type(exc).__name__}: {exc}", flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print("FAILED", *failed)
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow  # a fresh interpreter per module
@pytest.mark.skipif(sys.platform == "win32", reason="needs os.fork")
def test_every_module_imports_alone():
    names = modules()
    assert "robustcollapse.ood.detectors" in names and len(names) > 60
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALONE, *names], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # the slow check's own machinery: an interpreter holding torch and the rest
def test_a_module_that_needs_an_import_cycle_is_caught(tmp_path):
    """The check above sees a circular import: two throwaway modules importing each other's names fail."""
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyc.b import B\nA = 1\n")
    (pkg / "b.py").write_text("from cyc.a import A\nB = 2\n")
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALONE, "cyc.a"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1 and "cyc.a: ImportError" in result.stdout


def test_import_layers_hold():
    pytest.importorskip("importlinter", reason="import-linter is not installed")
    lint = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    result = subprocess.run(
        [sys.executable, "-c", lint, str(PACKAGE.parent / "pyproject.toml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=PACKAGE.parent,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout


def oversized(source: str, path: str) -> list[str]:
    """'path: N lines' for a module over the limit and 'path:line name: N lines' for each function over it."""
    found = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{path}: {lines} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_module_or_function_outgrows_its_room():
    found = [f for p in sorted(PACKAGE.rglob("*.py")) for f in oversized(p.read_text(), str(p.relative_to(PACKAGE)))]
    assert not found, "\n".join(found)


def test_the_size_check_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert oversized(f"def f():\n{body}\n", "m.py") == [f"m.py:1 f: {MAX_FUNCTION_LINES + 1} lines"]
    assert oversized("x = 1\n" * (MAX_MODULE_LINES + 1), "m.py") == [f"m.py: {MAX_MODULE_LINES + 1} lines"]


STARTUP_SUITE = """\
name: s
dataset: digits
models:
  - name: a
    train: {backbone: {name: mlp, hidden: 8}, head: linear, epochs: 1}
tests:
  - kind: clean
  - kind: attack
    attacks: [fgsm]
    eps: [0.1]
    n_examples: 20
"""
STARTUP = """
import sys
from robustcollapse.cli import main
main(["eval", "suites/s.yaml", "--device", "cpu", "--quiet", "--json", "s.json"], standalone_mode=False)
print("IMPORTED", *sorted(m for m in ("torchvision", "timm", "robustbench") if m in sys.modules))
"""


@pytest.mark.slow  # a suite run in a fresh interpreter
def test_a_suite_without_torchvision_models_never_imports_torchvision(tmp_path):
    """torchvision costs every process 1.5 s of start-up (a third of a small run, and of every subprocess test): it is
    imported only where a ResNet, a `torchvision:` model, an on-disk download or JPEG coding needs it. The document
    still records its installed version."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "s.yaml").write_text(STARTUP_SUITE)
    result = subprocess.run(
        [sys.executable, "-c", STARTUP], capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "IMPORTED"
    env = json.loads((tmp_path / "s.json").read_text())["env"]
    assert env["torchvision"] == importlib.metadata.version("torchvision")
