"""Which temperature a model's scaled calibration uses, and where it was fitted (recorded in the document).

Our models trained with `calibration: {temperature: true}` carry a temperature fitted at training time on their
own validation split, which the training never saw. A model trained elsewhere (or a checkpoint without one) is
fitted here on a seeded share of the suite's *training* split — never on the test images that are scored — and the
document says so, since those images may have been part of its training data."""

from __future__ import annotations

from typing import Any

import torch

from robustcollapse.config import Calibration
from robustcollapse.data import Dataset, to_float, validation_split
from robustcollapse.metrics.calibration import fit_temperature


def model_temperature(
    model: torch.nn.Module, meta: dict[str, Any], data: Dataset, calibration: Calibration, seed: int, batch_size: int
) -> dict[str, Any] | None:
    """{value, fitted_on, n} for a model whose suite asks for temperature scaling, else None."""
    if not calibration.temperature:
        return None
    if meta.get("temperature") is not None:
        return {
            "value": float(meta["temperature"]),
            "fitted_on": "the validation split held out of training (indices in the checkpoint sidecar)",
            "n": int((meta.get("validation") or {}).get("n", 0)),
        }
    _, held, _ = validation_split(data.train, calibration.val_fraction, seed)
    with torch.inference_mode():
        model.eval()
        logits = torch.cat([model(to_float(held.x[i : i + batch_size])) for i in range(0, len(held), batch_size)])
    return {
        "value": fit_temperature(logits, held.y),
        "fitted_on": f"a seeded {calibration.val_fraction:g} of the suite's training split (the model may have "
        "been trained on it)",
        "n": len(held),
    }
