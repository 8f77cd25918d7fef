"""`robustcollapse.evaluate` from Python: the README's example runs, and equals the command line on the same model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import robustcollapse
from robustcollapse.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    marker = text.index("<!-- api-example")
    return re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)


def test_the_readme_example_runs_and_gives_real_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102 - our own README's example
    doc = namespace["doc"]
    metrics = doc["metrics"]["model"]
    assert doc["status"] == "complete" and 0.85 < metrics["clean/acc"] <= 1
    assert metrics["adv/pgd-linf-8_255/acc"] <= metrics["adv/fgsm-linf-8_255/acc"] + 0.02
    assert "nc/nc1" in metrics
    assert json.loads(Path("results/python.json").read_text())["metrics"] == json.loads(json.dumps(doc["metrics"]))
    assert "attack: attack — robust accuracy" in capsys.readouterr().out  # the same tables as the CLI


def test_the_api_equals_the_command_line_on_the_same_module(tmp_path, monkeypatch):
    """The same weights through a `module:` suite entry and through evaluate(): the same metrics."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    Path("netdef.py").write_text(
        "from torch import nn\n\ndef build():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))\n"
    )
    import netdef
    from safetensors.torch import save_file

    torch.manual_seed(1)
    model = netdef.build()
    save_file(model.state_dict(), "w.safetensors")
    tests = [{"kind": "clean"}, {"kind": "ood", "sets": ["gaussian_noise"], "detectors": ["msp", "energy"]}]
    normalize = ([0.3], [0.2])
    doc = robustcollapse.evaluate(
        {"m": model}, tests, data="digits", normalize=normalize, json_path="api.json", show=False
    )
    Path("s.yaml").write_text(
        "name: s\ndataset: digits\nmodels:\n  - name: m\n    module: netdef:build\n    weights: w.safetensors\n"
        "    normalize: {mean: [0.3], std: [0.2]}\ntests:\n  - kind: clean\n"
        "  - kind: ood\n    sets: [gaussian_noise]\n    detectors: [msp, energy]\n"
    )
    result = CliRunner().invoke(main, ["eval", "s.yaml", "--device", "cpu", "--json", "cli.json"])
    assert result.exit_code == 0, result.output
    cli = json.loads(Path("cli.json").read_text())["metrics"]["m"]
    assert cli.keys() == doc["metrics"]["m"].keys()
    for key, value in cli.items():
        assert doc["metrics"]["m"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_retraining_an_in_memory_model_invalidates_its_cached_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    first = robustcollapse.evaluate(model, [{"kind": "clean"}], data="digits", show=False)["metrics"]["model"]
    with torch.no_grad():
        model[1].weight.mul_(3.0)
    second = robustcollapse.evaluate(model, [{"kind": "clean"}], data="digits", show=False)["metrics"]["model"]
    assert second["clean/nll"] != first["clean/nll"]


def test_bad_arguments_are_clear_errors():
    from robustcollapse.errors import UserError

    with pytest.raises(UserError, match="give `data`"):
        robustcollapse.evaluate(nn.Linear(2, 2), [{"kind": "clean"}])
    with pytest.raises(UserError, match="models must be an nn.Module"):
        robustcollapse.evaluate({"a": "not a module"}, [{"kind": "clean"}], data="digits")
    with pytest.raises(
        UserError, match=r"<evaluate>:1 tests\[0\].kind: unknown test 'clear' \(did you mean 'clean'\?\)"
    ):
        robustcollapse.evaluate(nn.Linear(2, 2), [{"kind": "clear"}], data="digits")
