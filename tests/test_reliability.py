"""What the runner guarantees besides resuming: the sidecar must describe the suite's data, one writer per output,
clamps said out loud in the document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from robustcollapse.cli import main
from robustcollapse.config import ModelEntry
from robustcollapse.data import load_dataset
from robustcollapse.errors import UserError
from robustcollapse.io import exclusive
from robustcollapse.models.zoo import check_trained_on

SUITE = """\
name: s
dataset: digits
models:
  - name: m
    train: {backbone: {name: mlp, hidden: 16, depth: 1}, head: linear, epochs: 1, batch_size: 128}
tests:
"""


def sidecar(**changes) -> dict:
    data = load_dataset("digits")
    meta = {
        "dataset": "digits",
        "classes": list(data.classes),
        "model": {"in_channels": 1, "image_size": 8, "classes": list(data.classes)},
    }
    meta.update(changes)
    return meta


def test_the_sidecar_must_describe_the_evaluated_data():
    data = load_dataset("digits")
    entry = ModelEntry(name="m", checkpoint="m.safetensors")
    check_trained_on(sidecar(), data, entry, Path("m.safetensors"))  # the same data: fine
    with pytest.raises(UserError, match="trained on digits-copy .* set `other_dataset: true`"):
        check_trained_on(sidecar(dataset="digits-copy"), data, entry, Path("m.safetensors"))
    allowed = ModelEntry(name="m", checkpoint="m.safetensors", other_dataset=True)
    check_trained_on(sidecar(dataset="digits-copy"), data, allowed, Path("m.safetensors"))  # the user's opt-out
    for changed, reason in (
        ({"classes": [*data.classes[1:], data.classes[0]]}, "the classes differ"),
        ({"classes": ["0+1", "2+3", "4+5", "6+7", "8+9"]}, "the classes differ"),  # a coarse-label model
        ({"model": {"in_channels": 3, "image_size": 8}}, "the image shapes differ"),
    ):
        for entry_ in (entry, allowed):  # the opt-out never covers other classes or shapes
            with pytest.raises(UserError, match=reason):
                check_trained_on(sidecar(**changed), data, entry_, Path("m.safetensors"))


def test_a_second_run_on_the_same_output_stops_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(SUITE + "  - kind: clean\n")
    with exclusive(tmp_path / "results" / "s.json"):
        result = CliRunner().invoke(main, ["eval", "s.yaml", "--device", "cpu"])
    assert result.exit_code == 2 and "results/s.json: another robustcollapse run is writing it" in result.stderr
    assert not (tmp_path / "results" / "models").exists()  # nothing was trained


def test_clamped_detector_arguments_are_warnings_in_the_document(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ood = "  - kind: ood\n    sets: [gaussian_noise]\n    detectors: [knn, vim]\n    knn_k: 100000\n    vim_dim: 16\n"
    (tmp_path / "s.yaml").write_text(SUITE + ood)
    result = CliRunner().invoke(main, ["eval", "s.yaml", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "results" / "s.json").read_text())
    n_train = len(load_dataset("digits").train)
    assert doc["warnings"] == [
        f"m / ood: knn_k 100000 > the {n_train} training features: KNN uses k = {n_train}",
        "m / ood: vim_dim 16 >= the feature dimension 16: ViM has no residual space and scores as Energy",
    ]
    assert "warning: m / ood: knn_k 100000" in result.output
    assert torch.isfinite(torch.tensor(doc["metrics"]["m"]["ood/gaussian_noise/knn/auroc"]))
