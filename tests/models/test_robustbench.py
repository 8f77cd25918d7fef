"""RobustBench's zoo in a suite: a zoo architecture with seeded random weights, saved in RobustBench's own layout,
loads through the suite exactly as `robustbench.utils.load_model` loads it (same logits bit for bit: no second
normalisation), and runs end to end on stand-in CIFAR-10 in the real on-disk format. Offline throughout."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from robustcollapse.cli import main
from robustcollapse.config import load_suite
from robustcollapse.data import load_dataset, to_float
from robustcollapse.evaluate.api import evaluate_file
from robustcollapse.models.robustbench import _zoo, weight_files
from robustcollapse.models.zoo import external_model
from tests.standins import write_cifar10

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("robustbench") is None, reason="robustbench not installed (the [robustbench] extra)"
)

NAME = "Wong2020Fast"  # a PreAct ResNet-18 in the CIFAR-10 Linf zoo: small enough for a CPU test


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stand-in CIFAR-10 on disk, the zoo model with seeded random weights in `models/cifar10/Linf/NAME.pt`, and a
    suite with a clean and an attack test."""
    root = tmp_path_factory.mktemp("rb")
    write_cifar10(root / "data", n_train=50, n_test=40)
    _, zoo = _zoo()
    torch.manual_seed(0)
    net = zoo["cifar10"]["Linf"][NAME]["model"]()
    with torch.no_grad():  # BatchNorm statistics away from (0, 1), so normalising twice would change the logits
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    (weights,) = weight_files(root / "models", NAME, "cifar10", "Linf")
    weights.parent.mkdir(parents=True)
    torch.save(net.state_dict(), weights)
    suite = {
        "name": "zoo",
        "dataset": "cifar10",
        "batch_size": 20,
        "models": [{"name": "wong", "robustbench": NAME}],
        "tests": [
            {"kind": "clean"},
            {"kind": "attack", "attacks": ["fgsm"], "eps": ["8/255"], "n_examples": 8, "check_examples": 8},
        ],
    }
    (root / "suites").mkdir()
    (root / "suites" / "zoo.yaml").write_text(yaml.safe_dump(suite))
    return {"root": root, "data": root / "data", "models": root / "models", "weights": weights}


def zoo_logits(world: dict[str, Path], x: torch.Tensor) -> torch.Tensor:
    load_model, _ = _zoo()
    model = load_model(NAME, model_dir=str(world["models"]), dataset="cifar10", threat_model="Linf")
    with torch.no_grad():
        return model(x)


def test_the_suite_model_gives_robustbench_s_own_logits(world):
    suite = load_suite(world["root"] / "suites" / "zoo.yaml")
    entry = suite.models[0]
    assert (entry.dataset, entry.threat_model) == ("cifar10", "Linf")  # defaults: the suite's data, its attack norm
    data = load_dataset("cifar10", world["data"])
    model, meta = external_model(entry, data, suite.folder, model_dir=world["models"])
    x = to_float(data.test.x[:16])
    with torch.no_grad():
        ours = model(x)
    assert torch.equal(ours, zoo_logits(world, x))  # [0, 1] in, the zoo normalises: nothing added on our side
    assert meta["sha256"] == hashlib.sha256(world["weights"].read_bytes()).hexdigest()
    assert meta["model"]["robustbench"] == {"name": NAME, "dataset": "cifar10", "threat_model": "Linf"}
    assert model.features_name == "linear"  # the zoo's last nn.Linear: NC3 and the classifier metrics apply


@pytest.mark.slow  # a whole suite run on a WideResNet
def test_a_suite_with_a_robustbench_model_runs_end_to_end(world, monkeypatch):
    monkeypatch.chdir(world["root"])
    doc, _ = evaluate_file(
        "suites/zoo.yaml", "zoo.json", device="cpu", data_root=world["data"], model_dir=world["models"], show=False
    )
    data = load_dataset("cifar10", world["data"])
    expected = int((zoo_logits(world, to_float(data.test.x)).argmax(1) == data.test.y).sum()) / len(data.test.y)
    assert doc["metrics"]["wong"]["clean/acc"] == pytest.approx(expected, abs=1e-12)
    record = doc["models"]["wong"]
    assert record["sha256"] == hashlib.sha256(world["weights"].read_bytes()).hexdigest()
    assert record["model"]["robustbench"]["threat_model"] == "Linf"
    assert 0 <= doc["metrics"]["wong"]["adv/fgsm-linf-8_255/acc"] <= doc["metrics"]["wong"]["adv/clean_acc"]


def test_missing_weights_are_one_line_naming_the_file_and_the_fetch_command(world, monkeypatch, tmp_path):
    monkeypatch.chdir(world["root"])
    args = ["eval", "suites/zoo.yaml", "--device", "cpu", "--data-root", str(world["data"])]
    done = CliRunner().invoke(main, [*args, "--model-dir", str(tmp_path / "empty"), "--json", "x.json"])
    assert done.exit_code == 2
    (line,) = done.output.strip().splitlines()
    expected = tmp_path / "empty" / "cifar10" / "Linf" / f"{NAME}.pt"
    assert str(expected) in line and "--download" in line
    assert f"load_model('{NAME}', model_dir='{tmp_path / 'empty'}', dataset='cifar10', threat_model='Linf')" in line
    assert not (world["root"] / "x.json").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"normalize": {"mean": [0.5] * 3, "std": [0.2] * 3}}, "normalise inside"),
        ({"weights": "w.pt"}, "--model-dir"),
        ({"threat_model": "Linf2"}, "threat_model"),
        ({"torchvision": "resnet18"}, "not several"),
    ],
)
def test_bad_robustbench_entries_are_refused_before_any_work(world, tmp_path, extra, message):
    suite = yaml.safe_load((world["root"] / "suites" / "zoo.yaml").read_text())
    suite["models"][0] |= extra
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(suite))
    done = CliRunner().invoke(main, ["eval", str(path), "--device", "cpu", "--data-root", str(world["data"])])
    assert done.exit_code == 2, done.output
    assert message in done.output and len(done.output.strip().splitlines()) == 1


def test_a_name_the_zoo_lacks_is_refused_with_the_closest_name(world, tmp_path):
    suite = yaml.safe_load((world["root"] / "suites" / "zoo.yaml").read_text())
    suite["models"][0]["robustbench"] = "Wong2020Fst"
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(suite))
    data = load_dataset("cifar10", world["data"])
    loaded = load_suite(tmp_path / "typo.yaml")
    with pytest.raises(Exception, match="did you mean 'Wong2020Fast'"):
        external_model(loaded.models[0], data, loaded.folder, model_dir=world["models"])


def test_the_shipped_zoo_suite_names_models_the_zoo_has():
    suite = load_suite(Path(__file__).parents[2] / "suites" / "robustbench.yaml")
    _, zoo = _zoo()
    for entry in suite.models:
        assert (entry.dataset, entry.threat_model) == ("cifar10", "Linf")
        assert zoo["cifar10"]["Linf"][entry.robustbench]["gdrive_id"] is not None, entry.name  # a local file
