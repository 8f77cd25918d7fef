"""Fixed frames (simplex ETF, HAFrame), the spherical margin, hierarchies and mistake severity: known answers."""

from __future__ import annotations

import math

import pytest
import torch

from robustcollapse.data.hierarchy import CIFAR100_SUPERCLASSES, coarse_groups, load_hierarchy, mistake_severity
from robustcollapse.errors import UserError
from robustcollapse.metrics.collapse import sphere_report
from robustcollapse.models import ModelSpec, build_model
from robustcollapse.models.frames import frame_from_gram, haframe_similarity, similarity_from_heights, simplex_etf_gram

CIFAR100_CLASSES = sorted(leaf for leaves in CIFAR100_SUPERCLASSES.values() for leaf in leaves)  # torchvision order


@pytest.mark.parametrize(("k", "d", "rotate"), [(10, 9, True), (10, 10, False), (4, 12, True), (100, 128, True)])
def test_etf_gram_is_the_analytic_one(k, d, rotate):
    w = frame_from_gram(simplex_etf_gram(k), d, seed=1, rotate=rotate).double()
    assert w.shape == (k, d)
    expected = torch.full((k, k), -1 / (k - 1), dtype=torch.float64).fill_diagonal_(1)
    assert torch.allclose(w @ w.T, expected, atol=1e-5)
    assert torch.allclose(w.sum(0), torch.zeros(d, dtype=torch.float64), atol=1e-5), "an ETF sums to zero"


def test_etf_needs_k_minus_1_dimensions():
    with pytest.raises(UserError, match="needs d >= 9"):
        frame_from_gram(simplex_etf_gram(10), 8)


def test_etf_head_keeps_its_frame_fixed_and_trains_the_rest():
    spec = ModelSpec(backbone="mlp", head="etf", in_channels=1, image_size=8, num_classes=5, mean=(0.5,), std=(0.25,))
    model = build_model(spec)
    w = model.classifier_layer().weight
    assert not w.requires_grad and torch.allclose(w @ w.T, simplex_etf_gram(5).float(), atol=1e-5)
    assert model.classifier_layer().bias is None
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "head.project.weight" in trainable and "head.classifier.weight" not in trainable


def test_haframe_follows_the_hierarchy_and_reproduces_its_targets():
    tree = load_hierarchy("cifar100", CIFAR100_CLASSES)
    heights = tree.lca_heights()
    assert set(heights.unique().tolist()) == {0.0, 1.0, 2.0}
    sim = haframe_similarity(heights, gamma=2.0)
    w = frame_from_gram(sim, 100, seed=0).double()
    assert torch.allclose(w @ w.T, sim, atol=1e-5), "S is realised exactly when d >= rank"
    assert torch.allclose(w.norm(dim=1), torch.ones(100, dtype=torch.float64), atol=1e-5)
    gram = w @ w.T
    same = gram[(heights == 1)]
    other = gram[(heights == 2)]
    assert float(same.min()) > float(other.max()), "cosine falls as the LCA gets higher"
    # maximal separation: s_min is the most negative of the 100 candidates for which S is PSD
    # at h = h_max: S = (1 - s_min)·exp(-γ) + s_min, so s_min = (S - exp(-γ)) / (1 - exp(-γ))
    s_min = float((sim[heights == 2][0] - math.exp(-2.0)) / (1 - math.exp(-2.0)))
    candidates = torch.linspace(-1 / 99, -1, 100).tolist()
    below = [c for c in candidates if c < s_min - 1e-9]
    assert below, "the search stopped before -1"
    assert all(float(torch.linalg.eigvalsh(similarity_from_heights(heights, c, 2.0)).min()) < -1e-6 for c in below)
    assert float(torch.linalg.eigvalsh(sim).min()) > -1e-6


def test_haframe_exponential_similarity_values():
    heights = torch.tensor([[0.0, 1, 2], [1, 0, 2], [2, 2, 0]], dtype=torch.float64)
    sim = similarity_from_heights(heights, s_min=-0.5, gamma=2.0)
    assert float(sim[0, 1]) == pytest.approx(1.5 * math.exp(-1.0) - 0.5)
    assert float(sim[0, 2]) == pytest.approx(1.5 * math.exp(-2.0) - 0.5)
    assert torch.equal(sim.diagonal(), torch.ones(3, dtype=torch.float64))


def test_haframe_loss_is_zero_pull_on_the_frame():
    spec = ModelSpec(
        backbone="mlp", head="haframe", head_kwargs={"hierarchy": "pairs", "alpha": 1.0}, in_channels=1,
        image_size=8, num_classes=4, mean=(0.5,), std=(0.25,), classes=["a", "b", "c", "d"],
    )  # fmt: skip
    head = build_model(spec).head
    w = head.classifier.weight
    y = torch.arange(4)
    z = 3 * w  # features exactly on their class vectors: cos(z, w_c) = S[y, c]
    assert float(head.loss(head.classifier(z), z, y)) == pytest.approx(0, abs=1e-5)
    assert float(head.loss(head.classifier(-z), -z, y)) > 1


def test_spherical_margin_of_equally_spaced_directions_on_a_circle():
    k = 7
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    w = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    y = torch.arange(k).repeat(3)
    h = 5 * w[y]
    rep = sphere_report(h, y, w)
    assert rep["ovr_margin_min"] == pytest.approx(1 - math.cos(2 * math.pi / k))
    assert rep["ovr_margin_mean"] == pytest.approx(1 - math.cos(2 * math.pi / k))
    assert rep["min_angle"] == pytest.approx(360 / k)
    # a sample half-way to its neighbour has zero margin
    half = torch.stack([torch.cos(angles[:1] + math.pi / k), torch.sin(angles[:1] + math.pi / k)], dim=1)
    assert sphere_report(half, torch.tensor([0]), w)["ovr_margin_min"] == pytest.approx(0, abs=1e-9)


def test_spherical_head_works_with_d_below_k_minus_1():
    spec = ModelSpec(backbone="mlp", head="spherical", head_kwargs={"d": 3, "tau": 8.0}, in_channels=1,
                     image_size=8, num_classes=20, mean=(0.5,), std=(0.25,))  # fmt: skip
    model = build_model(spec)
    with torch.no_grad():
        z, logits = model.forward_all(torch.rand(5, 1, 8, 8))
    assert z.shape == (5, 3) and torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-5)
    assert logits.shape == (5, 20) and float(logits.abs().max()) <= 8.0 + 1e-4


TREE = {"tree": {"animal": {"mammal": ["cat", "dog"], "bird": ["owl"]}, "vehicle": ["car", "truck"]}}
PATHS = {"paths": [["cat", "mammal", "animal"], ["dog", "mammal", "animal"], ["owl", "bird", "animal"],
                   ["car", "vehicle"], ["truck", "vehicle"]]}  # fmt: skip
NAMES = ["cat", "dog", "owl", "car", "truck"]


@pytest.mark.parametrize("content", [TREE, PATHS])
def test_hierarchy_files_give_lca_heights(tmp_path, content):
    import yaml

    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(content))
    heights = load_hierarchy(str(path), NAMES).lca_heights()
    expected = torch.tensor(
        [[0, 1, 2, 3, 3], [1, 0, 2, 3, 3], [2, 2, 0, 3, 3], [3, 3, 3, 0, 1], [3, 3, 3, 1, 0]], dtype=torch.float64
    )
    assert torch.equal(heights, expected)
    assert load_hierarchy(str(path), NAMES).groups() == [[0, 1], [2], [3, 4]]
    with pytest.raises(UserError, match="class 'horse' \\(index 4\\) is not a leaf"):
        load_hierarchy(str(path), ["cat", "dog", "owl", "car", "horse"])


def test_mistake_severity_known_answers():
    tree = load_hierarchy("pairs", [str(i) for i in range(4)])  # {0, 2} and {1, 3}
    heights = tree.lca_heights()
    assert heights[0, 2] == 1 and heights[0, 1] == 2
    y = torch.tensor([0, 0, 1, 3])
    logits = torch.tensor(
        [
            [9.0, 1, 2, 0],  # right; top-2 = 0, 2 -> heights 0, 1
            [1.0, 2, 9, 0],  # wrong, predicts 2 (same pair): severity 1; top-2 = 2, 1 -> 1, 2
            [9.0, 2, 1, 0],  # wrong, predicts 0 (other pair): severity 2; top-2 = 0, 1 -> 2, 0
            [0.0, 1, 2, 9],  # right; top-2 = 3, 2 -> 0, 2
        ]
    )
    rep = mistake_severity(logits, y, heights, [1, 2])
    assert rep["top1"] == 0.5
    assert rep["mistake_severity"] == pytest.approx(1.5)
    assert rep["dist@1"] == pytest.approx((0 + 1 + 2 + 0) / 4)
    assert rep["dist@2"] == pytest.approx((0.5 + 1.5 + 1 + 1) / 4)


def test_coarse_groups_validate():
    classes = [str(i) for i in range(10)]
    assert coarse_groups("pairs", classes) == [[0, 5], [1, 6], [2, 7], [3, 8], [4, 9]]
    assert coarse_groups([[0, 1, 2], [3, 4, 5, 6, 7, 8, 9]], classes)[0] == [0, 1, 2]
    with pytest.raises(UserError, match="each class exactly once"):
        coarse_groups([[0, 1], [1, 2, 3, 4, 5, 6, 7, 8, 9]], classes)
