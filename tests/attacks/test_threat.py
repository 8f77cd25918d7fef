"""The threat model: eps as written in a suite and in a metric key, and the eps-ball test with its slack."""

from __future__ import annotations

import pytest
import torch

from robustcollapse.attacks import eps_bound, eps_label, parse_eps, within


def test_eps_parsing_and_labels():
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps("0.3") == 0.3 and parse_eps(0.1) == 0.1
    assert eps_label(8 / 255) == "8_255" and eps_label(0.3) == "0.3"
    with pytest.raises(ValueError):
        parse_eps("eight")


def test_within_allows_round_off_only():
    eps = 8 / 255
    linf = torch.zeros(3, 1, 2, 2)
    linf[:, 0, 0, 0] = torch.tensor([eps, eps + 0.5e-5, eps + 2e-5])
    assert within(linf, "linf", eps).tolist() == [True, True, False]
    l2 = torch.zeros(2, 4)
    l2[:, 0] = torch.tensor([0.5 * (1 + 0.5e-4), 0.5 * (1 + 2e-4)])
    assert within(l2, "l2", 0.5).tolist() == [True, False]
    assert eps_bound(0.5, "l2") == pytest.approx(0.5 * (1 + 1e-4))
