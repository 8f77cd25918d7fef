import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from robustcollapse.metrics.ood import fpr_at_tpr, ood_report


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_sklearn_and_an_independent_fpr95(seed):
    gen = torch.Generator().manual_seed(seed)
    id_s = torch.randn(500, generator=gen, dtype=torch.float64)
    ood_s = torch.randn(300, generator=gen, dtype=torch.float64) + 1.0
    rep = ood_report(id_s, ood_s)
    labels = np.r_[np.zeros(500), np.ones(300)]
    scores = np.r_[id_s.numpy(), ood_s.numpy()]
    assert rep["auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert rep["aupr_out"] == pytest.approx(average_precision_score(labels, scores))
    assert rep["aupr_in"] == pytest.approx(average_precision_score(1 - labels, -scores))
    # independent: the largest threshold t with >= 95% of OOD scores >= t is the 5% order statistic
    t = np.sort(ood_s.numpy())[int(np.floor(0.05 * 300))]
    assert rep["fpr95"] == pytest.approx(float((id_s.numpy() >= t).mean()))


def test_known_answers():
    id_s, ood_s = torch.arange(100.0), torch.arange(100.0) + 1000
    rep = ood_report(id_s, ood_s)
    assert rep["auroc"] == 1.0 and rep["fpr95"] == 0.0 and rep["aupr_out"] == 1.0 and rep["aupr_in"] == 1.0
    same = ood_report(torch.ones(50), torch.ones(70))
    assert same["auroc"] == 0.5 and same["fpr95"] == 1.0
    assert ood_report(ood_s, id_s)["auroc"] == 0.0


def test_fpr_at_95_hand_example():
    ood = torch.arange(1.0, 21.0)  # 20 OOD scores 1..20: catching 19 of 20 (95%) needs t = 2
    ids = torch.tensor([0.0, 1.5, 2.0, 3.0])
    assert fpr_at_tpr(ids, ood) == pytest.approx(2 / 4)
