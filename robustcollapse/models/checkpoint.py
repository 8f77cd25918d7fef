"""Checkpoints: safetensors weights + a JSON sidecar. Nothing is ever unpickled.

A save is a small journal, so a kill at any instant leaves the old pair or the new pair: the new weights and then
the new sidecar are written in full beside the old ones (`*.pending`, each atomically); the pending sidecar,
naming the weights' sha256, is the commit point; then both are renamed over the old files. `recover_checkpoint`
finishes a save killed after its commit point and discards one killed before it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from robustcollapse.errors import UserError
from robustcollapse.io import atomic_write_bytes, atomic_write_text, read_json, remove_stale_temporaries
from robustcollapse.models.classifier import Classifier, ModelSpec, build_model
from robustcollapse.version import __version__

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


def pending_path(path: Path) -> Path:
    """Where a save writes `path`'s new content before the commit."""
    return path.with_name(path.name + ".pending")


def recover_checkpoint(weights: Path) -> str | None:
    """Bring a checkpoint whose save was killed back to a consistent pair; clean the save's temporaries.

    Returns what was done ('completed': the save had committed and is finished now; 'discarded': it had not, the
    old pair stays) or None when there was nothing to do."""
    weights = Path(weights)
    side = sidecar_path(weights)
    for path in (weights, side, pending_path(weights), pending_path(side)):
        remove_stale_temporaries(path)
    new_weights, new_side = pending_path(weights), pending_path(side)
    if new_side.is_file():
        try:
            wanted = json.loads(new_side.read_text()).get("sha256")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            wanted = None
        if wanted is not None and new_weights.is_file() and sha256_file(new_weights) == wanted:
            os.replace(new_weights, weights)
        if wanted is not None and weights.is_file() and sha256_file(weights) == wanted:
            os.replace(new_side, side)
            return "completed"
        new_side.unlink()
        new_weights.unlink(missing_ok=True)
        return "discarded"
    if new_weights.is_file():
        new_weights.unlink()
        return "discarded"
    return None


def weights_bytes(model: torch.nn.Module) -> bytes:
    """A module's state dict as safetensors bytes: what a checkpoint stores and what its sha256 identifies."""
    return save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})


def save_checkpoint(model: Classifier, weights: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write weights + sidecar so that a kill at any point leaves the old pair or the new one; returns the sidecar."""
    weights = Path(weights)
    weights.parent.mkdir(parents=True, exist_ok=True)
    recover_checkpoint(weights)
    blob = weights_bytes(model)
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
    side = sidecar_path(weights)
    atomic_write_bytes(pending_path(weights), blob)
    atomic_write_text(pending_path(side), json.dumps(sidecar, indent=2))  # the commit point
    os.replace(pending_path(weights), weights)
    os.replace(pending_path(side), side)
    return sidecar


def read_sidecar(weights: Path) -> dict[str, Any]:
    """The sidecar of a weights file, checked for format; a clear error when missing or malformed."""
    side = sidecar_path(Path(weights))
    if not side.exists():
        raise UserError(f"{weights}: checkpoint sidecar {side} is missing (a checkpoint is weights + JSON)")
    meta = read_json(side, "checkpoint sidecar")
    if not isinstance(meta, dict):
        raise UserError(f"{side}: a checkpoint sidecar is a JSON object, this is a {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise UserError(f"{side}: field 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{side}: field 'format_version' is {meta.get('format_version')!r}; this version reads {FORMAT_VERSION}"
        )
    if "sha256" not in meta:
        raise UserError(f"{side}: field 'sha256' is missing; a sidecar names its weights' sha256 (retrain or re-save)")
    if not isinstance(meta["sha256"], str):
        raise UserError(f"{side}: field 'sha256' is {meta['sha256']!r}; allowed: the weights' sha256 as a hex string")
    return meta


def require_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """Weights with a NaN or infinity give a model that silently answers one class (accuracy at chance, a complete
    document, no warning): refuse them when loaded, naming the first such tensor."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise UserError(f"{path}: tensor {name!r} holds {bad} non-finite values (NaN or inf); retrain the model")


def load_checkpoint(weights: Path, device: str | torch.device = "cpu") -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the model from the sidecar, verify the weights' sha256 and load them strictly."""
    weights = Path(weights)
    recover_checkpoint(weights)
    if weights.exists() and not weights.is_file():
        raise UserError(f"{weights}: not a regular file (a folder, FIFO or device), not checkpoint weights")
    if not weights.is_file():
        raise UserError(f"{weights}: checkpoint weights not found")
    meta = read_sidecar(weights)
    digest = sha256_file(weights)
    if digest != meta.get("sha256"):
        raise UserError(
            f"{weights}: sha256 {digest[:12]}… does not match its sidecar's {str(meta.get('sha256'))[:12]}… "
            "(weights replaced or corrupted)"
        )
    try:
        model = build_model(ModelSpec.model_validate(meta.get("model")))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("model", *err["loc"]))
        raise UserError(f"{sidecar_path(weights)}: field {where}: {err['msg']}") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"{weights}: unreadable safetensors file ({exc})") from None
    require_finite(state, weights)
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
