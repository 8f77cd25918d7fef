"""--epochs, --models and --tests: a heavy suite tried cheaply, recorded in the document, never gated against a
document made without them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from safetensors.torch import load_file

from robustcollapse.cli import main

SUITE = """\
name: o
dataset: digits
models:
  - name: a
    train: &recipe {backbone: {name: mlp, hidden: 16, depth: 1}, head: linear, epochs: 3, batch_size: 128}
  - name: b
    train:
      <<: *recipe
      head: {name: binary, d: 8}
tests:
  - kind: collapse
  - kind: collapse
    split: test
  - kind: clean
"""


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_overrides_select_cap_and_are_recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("o.yaml").write_text(SUITE)
    result = invoke(
        "eval", "o.yaml", "--device", "cpu", "--epochs", "1", "--models", "b", "--tests", "collapse#2,clean"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(Path("results/o.json").read_text())
    assert doc["overrides"] == {"epochs": 1, "models": ["b"], "tests": ["collapse#2", "clean"]}
    assert list(doc["metrics"]) == ["b"] and list(doc["timings"]["b"]) == ["collapse#2", "clean"]  # ids as in the suite
    assert len(doc["models"]["b"]["history"]) == 1  # one epoch trained
    assert doc["models"]["b"]["checkpoint"] == "results/models/o-b-epochs1.safetensors"  # apart from the full recipe's
    assert (
        not Path("results/models/o-b.safetensors").exists()
        and not Path("results/models/o-a-epochs1.safetensors").exists()
    )
    assert set(load_file("results/models/o-b-epochs1.safetensors"))  # a real checkpoint

    result = invoke(
        "eval", "o.yaml", "--device", "cpu", "--epochs", "1", "--models", "b", "--tests", "collapse", "--json", "k.json"
    )
    assert result.exit_code == 0, result.output
    assert list(json.loads(Path("k.json").read_text())["timings"]["b"]) == [
        "collapse",
        "collapse#2",
    ]  # a kind keeps all

    gate = invoke("compare", "results/o.json", "k.json")
    assert gate.exit_code == 1 and "made with other command-line overrides" in gate.stderr


def test_unknown_selections_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("o.yaml").write_text(SUITE)
    result = invoke("eval", "o.yaml", "--models", "c")
    assert result.exit_code == 2 and "error: --models: no model 'c' in o.yaml; models: a, b" in result.stderr
    result = invoke("eval", "o.yaml", "--tests", "ood")
    assert (
        result.exit_code == 2
        and "--tests: no test 'ood' in o.yaml; tests and kinds: clean, collapse, collapse#2" in result.stderr
    )
