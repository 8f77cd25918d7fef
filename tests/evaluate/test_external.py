"""Any PyTorch classifier through the suite: a factory by import path or a torchvision architecture."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision
from click.testing import CliRunner
from safetensors.torch import save_file

from robustcollapse import registry
from robustcollapse.cli import main
from robustcollapse.data.base import Dataset, Split
from robustcollapse.errors import UserError
from robustcollapse.models.external import load_state_dict_file

MODULE = """
from torch import nn

def build_mlp(in_features, hidden, depth, num_classes):
    layers = [nn.Flatten()]
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, num_classes))

def broken(**kwargs):
    raise ValueError("bad config")
"""

TESTS = """\
tests:
  - kind: clean
  - kind: collapse
  - kind: attack
    attacks: [fgsm, pgd]
    eps: [16/255]
    steps: 5
    n_examples: 60
    check_examples: 30
"""


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def trained_smoke(workdir: Path):
    """Our own smoke baseline, and the same weights under the external module's names (.safetensors, .pt)."""
    assert invoke("train", "suites/smoke.yaml", "--device", "cpu").exit_code == 0
    from safetensors.torch import load_file

    ours = load_file("results/models/smoke-baseline.safetensors")
    mapping = {"backbone.net.1": "1", "backbone.net.3": "3", "head.classifier": "5"}
    external = {}
    for key, value in ours.items():
        for old, new in mapping.items():
            if key.startswith(old + "."):
                external[new + key[len(old) :]] = value
    save_file(external, "ext.safetensors")
    torch.save(external, "ext.pt")
    Path("mymodels.py").write_text(MODULE)
    side = json.loads(Path("results/models/smoke-baseline.json").read_text())
    return side["model"]["mean"], side["model"]["std"]


def external_entry(name: str, weights: str, mean, std, features: str = "'5'") -> str:
    return textwrap.dedent(f"""\
      - name: {name}
        module: mymodels:build_mlp
        kwargs: {{in_features: 64, hidden: 64, depth: 2, num_classes: 10}}
        weights: {weights}
        normalize: {{mean: {list(mean)}, std: {list(std)}}}
        features: {features}
    """)


def test_external_module_gives_the_same_results_as_our_trained_network(trained_smoke):
    mean, std = trained_smoke
    models = "models:\n  - name: ours\n    checkpoint: results/models/smoke-baseline.safetensors\n"
    for name, weights in (("ext-st", "ext.safetensors"), ("ext-pt", "ext.pt")):
        models += textwrap.indent(external_entry(name, weights, mean, std), "  ")
    Path("ext.yaml").write_text(f"name: ext\ndataset: digits\n{models}{TESTS}")
    result = invoke("eval", "ext.yaml", "--device", "cpu")
    assert result.exit_code == 0, result.output
    doc = json.loads(Path("results/ext.json").read_text())
    ours = doc["metrics"]["ours"]
    for name in ("ext-st", "ext-pt"):
        theirs = doc["metrics"][name]
        assert set(theirs) == set(ours)
        for key, value in ours.items():
            assert theirs[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert doc["models"]["ext-st"]["model"]["features"] == "5"
    assert doc["models"]["ext-st"]["checkpoint"] == "ext.safetensors"
    assert len(doc["models"]["ext-pt"]["sha256"]) == 64

    shown = invoke("inspect", "ext.yaml", "ext-pt")
    assert shown.exit_code == 0
    assert "1x8x8" in shown.output and "5 (10, 64)" in shown.output and "64" in shown.output


def test_features_module_that_is_not_linear_gives_features_but_no_nc3(trained_smoke):
    mean, std = trained_smoke
    entry = external_entry("relu", "ext.pt", mean, std, features="'4'")  # input of the last ReLU: 64 dims
    Path("r.yaml").write_text(
        f"name: r\ndataset: digits\nmodels:\n{textwrap.indent(entry, '  ')}tests:\n  - kind: collapse\n"
    )
    assert invoke("eval", "r.yaml", "--device", "cpu").exit_code == 0
    doc = json.loads(Path("results/r.json").read_text())
    assert "nc/nc1" in doc["metrics"]["relu"] and "nc/nc3" not in doc["metrics"]["relu"]
    assert doc["details"]["relu"]["collapse"]["latent_dim"] == 64
    assert doc["details"]["relu"]["collapse"]["nc3"].startswith("not applicable")


def test_pickled_object_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save(Payload(), tmp_path / "evil.pt")
    with pytest.raises(UserError, match="not a plain state_dict; refused to unpickle"):
        load_state_dict_file(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.save({"a": 1}, tmp_path / "notensors.pt")
    with pytest.raises(UserError, match="not a state_dict of tensors"):
        load_state_dict_file(tmp_path / "notensors.pt")


def test_bad_entries_are_one_line_errors(trained_smoke):
    mean, std = trained_smoke
    cases = {
        "mymodels:nothere": "has no callable 'nothere'",
        "nomodule:build": "cannot import 'nomodule'",
        "mymodels:broken": "raised ValueError: bad config",
    }
    for path, message in cases.items():
        entry = external_entry("m", "ext.pt", mean, std).replace("mymodels:build_mlp", path)
        Path("b.yaml").write_text(f"name: b\ndataset: digits\nmodels:\n{textwrap.indent(entry, '  ')}{TESTS}")
        result = invoke("eval", "b.yaml", "--device", "cpu")
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1
    # weights for another architecture: names the first mismatching keys
    entry = external_entry("m", "ext.pt", mean, std).replace("hidden: 64", "hidden: 32")
    Path("b.yaml").write_text(f"name: b\ndataset: digits\nmodels:\n{textwrap.indent(entry, '  ')}{TESTS}")
    result = invoke("eval", "b.yaml", "--device", "cpu")
    assert result.exit_code == 2 and "size mismatch for 1.weight" in result.output
    Path("c.yaml").write_text("name: c\ndataset: digits\nmodels:\n  - name: t\n    torchvision: resnet81\n" + TESTS)
    result = invoke("eval", "c.yaml")
    assert (
        result.exit_code == 2
        and "c.yaml:5 models[0].torchvision: unknown torchvision classifier 'resnet81' (did you mean 'resnet18'?)"
        in result.output
    )
    Path("d.yaml").write_text(
        "name: d\ndataset: digits\nmodels:\n  - name: t\n    torchvision: resnet18\n"
        "    checkpoint: x.safetensors\n" + TESTS
    )
    result = invoke("eval", "d.yaml")
    assert result.exit_code == 2 and "d.yaml:6 models[0].checkpoint: our checkpoints and recipes do not mix" in (
        result.output
    )


@pytest.fixture
def rgb_dataset():
    """A tiny CIFAR-shaped data set (3x32x32, 10 classes), registered for this test only."""
    name = "test-rgb32"

    def load(data_root=None, download=False):
        gen = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (60, 3, 32, 32), generator=gen, dtype=torch.uint8)
        y = torch.arange(60) % 10
        return Dataset(
            name,
            Split(x[:40], y[:40]),
            Split(x[40:], y[40:]),
            [str(i) for i in range(10)],
            (0.5, 0.5, 0.5),
            (0.25, 0.25, 0.25),
        )

    if name not in registry.names("dataset"):
        registry.register("dataset", name)(load)
    return name


def test_torchvision_resnet18_on_cifar_shaped_input(workdir, rgb_dataset):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, "r18.safetensors")
    Path("tv.yaml").write_text(
        f"name: tv\ndataset: {rgb_dataset}\nbatch_size: 20\nmodels:\n  - name: tv\n    torchvision: resnet18\n"
        "    weights: r18.safetensors\n    normalize: {mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26]}\n"
        + TESTS.replace("n_examples: 60", "n_examples: 20").replace("check_examples: 30", "check_examples: 10")
    )
    result = invoke("eval", "tv.yaml", "--device", "cpu")
    assert result.exit_code == 0, result.output
    doc = json.loads(Path("results/tv.json").read_text())
    metrics = doc["metrics"]["tv"]
    assert 0 <= metrics["clean/acc"] <= 1 and "nc/nc3" in metrics and "adv/pgd-linf-16_255/acc" in metrics
    assert doc["details"]["tv"]["collapse"]["latent_dim"] == 512
    assert doc["models"]["tv"]["model"]["features"] == "fc"


def test_timm_model_with_local_weights_gives_timm_s_own_logits(workdir):
    """`timm: NAME` builds the architecture without the hub, loads the local weights and evaluates it: the suite's
    clean accuracy equals the accuracy of timm's model called directly on the same images."""
    timm = pytest.importorskip("timm")
    from robustcollapse.data import load_dataset

    torch.manual_seed(0)
    net = timm.create_model("resnet10t", pretrained=False, num_classes=10, in_chans=1).eval()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, "t.safetensors")
    Path("tm.yaml").write_text(
        "name: tm\ndataset: digits\nmodels:\n  - name: t\n    timm: resnet10t\n    weights: t.safetensors\n"
        "    normalize: {mean: [0.5], std: [0.25]}\ntests:\n  - kind: clean\n  - kind: collapse\n"
    )
    result = invoke("eval", "tm.yaml", "--device", "cpu")
    assert result.exit_code == 0, result.output
    doc = json.loads(Path("results/tm.json").read_text())
    test = load_dataset("digits").test
    with torch.inference_mode():
        logits = net((test.x.float() / 255 - 0.5) / 0.25).double()
    assert doc["metrics"]["t"]["clean/acc"] == pytest.approx(float((logits.argmax(1) == test.y).double().mean()))
    nll = float(torch.nn.functional.cross_entropy(logits, test.y))
    assert doc["metrics"]["t"]["clean/nll"] == pytest.approx(nll, rel=1e-5)
    assert doc["models"]["t"]["model"]["timm"] == "resnet10t" and doc["models"]["t"]["model"]["features"] == "fc"
    Path("bad.yaml").write_text("name: b\ndataset: digits\nmodels:\n  - name: t\n    timm: resnt10t\n" + TESTS)
    result = invoke("eval", "bad.yaml")
    assert result.exit_code == 2 and "bad.yaml:5 models[0].timm: unknown timm model 'resnt10t'" in result.output
