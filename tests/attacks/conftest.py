"""Fixtures of the attack tests: the digits data and a small MLP trained on it (seconds on a CPU)."""

from __future__ import annotations

import pytest
import torch

from robustcollapse.config import Recipe
from robustcollapse.data import load_dataset
from robustcollapse.training.loop import train_model


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def model(data):
    recipe = Recipe.model_validate(
        {
            "backbone": {"name": "mlp", "args": {"hidden": 64}},
            "head": "linear",
            "epochs": 8,
            "batch_size": 64,
            "lr": 0.003,
        }
    )
    trained, _ = train_model(recipe, data, torch.device("cpu"))
    return trained
