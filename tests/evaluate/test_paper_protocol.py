"""The binary-encoding paper's protocol: l2 schedule, d: auto, reliability, DeepFool, convergence epoch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from robustcollapse import registry
from robustcollapse.cli import main
from robustcollapse.config import Recipe
from robustcollapse.data import load_dataset
from robustcollapse.evaluate.base import Context
from robustcollapse.evaluate.reliability import DeepFoolParams
from robustcollapse.metrics.reliability import aurc, class_gaussian_scores, misclassification_auroc
from robustcollapse.models.heads import auto_latent_dim, gamma_at
from robustcollapse.training.loop import train_model
from robustcollapse.training.tracking import convergence_epoch


def test_gamma_schedule_values():
    assert gamma_at(0, 0.01, 1.05, 1e6) == pytest.approx(0.01)
    assert gamma_at(10, 0.01, 1.05, 1e6) == pytest.approx(0.01 * 1.05**10)
    assert gamma_at(1000, 0.01, 1.05, 1e6) == 1e6  # capped


def test_auto_latent_dim_is_smallest_d_with_2_to_the_d_above_k():
    assert auto_latent_dim(10) == 4 and auto_latent_dim(100) == 7
    assert auto_latent_dim(16) == 5 and auto_latent_dim(15) == 4 and auto_latent_dim(2) == 2


def test_training_records_gamma_latent_dim_and_uses_the_l2_loss():
    data = load_dataset("digits")
    recipe = Recipe.model_validate(
        {
            "backbone": {"name": "mlp", "args": {"hidden": 32}},
            "head": {"name": "binary", "args": {"d": "auto", "penalty": "l2", "gamma0": 0.5, "gamma_growth": 2.0}},
            "epochs": 3,
            "batch_size": 128,
        }
    )
    model, history = train_model(recipe, data, torch.device("cpu"))
    assert model.head.latent_dim == 4
    assert [row["gamma"] for row in history] == [0.5, 1.0, 2.0]
    z = torch.ones(2, 4)
    logits = torch.zeros(2, 10)
    y = torch.tensor([0, 1])
    assert model.loss(logits, z, y).item() == pytest.approx(np.log(10) + 2.0 * 1.0, rel=1e-6)


def test_convergence_epoch():
    rows = [{"epoch": e, "train_acc": a} for e, a in [(1, 0.9), (2, 0.999), (3, 0.9995), (4, 1.0)]]
    assert convergence_epoch(rows) == 3
    assert convergence_epoch(rows[:2]) is None


def mann_whitney_auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return greater / (len(pos) * len(neg))


def test_misclassification_auroc_and_aurc_known_answers():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(300, generator=gen)
    wrong = torch.rand(300, generator=gen) < 0.2
    assert misclassification_auroc(scores, wrong) == pytest.approx(mann_whitney_auroc(scores.numpy(), wrong.numpy()))
    assert np.isnan(misclassification_auroc(scores, torch.zeros(300, dtype=torch.bool)))
    # perfect confidence ranking: 2 errors among 5, ranked last -> risks 0, 0, 0, 1/4, 2/5
    confidence = torch.tensor([0.9, 0.8, 0.7, 0.2, 0.1])
    correct = torch.tensor([True, True, True, False, False])
    assert aurc(confidence, correct) == pytest.approx((0 + 0 + 0 + 1 / 4 + 2 / 5) / 5)
    assert aurc(confidence, torch.ones(5, dtype=torch.bool)) == 0.0


def test_class_gaussian_scores_match_a_direct_computation():
    gen = torch.Generator().manual_seed(1)
    train_z = torch.randn(200, 3, generator=gen, dtype=torch.float64)
    train_pred = torch.arange(200) % 2
    train_correct = torch.rand(200, generator=gen) < 0.9
    z = torch.randn(10, 3, generator=gen, dtype=torch.float64)
    pred = torch.arange(10) % 2
    scores = class_gaussian_scores(train_z, train_pred, train_correct, z, pred, 2, ridge=0.0)
    for i in range(10):
        members = train_z[(train_pred == pred[i]) & train_correct].numpy()
        mean = members.mean(0)
        cov = np.cov(members.T, bias=True)
        diff = z[i].numpy() - mean
        assert float(scores[i]) == pytest.approx(diff @ np.linalg.solve(cov, diff))


class Linear3(nn.Module):
    """A linear 3-class model on 1x2x2 images: DeepFool's answer is the closed-form boundary distance."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0.5, 0.5]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_deepfool_relative_norm_equals_closed_form_on_a_linear_model():
    model = Linear3().eval()
    x = torch.tensor([[0.6, 0.4, 0.3, 0.3], [0.2, 0.7, 0.1, 0.2]]).view(2, 1, 2, 2)
    w = model.fc.weight.detach()
    data = type("D", (), {"num_classes": 3})()
    x_q = (x * 255).round().to(torch.uint8)  # the test kind reads uint8 images
    split = type("S", (), {"x": x_q, "y": model(x_q.float() / 255).argmax(1)})()
    x_q = x_q.float() / 255
    logits, y = model(x_q).detach(), split.y
    expected = []
    for i in range(2):  # one step reaches the nearest boundary: r = (|f'_k| + 1e-4) / ||w'_k|| along w'_k
        steps = [
            (abs(float(logits[i, k] - logits[i, y[i]])) + 1e-4) / float((w[k] - w[y[i]]).norm())
            for k in range(3)
            if k != y[i]
        ]
        expected.append(1.02 * min(steps) / float(x_q[i].norm()))
    ctx = Context(model, data, split, 8, 0)
    result = registry.get("test", "deepfool").run(ctx, DeepFoolParams(kind="deepfool", n_examples=2))
    assert result.metrics["deepfool/success"] == 1.0
    assert result.metrics["deepfool/rel_norm"] == pytest.approx(float(np.mean(expected)), rel=1e-4)


def test_five_head_suite_runs_and_reports_the_paper_metrics(workdir):
    text = Path("suites/smoke.yaml").read_text().split("tests:")[0]
    text = text.replace(
        """  - name: binary
    train:
      <<: *recipe
      head: {name: binary, d: 8, lam: 10}
""",
        """  - name: linear-pen
    train: {<<: *recipe, head: linear-pen}
  - name: binary-l2
    train: {<<: *recipe, head: {name: binary, d: auto, penalty: l2}}
""",
    )
    Path("p.yaml").write_text(
        text.replace("name: smoke", "name: p")
        + """tests:
  - kind: collapse
  - kind: reliability
  - kind: deepfool
    n_examples: 40
"""
    )
    result = CliRunner().invoke(main, ["eval", "p.yaml", "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(Path("results/p.json").read_text())
    for model in ("baseline", "linear-pen", "binary-l2"):
        metrics = doc["metrics"][model]
        assert 0.5 <= metrics["rel/msp/auroc"] <= 1 and 0 <= metrics["rel/msp/aurc"] <= 1
        assert metrics["rel/mahalanobis/auroc"] > 0.5
        assert 0 < metrics["deepfool/rel_norm"] < 1 and metrics["deepfool/success"] == 1.0
        assert "nc/pred/nc1" in metrics and "bin/pred/same_code" in metrics
    assert doc["models"]["linear-pen"]["latent_dim"] == 4 and doc["models"]["binary-l2"]["latent_dim"] == 4
    assert doc["models"]["binary-l2"]["history"][1]["gamma"] == pytest.approx(0.0105)
    assert "reliability — misclassification detection" in result.output
