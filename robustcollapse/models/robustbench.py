"""RobustBench's model zoo (`robustbench: NAME` in a suite), loaded by the `robustbench` package itself (the optional
extra `pip install 'robustcollapse[robustbench]'`), so a model is exactly the one its leaderboard lists.

Weights are read from a local folder in RobustBench's own layout, `MODEL_DIR/<dataset>/<threat_model>/<NAME>.pt`
(an ensemble's members `<NAME>.pt_m0.pt`, `<NAME>.pt_m1.pt`, …), and fetched only when the user passes `--download`.
The zoo's models take [0, 1] images and normalise inside, as ours do: the suite's wrapper adds no normalisation.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

from torch import nn

from robustcollapse.errors import UserError
from robustcollapse.models.checkpoint import require_finite

DEFAULT_MODEL_DIR = Path("results/models/robustbench")
INSTALL = "pip install 'robustcollapse[robustbench]'"


def _zoo() -> tuple[Any, Any]:
    """robustbench's `load_model` and its zoo (data set -> threat model -> name -> entry).

    robustbench's package imports `autoattack`, the name the AutoAttack authors' GitHub package installs under; PyPI
    has the same code as `pyautoattack`. Where `autoattack` is missing, `pyautoattack` answers to that name."""
    try:
        import autoattack  # noqa: F401 - only whether it exists
    except ImportError:
        try:
            import pyautoattack
            import pyautoattack.state
        except ImportError:
            raise UserError(f"robustbench needs AutoAttack (pyautoattack): {INSTALL}") from None
        sys.modules["autoattack"] = pyautoattack
        sys.modules["autoattack.state"] = pyautoattack.state
    try:
        from robustbench.model_zoo import model_dicts
        from robustbench.utils import load_model
    except ImportError as exc:
        raise UserError(f"robustbench is not importable ({exc}): {INSTALL}") from None
    zoo = {d.value: {t.value: models for t, models in by_threat.items()} for d, by_threat in model_dicts.items()}
    return load_model, zoo


def weight_files(model_dir: Path, name: str, dataset: str, threat_model: str, members: int = 1) -> list[Path]:
    """Where RobustBench keeps a model's weights: one file, or one per member of an ensemble."""
    folder = Path(model_dir) / dataset / threat_model
    if members == 1:
        return [folder / f"{name}.pt"]
    return [folder / f"{name}.pt_m{i}.pt" for i in range(members)]


def fetch_command(name: str, model_dir: Path, dataset: str, threat_model: str) -> str:
    """The one line that downloads a model's weights into `model_dir` (RobustBench's own loader, network needed)."""
    call = f"load_model({name!r}, model_dir={str(model_dir)!r}, dataset={dataset!r}, threat_model={threat_model!r})"
    return f'python -c "from robustbench.utils import load_model; {call}"'


def load_robustbench(
    name: str, dataset: str, threat_model: str, model_dir: Path, download: bool
) -> tuple[nn.Module, list[Path]]:
    """The zoo's model in eval mode and the weight files it was read from; a name the zoo lacks, missing weights
    (without `download`) or weights that do not load are a UserError naming the file."""
    load_model, zoo = _zoo()
    models = zoo.get(dataset, {}).get(threat_model, {})
    if name not in models:
        close = difflib.get_close_matches(name, list(models), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"robustbench {name!r}: not in RobustBench's {dataset} {threat_model} zoo{hint}")
    ids = models[name]["gdrive_id"]
    if ids is None:
        if not download:
            raise UserError(
                f"robustbench {name!r}: served from the Hugging Face hub through timm, not from a local file; "
                "pass --download to fetch it"
            )
        files: list[Path] = []
    else:
        files = weight_files(model_dir, name, dataset, threat_model, len(ids) if isinstance(ids, list) else 1)
    missing = [f for f in files if not f.is_file()]
    if missing and not download:
        raise UserError(
            f"{missing[0]}: RobustBench weights of {name!r} not found; fetch them with --download, or: "
            + fetch_command(name, model_dir, dataset, threat_model)
        )
    try:
        model = load_model(name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model)
    except Exception as exc:  # noqa: BLE001 - the zoo's loader fails in many ways; each becomes one line
        where = files[0] if files else name
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{where}: RobustBench could not load {name!r} ({type(exc).__name__}: {first})") from None
    require_finite(model.state_dict(), files[0] if files else Path(name))
    return model.eval(), files
