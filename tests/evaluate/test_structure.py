"""Fine-grained recovery on planted sub-clusters, and the collapse family end to end on a tiny suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from robustcollapse.cli import main
from robustcollapse.evaluate.finegrained import recovered_accuracy


def test_kmeans_recovers_planted_subclusters():
    """10 fine classes, paired into 5 coarse ones; each fine class a tight blob at its own centre."""
    gen = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(10, 16, generator=gen)
    fine = torch.arange(2000) % 10
    z = centres[fine] + 0.5 * torch.randn(2000, 16, generator=gen)
    groups = [[0, 5], [1, 6], [2, 7], [3, 8], [4, 9]]
    assert recovered_accuracy(z, fine, groups) >= 0.99
    # no sub-structure left (full collapse to the coarse mean): recovery falls to chance inside each pair
    collapsed = torch.stack([centres[[g for g in groups if int(f) in g][0]].mean(0) for f in fine])
    noisy = collapsed + 0.5 * torch.randn(2000, 16, generator=gen)
    assert 0.45 < recovered_accuracy(noisy, fine, groups) < 0.6


SUITE = """\
name: family
dataset: digits
batch_size: 512
models:
  - name: fine
    train: &r
      backbone: {name: mlp, hidden: 64, depth: 2}
      head: linear
      epochs: 6
      batch_size: 64
      lr: 0.003
  - name: coarse
    train:
      <<: *r
      coarse: pairs
  - name: etf
    train:
      <<: *r
      head: etf
  - name: haframe
    train:
      <<: *r
      head: {name: haframe, hierarchy: pairs}
  - name: spherical
    train:
      <<: *r
      head: {name: spherical, d: 3}
tests:
  - kind: clean
  - kind: collapse
  - kind: finegrained
    groups: pairs
  - kind: hierarchy
    hierarchy: pairs
    k: [1, 3]
"""


@pytest.mark.slow  # a whole suite: five models trained and evaluated
def test_collapse_family_suite_end_to_end(workdir):
    Path("family.yaml").write_text(SUITE)
    result = CliRunner().invoke(main, ["eval", "family.yaml", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    doc = json.loads(Path("results/family.json").read_text())
    m = doc["metrics"]
    for name in ("fine", "etf", "haframe", "spherical"):
        assert m[name]["clean/acc"] > 0.6, name  # chance is 0.1; six epochs of a tiny MLP
        assert 0 <= m[name]["hier/mistake_severity"] <= 2 and m[name]["hier/top1"] == m[name]["clean/acc"]
        assert m[name]["fine/model_acc"] == pytest.approx(m[name]["clean/acc"])
    # the coarse model has 5 outputs, is scored on coarse labels, and its features still carry the fine ones
    coarse = m["coarse"]
    assert doc["models"]["coarse"]["model"]["num_classes"] == 5
    assert coarse["clean/acc"] == pytest.approx(coarse["fine/coarse_acc"])
    assert coarse["fine/kmeans_acc"] > 0.6, "well above the 0.5 of guessing inside each pair"
    assert "hier/top1" not in coarse and "skipped" in doc["details"]["coarse"]["hierarchy"]
    # fixed frames stay fixed: the ETF's rows keep their 96.4° (K = 10) angle
    assert m["etf"]["nc/min_angle"] == pytest.approx(96.38, abs=0.05)
    assert m["spherical"]["nc/ovr_margin_mean"] > 0
    assert {"nc/nc1", "nc/etf_means", "bin/two_means_sep"} <= set(doc["models"]["haframe"]["history"][-1])


def test_collapse_by_prediction_is_skipped_not_crashed_when_one_class_is_predicted():
    """A model that predicts one class (an untrained one) has no predicted-class means to compare."""
    import torch

    from robustcollapse.evaluate.base import Context
    from robustcollapse.evaluate.collapse import Collapse, CollapseParams

    class Constant(torch.nn.Module):
        def forward_all(self, x):
            z = x.flatten(1)[:, :4]
            return z, torch.zeros(len(x), 3).index_fill_(1, torch.tensor([1]), 5.0)

        def classifier_layer(self):
            return None

    from robustcollapse.data.base import Dataset, Split

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8, generator=gen)
    split = Split(x, torch.arange(30) % 3)
    data = Dataset("toy", split, split, ["a", "b", "c"], (0.0,), (1.0,))
    ctx = Context(Constant(), data, split, 16, 0)
    result = Collapse.run(ctx, CollapseParams(kind="collapse", split="test", by_predicted=True, binarity=False))
    assert (
        "nc/nc1" in result.metrics or "nc/test/nc1" in result.metrics or any(k.endswith("/nc1") for k in result.metrics)
    )
    assert not any("/pred/" in k for k in result.metrics)
    assert result.details["by_predicted"] == "not measured: the model predicts a single class"
