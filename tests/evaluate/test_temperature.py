"""Post-hoc temperature scaling through a suite: fitted on a validation split the training never saw, reported
raw and scaled by every test that reports calibration, recorded in the document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import robustcollapse.training.loop as train_module
from robustcollapse.cli import main
from robustcollapse.data import load_dataset
from robustcollapse.metrics.calibration import fit_temperature
from robustcollapse.models.checkpoint import load_checkpoint

SUITE = """\
name: t
dataset: digits
calibration: {temperature: true, val_fraction: 0.2}
models:
  - name: m
    train: {backbone: {name: mlp, hidden: 32, depth: 1}, head: linear, epochs: 4, batch_size: 64, lr: 0.01}
tests:
  - kind: clean
  - kind: corruption
    corruptions: [gaussian_noise, contrast]
    severities: [1, 5]
    n_examples: 100
"""


def test_temperature_is_fitted_on_a_held_out_split_and_reported_raw_and_scaled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t.yaml").write_text(SUITE)
    seen = {}
    real_train_model = train_module.train_model

    def spy(recipe, data, device, console=None, train=None):
        seen["train"] = train
        return real_train_model(recipe, data, device, console, train)

    monkeypatch.setattr(train_module, "train_model", spy)
    result = CliRunner().invoke(main, ["eval", "t.yaml", "--device", "cpu"])
    assert result.exit_code == 0, result.output

    digits = load_dataset("digits")
    model, side = load_checkpoint(Path("results/models/t-m.safetensors"))
    held = side["validation"]["indices"]
    assert side["validation"]["n"] == len(held) == round(0.2 * len(digits.train))
    kept = torch.ones(len(digits.train), dtype=torch.bool)
    kept[held] = False
    assert torch.equal(seen["train"].x, digits.train.x[kept])  # training never saw the validation images
    with torch.inference_mode():
        val_logits = model(digits.train.x[held].float() / 255)
    assert side["temperature"] == pytest.approx(fit_temperature(val_logits, digits.train.y[held]), rel=1e-6)

    doc = json.loads(Path("results/t.json").read_text())
    metrics = doc["metrics"]["m"]
    assert doc["models"]["m"]["temperature"]["value"] == metrics["cal/temperature"] == side["temperature"]
    assert "validation split held out of training" in doc["models"]["m"]["temperature"]["fitted_on"]
    with torch.inference_mode():
        test_logits = model(digits.test.x.float() / 255)
    from robustcollapse.metrics.calibration import calibration_report

    scaled = calibration_report(test_logits / side["temperature"], digits.test.y)
    assert metrics["cal/ts/ece"] == pytest.approx(scaled["ece"], abs=1e-6)
    assert metrics["clean/ts/nll"] == pytest.approx(scaled["nll"], abs=1e-6)
    for key in ("shift/gaussian_noise/5/ts/ece", "shift/contrast/1/ts/nll", "shift/mean/ts/ece"):
        assert 0 <= metrics[key] < 10, key
    assert "ECE, scaled" in result.output


def test_an_overconfident_model_from_elsewhere_is_fitted_on_the_training_split(tmp_path, monkeypatch):
    """A module trained elsewhere, made over-confident on purpose (logits x 8): T > 1 and the scaled ECE is lower."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    Path("boast.py").write_text(
        "import torch\nfrom torch import nn\n\n\nclass Boast(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU())\n"
        "        self.fc = nn.Linear(32, 10)\n\n"
        "    def forward(self, x):\n        return 8 * self.fc(self.net(x))\n"
    )
    import boast

    torch.manual_seed(0)
    net = boast.Boast()
    digits = load_dataset("digits")
    x, y = digits.train.x.float() / 255, digits.train.y
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x) / 8, y).backward()
        optimiser.step()
    torch.save(net.state_dict(), "boast.pt")
    Path("b.yaml").write_text(
        "name: b\ndataset: digits\ncalibration: {temperature: true}\nmodels:\n"
        "  - name: b\n    module: boast:Boast\n    weights: boast.pt\n    features: fc\ntests:\n  - kind: clean\n"
    )
    result = CliRunner().invoke(main, ["eval", "b.yaml", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    doc = json.loads(Path("results/b.json").read_text())
    metrics = doc["metrics"]["b"]
    assert metrics["cal/temperature"] > 1 and metrics["cal/ts/ece"] < metrics["cal/ece"]
    assert metrics["clean/ts/nll"] < metrics["clean/nll"]
    assert "training split" in doc["models"]["b"]["temperature"]["fitted_on"]
    assert doc["models"]["b"]["temperature"]["n"] == round(0.1 * len(digits.train))
