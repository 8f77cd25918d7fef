"""Classifier = normalisation + backbone + head; takes images in [0, 1] so attacks work in pixel space."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from robustcollapse import registry
from robustcollapse.models.backbones import Backbone
from robustcollapse.models.heads import Head


class ModelSpec(BaseModel):
    """Everything needed to rebuild a Classifier's architecture; stored in the checkpoint sidecar."""

    model_config = ConfigDict(extra="forbid")

    backbone: str
    backbone_kwargs: dict[str, Any] = {}
    head: str
    head_kwargs: dict[str, Any] = {}
    in_channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: list[str] | None = None


class Classifier(nn.Module):
    """`forward(x) -> logits`, `features(x) -> z`, `forward_all(x) -> (z, logits)`; x in [0, 1]."""

    def __init__(self, spec: ModelSpec, backbone: Backbone, head: Head) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.head = head
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.backbone((x - self.mean) / self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]

    def loss(self, logits: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head.loss(logits, z, y)

    def classifier_layer(self) -> nn.Linear | None:
        """The last linear layer (K x latent dim), acting on `features(x)`."""
        return self.head.classifier


def build_model(spec: ModelSpec) -> Classifier:
    """Instantiate the registered backbone and head a spec names (random weights)."""
    backbone = registry.get("backbone", spec.backbone)(spec.in_channels, spec.image_size, **spec.backbone_kwargs)
    factory = registry.get("head", spec.head)
    kwargs = dict(spec.head_kwargs)
    if "classes" in inspect.signature(factory).parameters:  # e.g. a hierarchy-aware head matches class names
        kwargs["classes"] = spec.classes or [str(i) for i in range(spec.num_classes)]
    head = factory(backbone.out_dim, spec.num_classes, **kwargs)
    return Classifier(spec, backbone, head)
