"""OOD detectors on synthetic features with known structure, the sign convention, and the suite path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from robustcollapse import registry
from robustcollapse.cli import main
from robustcollapse.data import hold_out, load_dataset
from robustcollapse.metrics.ood import ood_report
from robustcollapse.models.forward import Pass
from robustcollapse.ood import DetectorOptions, fit_shape, make_detector

DETECTORS = ["msp", "maxlogit", "energy", "odin", "mahalanobis", "knn", "vim", "hypercube"]


class FeatureModel(nn.Module):
    """The 'image' is the feature vector; a linear classifier on it gives the logits."""

    def __init__(self, codes: torch.Tensor) -> None:
        super().__init__()
        self.fc = nn.Linear(codes.shape[1], codes.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(codes)
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(x)

    def forward_all(self, x):
        return x, self.fc(x)

    def classifier_layer(self):
        return self.fc


@pytest.fixture(scope="module")
def synthetic():
    gen = torch.Generator().manual_seed(0)
    k, d, n = 4, 8, 200
    codes = torch.tensor(
        [
            [1, 1, 1, 1, -1, -1, -1, -1],
            [1, -1, 1, -1, 1, -1, 1, -1],
            [-1, -1, 1, 1, 1, 1, -1, -1],
            [-1, 1, -1, 1, -1, 1, 1, -1],
        ],
        dtype=torch.float32,
    )
    model = FeatureModel(codes).eval()

    def sample(count):
        y = torch.arange(count) % k
        return 3 * codes[y] + 0.3 * torch.randn(count, d, generator=gen), y

    train_x, train_y = sample(4 * n)
    id_x, id_y = sample(n)
    ood_x = torch.randn(n, d, generator=gen)  # around the global mean: far from every class
    with torch.no_grad():
        passes = [Pass(x, model(x), y) for x, y in ((train_x, train_y), (id_x, id_y), (ood_x, -torch.ones(n)))]
    return model, passes, (id_x, ood_x)


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_separates_far_points_and_keeps_the_sign_convention(synthetic, name):
    model, (train, id_pass, ood_pass), (id_x, ood_x) = synthetic
    det = make_detector(name, DetectorOptions(knn_k=10))
    det.fit(train, model, 4)
    id_scores, ood_scores = det.score(id_pass, id_x, model), det.score(ood_pass, ood_x, model)
    forward = ood_report(id_scores, ood_scores)["auroc"]
    assert forward > 0.95, (name, forward)
    assert ood_report(ood_scores, id_scores)["auroc"] == pytest.approx(1 - forward)


def test_hypercube_distance_is_zero_on_the_codes(synthetic):
    model, (train, _, _), _ = synthetic
    det = make_detector("hypercube", DetectorOptions())
    det.fit(train, model, 4)
    vertices = det.centre + det.codes * det.scale
    scores = det.score(Pass(vertices.float(), model(vertices.float()), torch.arange(4)), None, model)
    assert torch.allclose(scores, torch.zeros(4, dtype=torch.float64), atol=1e-5)


def test_fit_shape_resizes_and_converts_channels():
    rgb = torch.rand(2, 3, 16, 16)
    grey = fit_shape(rgb, (1, 28, 28))
    assert grey.shape == (2, 1, 28, 28) and 0 <= float(grey.min()) and float(grey.max()) <= 1
    assert fit_shape(torch.full((1, 1, 8, 8), 0.5), (3, 32, 32)).shape == (1, 3, 32, 32)
    assert torch.allclose(fit_shape(torch.ones(1, 3, 4, 4), (1, 4, 4)), torch.ones(1, 1, 4, 4))


def test_hold_out_removes_and_renumbers_classes():
    data = load_dataset("digits")
    kept, held = hold_out(data, [7, 8, 9])
    assert kept.num_classes == 7 and kept.classes == [str(i) for i in range(7)]
    assert int(kept.train.y.max()) == 6 and set(held.y.tolist()) == {7, 8, 9}
    assert len(kept.test) + len(held) == len(data.test)
    kept2, _ = hold_out(data, [0])
    assert torch.equal(kept2.train.y, data.train.y[data.train.y != 0] - 1)


def test_ood_suite_with_heldout_classes(workdir):
    Path("o.yaml").write_text("""\
name: o
dataset: digits
heldout: [7, 8, 9]
models:
  - name: binary
    train:
      backbone: {name: mlp, hidden: 64}
      head: {name: binary, d: 6}
      epochs: 6
      batch_size: 64
      lr: 0.003
tests:
  - kind: ood
    sets: [gaussian_noise, textures, heldout, mnist5k]
    detectors: [msp, energy, mahalanobis, hypercube]
    n_examples: 100
    knn_k: 5
""")
    result = CliRunner().invoke(main, ["eval", "o.yaml", "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ood — binary: AUROC (top) and FPR@95TPR" in result.output
    doc = json.loads(Path("results/o.json").read_text())
    metrics = doc["metrics"]["binary"]
    assert doc["models"]["binary"]["recipe"]["heldout"] == [7, 8, 9]
    assert doc["details"]["binary"]["ood"]["groups"] == {
        "near": ["heldout", "mnist5k"],
        "far": ["gaussian_noise", "textures"],
    }
    for s in ("gaussian_noise", "textures", "heldout", "mnist5k"):
        for det in ("msp", "energy", "mahalanobis", "hypercube"):
            for metric in ("auroc", "aupr_in", "aupr_out", "fpr95"):
                assert 0.0 <= metrics[f"ood/{s}/{det}/{metric}"] <= 1.0
    assert metrics["ood/near/msp/auroc"] == pytest.approx(
        (metrics["ood/heldout/msp/auroc"] + metrics["ood/mnist5k/msp/auroc"]) / 2
    )
    assert doc["details"]["binary"]["ood"]["n_ood"]["heldout"] == 100
    # the held-out model was trained on 7 classes
    assert len(doc["models"]["binary"]["model"]["mean"]) == 1 and doc["models"]["binary"]["model"]["num_classes"] == 7


def test_ood_entry_validation(tmp_path):
    from robustcollapse.config import ConfigError, load_suite
    from tests.test_config import GOOD, write

    base = GOOD.replace("  - kind: clean\n", "  - kind: ood\n    sets: [gaussian_noise]\n")
    assert load_suite(write(tmp_path, base)).test_entries()[0].detectors == DETECTORS
    with pytest.raises(ConfigError, match=r"tests\[0\]\.sets: unknown ood_set 'gausian_noise' \(did you mean"):
        load_suite(write(tmp_path, base.replace("[gaussian_noise]", "[gausian_noise]")))
    with pytest.raises(ConfigError, match=r"unknown detector 'energie'"):
        load_suite(
            write(tmp_path, base.replace("sets: [gaussian_noise]", "sets: [gaussian_noise]\n    detectors: [energie]"))
        )
    assert sorted(registry.names("detector")) == sorted(DETECTORS)
