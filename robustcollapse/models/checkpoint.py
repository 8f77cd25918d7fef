"""Checkpoints: safetensors weights + a JSON sidecar. Nothing is ever unpickled."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from robustcollapse import __version__
from robustcollapse.errors import UserError
from robustcollapse.models.classifier import Classifier, ModelSpec, build_model
from robustcollapse.report.document import atomic_write_bytes, atomic_write_text

FORMAT = "robustcollapse-checkpoint"
FORMAT_VERSION = 1


def sidecar_path(weights: Path) -> Path:
    """`model.safetensors` -> `model.json`."""
    return weights.with_suffix(".json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(model: Classifier, weights: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write weights then sidecar, each atomically; returns the sidecar dict."""
    weights = Path(weights)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = save(state)
    atomic_write_bytes(weights, blob)
    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.spec.model_dump(mode="json"),
        **meta,
        "weights": weights.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "package_version": __version__,
        "torch_version": torch.__version__,
    }
    atomic_write_text(sidecar_path(weights), json.dumps(sidecar, indent=2))
    return sidecar


def read_sidecar(weights: Path) -> dict[str, Any]:
    """The sidecar of a weights file, checked for format; a clear error when missing or malformed."""
    side = sidecar_path(Path(weights))
    if not side.is_file():
        raise UserError(f"{weights}: checkpoint sidecar {side} is missing (a checkpoint is weights + JSON)")
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{side}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{side}: field 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def load_checkpoint(weights: Path, device: str | torch.device = "cpu") -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the model from the sidecar, verify the weights' sha256 and load them strictly."""
    weights = Path(weights)
    if not weights.is_file():
        raise UserError(f"{weights}: checkpoint weights not found")
    meta = read_sidecar(weights)
    digest = sha256_file(weights)
    if digest != meta.get("sha256"):
        raise UserError(
            f"{weights}: sha256 {digest[:12]}… does not match its sidecar's {str(meta.get('sha256'))[:12]}… "
            "(weights replaced or corrupted)"
        )
    model = build_model(ModelSpec.model_validate(meta["model"]))
    state = load_file(str(weights))
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise UserError(f"{weights}: weights do not fit the sidecar's model: {first}") from None
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"{weights}: weights do not fit the sidecar's model ({meta['model']['backbone']}+"
            f"{meta['model']['head']}): missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}"
        )
    return model.to(device).eval(), meta
