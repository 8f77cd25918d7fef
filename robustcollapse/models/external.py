"""Evaluate any PyTorch classifier: a factory by import path, a torchvision or timm architecture, with weights from
safetensors or a state_dict file (torch.load(weights_only=True): never full unpickling), or a RobustBench model
(`robustbench.py`).

The wrapper presents the module as the suite's classifier: [0, 1] input, normalisation inside, logits out,
`forward_all` -> (features, logits) with the features read by a forward hook as the *input* of the
`features` module (by default the last nn.Linear), and the classifier weight read from that module when it
is an nn.Linear (otherwise NC3 and classifier-based metrics are not applicable).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from robustcollapse.errors import UserError
from robustcollapse.models.checkpoint import require_finite
from robustcollapse.models.robustbench import DEFAULT_MODEL_DIR, load_robustbench


class ExternalClassifier(nn.Module):
    """Any module mapping normalised images to logits, behind the Classifier interface."""

    def __init__(self, module: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], features: str) -> None:
        super().__init__()
        self.module = module
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.features_name = features
        self.feature_module = dict(module.named_modules())[features]
        self._captured: list[torch.Tensor] = []
        self.feature_module.register_forward_hook(self._capture)
        self._capturing = False

    def _capture(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
        if self._capturing:
            self._captured.append(inputs[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module((x - self.mean) / self.std)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._capturing, self._captured = True, []
        try:
            logits = self.forward(x)
        finally:
            self._capturing = False
        if not self._captured:
            raise UserError(f"features module {self.features_name!r} was not called in the forward pass")
        return self._captured[-1].flatten(1), logits

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]

    def classifier_layer(self) -> nn.Linear | None:
        """The `features` module when it is an nn.Linear (it then maps the features to the logits)."""
        return self.feature_module if isinstance(self.feature_module, nn.Linear) else None


def last_linear(module: nn.Module) -> str | None:
    """Name of the last nn.Linear in registration order (the usual classifier layer)."""
    names = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def import_factory(path: str, search_dir: Path | None) -> Any:
    """'pkg.mod:build' -> the callable, importing from `search_dir` (the suite's folder) and PYTHONPATH."""
    if ":" not in path:
        raise UserError(f"module {path!r}: write it as 'package.module:factory'")
    mod_name, attr = path.split(":", 1)
    added = search_dir is not None and str(search_dir) not in sys.path
    if added:
        sys.path.insert(0, str(search_dir))
    try:
        module = importlib.import_module(mod_name)
    except Exception as exc:  # noqa: BLE001 - any import failure becomes one line naming the entry
        raise UserError(f"module {path!r}: cannot import {mod_name!r} ({type(exc).__name__}: {exc})") from None
    finally:
        if added:
            sys.path.remove(str(search_dir))
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(f"module {path!r}: {mod_name!r} has no callable {attr!r}")
    return factory


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from safetensors, or a state_dict .pt/.pth via torch.load(weights_only=True) — nothing else."""
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise UserError(f"{path}: unreadable safetensors file ({exc})") from None
        require_finite(state, path)
        return state
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the unpickler refuses anything but tensors and containers
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path}: not a plain state_dict; refused to unpickle it ({first[:160]})") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: holds a {type(obj).__name__}, not a state_dict of tensors")
    require_finite(obj, path)
    return obj


def _timm_factory(name: str, channels: int) -> Any:
    try:
        import timm
    except ImportError:
        raise UserError(f"timm model {name!r}: timm is not installed: pip install 'robustcollapse[timm]'") from None

    def factory(**kw: Any) -> nn.Module:
        kw.setdefault("in_chans", channels)
        return timm.create_model(name, pretrained=False, **kw)  # weights only from a local file, never the hub

    return factory


def _torchvision_factory(name: str) -> Any:
    import torchvision  # here, for a `torchvision:` entry only: importing it costs every run 1.5 s of start-up

    def factory(**kw: Any) -> nn.Module:
        return torchvision.models.get_model(name, weights=None, **kw)

    return factory


def build_external(
    entry: Any,
    num_classes: int,
    search_dir: Path | None,
    channels: int = 3,
    instance: nn.Module | None = None,
    model_dir: Path = DEFAULT_MODEL_DIR,
    download: bool = False,
) -> tuple[ExternalClassifier, list[Path]]:
    """The wrapped module of a `module:`, `torchvision:`, `timm:` or `robustbench:` model entry, with its weights
    loaded (a zoo model's from `model_dir`, fetched only with `download`), and the weight files read; or of
    `instance`, a module handed over from Python (the API), used as it is."""
    kwargs = dict(entry.kwargs)
    label = entry.source
    zoo_files: list[Path] = []
    if instance is None and entry.robustbench:
        instance, zoo_files = load_robustbench(
            entry.robustbench, entry.dataset, entry.threat_model, model_dir, download
        )
    if instance is not None:

        def factory(**kw: Any) -> nn.Module:
            return instance
    elif entry.module:
        factory = import_factory(entry.module, search_dir)
    elif entry.timm:
        kwargs.setdefault("num_classes", num_classes)
        factory = _timm_factory(entry.timm, channels)
    else:
        kwargs.setdefault("num_classes", num_classes)
        factory = _torchvision_factory(entry.torchvision)

    try:
        module = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001 - a failing user factory is reported on one line
        raise UserError(f"model {entry.name!r}: {label}(**{kwargs}) raised {type(exc).__name__}: {exc}") from None
    if not isinstance(module, nn.Module):
        raise UserError(f"model {entry.name!r}: {label} returned a {type(module).__name__}, not an nn.Module")
    weights_path = Path(entry.weights) if entry.weights else None
    if weights_path is not None:
        _load(module, load_state_dict_file(weights_path), weights_path, f"model {entry.name!r}: ", label)
    features = entry.features or last_linear(module)
    if features is None or features not in dict(module.named_modules()):
        known = [n for n, _ in module.named_modules() if n][-5:]
        raise UserError(f"model {entry.name!r}: features module {features!r} not found; last modules: {known}")
    norm = entry.normalize
    files = [weights_path] if weights_path else zoo_files
    return ExternalClassifier(module, tuple(norm.mean), tuple(norm.std), features).eval(), files


def _load(module: nn.Module, state: dict[str, torch.Tensor], path: Path, who: str, label: str) -> None:
    """Load weights into the module: a size mismatch, or keys missing or unexpected, is one line (`who` starts it)."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        detail = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc).splitlines()[-1])
        raise UserError(f"{path}: {detail}") from None
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"{who}{path} does not fit {label}: missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
