"""Backbones, heads, the Classifier that joins them, and checkpoint I/O."""

from robustcollapse.models import backbones, heads  # noqa: F401  (registers the plug-ins)
from robustcollapse.models.classifier import Classifier, ModelSpec, build_model

__all__ = ["Classifier", "ModelSpec", "build_model"]
