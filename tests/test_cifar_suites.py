"""The CIFAR workflow end to end on CPU: stand-ins in torchvision's on-disk formats (natural photographs, not noise),
CIFAR-10-C made by `corrupt --export`, then `robustcollapse eval suites/cifar.yaml` (and cifar100.yaml) with
--limit and --epochs 1. Every test kind of the suite produces its metrics, the report renders, the document is
complete and passes the gate against itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from standins import write_cifar10, write_cifar100, write_svhn

from robustcollapse.cli import main

# end-to-end runs of the CIFAR suites on generated on-disk data: minutes; the full test command runs them
pytestmark = pytest.mark.slow


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_cifar_suite_end_to_end(workdir):
    root = workdir / "data"
    write_cifar10(root, n_train=100, n_test=60)
    write_cifar100(root, n_train=100, n_test=40)
    write_svhn(root)
    export = ("corrupt", "cifar10", "--export", str(root / "CIFAR-10-C"), "--data-root", str(root), "--device", "cpu")
    invoke(*export, "--limit", "3")  # the images the eval's --limit 3 reads
    # every test kind; of the three attack tests the L2 one (AutoAttack's official budgets are minutes on a CPU),
    # without its honesty checks: on a CPU ResNet-18 they are 65 s of this test (1,000 Square queries on each
    # survivor), and tests/attacks holds them to their findings on small models
    suite = yaml.safe_load(Path("suites/cifar.yaml").read_text())
    (attack_l2,) = [t for t in suite["tests"] if t.get("name") == "attack-l2"]
    attack_l2["checks"] = False
    Path("suites/cifar.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    kept = "clean,collapse,attack-l2,corruption,cifar10-c,ood"
    run = ("eval", "suites/cifar.yaml", "--data-root", str(root), "--limit", "3", "--epochs", "1", "--device", "cpu")
    run = (*run, "--tests", kept)
    result = invoke(*run)
    doc = json.loads(Path("results/cifar.json").read_text())
    assert doc["status"] == "complete" and doc["overrides"] == {"limit": 3, "epochs": 1, "tests": kept.split(",")}
    for model in ("baseline", "binary"):
        m = doc["metrics"][model]
        assert set(doc["timings"][model]) == set(kept.split(","))
        for key in (
            "clean/acc",
            "cal/ece",
            "cal/ts/ece",
            "cal/temperature",
            "nc/nc1",
            "adv-l2/pgdl2-l2-0.5/acc",
            "adv-l2/apgd-ce-l2-0.25/acc",
            "shift/glass_blur/5/acc",
            "shift/mean/ts/ece",
            "cifar10c/glass_blur/5/acc",
            "cifar10c/mean/acc",
            "ood/svhn/energy/auroc",
            "ood/cifar100/msp/auroc",
            "ood/textures/msp/auroc",
        ):
            assert isinstance(m[key], float), (model, key)
        assert not [k for k in m if k.startswith("adv-l2/flags/")]  # the derived suite's checks: false took
        assert doc["models"][model]["temperature"]["n"] == 10  # 10 % of the 100 training images, held out
        assert len(doc["models"][model]["history"]) == 1
        assert doc["details"][model]["ood"]["n_ood"] == dict.fromkeys(
            ["cifar100", "svhn", "textures", "gaussian_noise", "uniform_noise"], 3
        )  # --limit bounds the OOD sets as well as the in-distribution images
    # the exported files are the generated corruptions: the same accuracies from both sources
    base = doc["metrics"]["baseline"]
    for c in ("gaussian_noise", "glass_blur", "frost", "spatter"):
        assert base[f"cifar10c/{c}/3/acc"] == base[f"shift/{c}/3/acc"], c
    assert "results: results/cifar.json" in result.output
    invoke("report", "results/cifar.json", "--out", "report")
    assert Path("report/index.html").stat().st_size > 10_000
    invoke("compare", "results/cifar.json", "results/cifar.json")


def test_cifar100_suite_end_to_end(workdir):
    """The fine-label linear model and the superclass-trained one cover every test kind of cifar100.yaml."""
    root = workdir / "data"
    write_cifar100(root, n_train=200, n_test=60)
    args = (
        "--data-root",
        str(root),
        "--limit",
        "40",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--models",
        "linear,superclass",
    )
    invoke("eval", "suites/cifar100.yaml", *args)
    doc = json.loads(Path("results/cifar100.json").read_text())
    assert doc["status"] == "complete" and set(doc["metrics"]) == {"linear", "superclass"}
    assert set(doc["timings"]["linear"]) == {"clean", "collapse", "hierarchy", "finegrained"}
    for model, metrics in doc["metrics"].items():
        for key in ("clean/acc", "nc/nc1", "fine/kmeans_acc", "fine/coarse_acc"):
            assert isinstance(metrics[key], float), (model, key)
    linear = doc["metrics"]["linear"]
    assert isinstance(linear["hier/mistake_severity"], float) and isinstance(linear["hier/dist@5"], float)
    assert doc["models"]["superclass"]["model"]["num_classes"] == 20  # trained on the 20 superclasses
