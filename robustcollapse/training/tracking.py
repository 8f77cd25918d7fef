"""What is logged every epoch besides the loss: test accuracy and the collapse figures of a fixed training subset,
and the convergence epoch the binary-encoding paper measures."""

from __future__ import annotations

import torch

from robustcollapse.data import Split, to_float
from robustcollapse.metrics.binarity import sign_codes, two_means_separation
from robustcollapse.metrics.collapse import collapse_report, weight_on_latent
from robustcollapse.metrics.spec import MetricSpec, declare
from robustcollapse.models import Classifier

SPECS = declare(
    MetricSpec("loss", "training loss", higher_is_better=False),
    MetricSpec("train_acc", "training accuracy", higher_is_better=True),
    MetricSpec("test_acc", "test accuracy", higher_is_better=True),
)
# The per-epoch history's quantities the report plots, with whether on a log scale.
TRACKED = [
    ("train_acc", False),
    ("test_acc", False),
    ("nc/nc1", True),
    ("nc/etf_means", False),
    ("nc/etf_w", False),
    ("bin/same_code", False),
    ("bin/two_means_sep", False),
    ("loss", True),
]


@torch.inference_mode()
def accuracy(model: Classifier, split: Split, batch_size: int = 1024) -> float:
    """Top-1 accuracy of `model` on a split (eval mode)."""
    was_training = model.training
    model.eval()
    hits = 0
    for i in range(0, len(split), batch_size):
        logits = model(to_float(split.x[i : i + batch_size]))
        hits += int((logits.argmax(1) == split.y[i : i + batch_size]).sum())
    model.train(was_training)
    return hits / max(len(split), 1)


TRACK_SAMPLES = 1000


@torch.inference_mode()
def epoch_collapse(model: Classifier, subset: Split, num_classes: int) -> dict[str, float]:
    """Collapse figures of the current model on a fixed training subset, cheap enough to log every epoch:
    NC1, distance of the class means (and classifier rows) from the simplex ETF, NC3, sign-code agreement and the
    2-means binarity of z."""
    model.eval()
    z, logits = model.forward_all(to_float(subset.x))
    weight = weight_on_latent(model.classifier_layer(), z.shape[1])
    rep = collapse_report(z.float(), subset.y, logits.float(), weight, num_classes)
    row = {f"nc/{k}": rep[k] for k in ("nc1", "etf_means", "etf_w", "nc3") if k in rep}
    row["bin/same_code"] = sign_codes(z.float(), subset.y, num_classes)["same_code"]
    row["bin/two_means_sep"] = two_means_separation(z.float())
    return row


def convergence_epoch(history: list[dict[str, float]], threshold: float = 0.999) -> int | None:
    """First epoch whose training accuracy exceeds `threshold` (the binary-encoding paper's measure)."""
    return next((int(row["epoch"]) for row in history if row["train_acc"] > threshold), None)
