"""End-to-end through the command line (Click's CliRunner): exit codes, what the user sees, the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from robustcollapse.attacks import check_names
from robustcollapse.cli import main


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def smoke(smoke_run, workdir: Path) -> tuple[str, dict]:
    """The shared smoke run's output and document, its folder copied into `workdir`."""
    smoke_run.copy_to(workdir)
    return smoke_run.output, smoke_run.doc


def test_eval_prints_tables_and_writes_the_result_document(smoke, workdir):
    output, doc = smoke
    assert "clean: clean — accuracy and calibration (digits test)" in output
    assert "collapse: collapse — neural-collapse and binarity" in output
    assert "attack: attack — robust accuracy (digits test)" in output
    assert "corruption — baseline: accuracy per corruption × severity" in output
    assert "results: results/smoke.json" in output
    assert doc["schema_version"] == 2 and doc["status"] == "complete"
    assert set(doc["metrics"]) == {"baseline", "binary"}
    for model in ("baseline", "binary"):
        metrics = doc["metrics"][model]
        for key in (
            "clean/acc",
            "clean/nll",
            "clean/brier",
            "cal/ece",
            "cal/aece",
            "cal/mce",
            "nc/nc1",
            "nc/nc4",
            "nc/equinorm",
            "nc/equiangular",
            "bin/peak_sep",
            "bin/same_code",
        ):
            assert isinstance(metrics[key], float), key
        assert 0.8 < metrics["clean/acc"] <= 1.0
        assert 0 <= metrics["cal/ece"] <= 1
        for eps in ("8_255", "32_255"):
            worst = metrics[f"adv/worst-linf-{eps}/acc"]
            assert worst <= min(metrics[f"adv/fgsm-linf-{eps}/acc"], metrics[f"adv/pgd-linf-{eps}/acc"])
            assert worst <= metrics["adv/clean_acc"]
        assert list(doc["flags"][model]["attack"]["checks"]) == list(check_names())
        assert all(metrics[f"adv/flags/{c}"] in (0.0, 1.0) for c in check_names())
        assert 0 < metrics["shift/mean/acc"] <= metrics["shift/clean/acc"] + 0.05
        assert metrics["shift/defocus_blur/5/acc"] <= metrics["shift/defocus_blur/1/acc"]
        assert {"shift/gaussian_noise/5/acc", "shift/fog/1/ece", "shift/contrast/acc", "shift/extra/acc"} <= set(
            metrics
        )
        assert len(doc["models"][model]["sha256"]) == 64
        assert doc["details"][model]["clean"]["n"] == 360
    assert doc["env"]["seed"] == 0 and doc["env"]["torch"]
    assert (workdir / "results/models/smoke-binary.safetensors").is_file()
    assert not (workdir / "results/smoke.json.partial").exists()


def test_show_reprints_the_tables_of_a_saved_document(smoke, workdir):
    shown = invoke("show", "results/smoke.json")
    assert shown.exit_code == 0
    for title in ("clean: clean — accuracy and calibration (digits test)", "attack: attack — robust accuracy"):
        assert title in shown.output
    assert "│ acc " in shown.output and "status: complete; models: baseline, binary" in shown.output
    assert invoke("show", "nope.json").exit_code == 2


@pytest.mark.slow  # a second full smoke evaluation
def test_same_seed_gives_identical_metrics(smoke, workdir):
    _, first = smoke
    result = invoke("eval", "suites/smoke.yaml", "--device", "cpu", "--json", "again.json")
    assert result.exit_code == 0
    # models come from the cache now; retrain them from scratch and compare everything
    for model in ("baseline", "binary"):
        (workdir / f"results/models/smoke-{model}.safetensors").unlink()
    result = invoke("eval", "suites/smoke.yaml", "--device", "cpu", "--json", "retrained.json")
    assert result.exit_code == 0
    retrained = json.loads((workdir / "retrained.json").read_text())
    assert retrained["metrics"] == first["metrics"]
    assert [m["sha256"] for m in retrained["models"].values()] == [m["sha256"] for m in first["models"].values()]


def test_limit_restricts_the_evaluated_examples(workdir):
    result = invoke("eval", "suites/smoke.yaml", "--device", "cpu", "--limit", "50", "--json", "lim.json")
    assert result.exit_code == 0, result.output
    doc = json.loads((workdir / "lim.json").read_text())
    assert doc["details"]["binary"]["clean"]["n"] == 50
    assert doc["suite"]["limit"] == 50
    assert "first 50" in result.output


def test_malformed_yaml_is_one_line_exit_2(workdir):
    Path("bad.yaml").write_text(
        "name: x\ndataset: digits\nmodels:\n  - name: a\n"
        "    train: {backbone: mlp, head: binray}\ntests:\n  - kind: clean\n"
    )
    result = invoke("eval", "bad.yaml")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: bad.yaml:5 models[0].train.head: unknown head 'binray' (did you mean 'binary'?); "
        "known: binary, etf, haframe, linear, linear-pen, nonlinear-pen, spherical"
    )
    assert "Traceback" not in result.output


def test_missing_data_set_is_one_line_naming_the_path(workdir, tmp_path):
    Path("c.yaml").write_text(
        "name: c\ndataset: cifar10\nmodels:\n  - name: a\n"
        "    train: {backbone: resnet18, head: linear}\ntests:\n  - kind: clean\n"
    )
    result = invoke("eval", "c.yaml", "--data-root", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line
    assert line.startswith("error: cifar10: not found under ") and "nowhere" in line and "--download" in line
    result = invoke("eval", "c.yaml")
    assert result.exit_code == 2 and "pass --data-root DIR" in result.output


def test_unknown_device_and_missing_file(workdir):
    assert invoke("eval", "suites/smoke.yaml", "--device", "tpu").exit_code == 2
    result = invoke("eval", "nope.yaml")
    assert result.exit_code == 2 and result.output.strip() == "error: nope.yaml: file not found"


def test_list_prints_every_family():
    result = invoke("list")
    assert result.exit_code == 0
    for name in (
        "smallcnn",
        "resnet18",
        "mlp",
        "linear",
        "binary",
        "mnist5k",
        "digits",
        "cifar10",
        "clean",
        "collapse",
    ):
        assert name in result.output
    assert invoke("list", "heads").exit_code == 0
    assert invoke("list", "gizmos").exit_code == 2


def test_train_from_flags_and_stale_checkpoint_detection(smoke_run, workdir):
    result = invoke(
        "train", "--dataset", "digits", "--backbone", "mlp", "--head", "binary", "--epochs", "2", "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    sidecar = json.loads(Path("results/models/digits-mlp-binary-s0.json").read_text())
    assert sidecar["recipe"]["epochs"] == 2 and len(sidecar["history"]) == 2
    assert {"epoch", "loss", "train_acc", "test_acc"} <= set(sidecar["history"][0])
    bad = invoke("train", "--dataset", "digits", "--backbone", "mlp", "--head", "binray")
    assert bad.exit_code == 2 and "unknown head 'binray'" in bad.output
    # the smoke pair trained (the shared run's checkpoints), then change the recipe: eval must refuse them as stale
    smoke_run.copy_to(workdir)
    text = Path("suites/smoke.yaml").read_text().replace("epochs: 8", "epochs: 9")
    Path("suites/smoke.yaml").write_text(text)
    stale = invoke("eval", "suites/smoke.yaml", "--device", "cpu")
    assert stale.exit_code == 2
    assert "epochs: checkpoint has 8, suite asks 9" in stale.output
    # a checkpoint stored before a recipe field existed still matches at that field's default
    side_path = Path("results/models/smoke-baseline.json")
    side = json.loads(side_path.read_text())
    del side["recipe"]["heldout"]
    del side["recipe"]["backbone"]["args"]["depth"]  # a component argument added later, at its default
    side["recipe"]["epochs"] = 9
    side_path.write_text(json.dumps(side))
    partly = invoke("eval", "suites/smoke.yaml", "--device", "cpu")
    assert partly.exit_code == 2  # the baseline now matches; the binary model is still stale
    assert "smoke-binary.safetensors: model 'binary'" in partly.output and "smoke-baseline" not in partly.output
    assert invoke("train", "suites/smoke.yaml", "--force", "--device", "cpu").exit_code == 0
    assert invoke("eval", "suites/smoke.yaml", "--device", "cpu", "--tests", "clean").exit_code == 0


def test_eval_strict_exits_3_when_a_check_fires(workdir):
    # the smoke binary model's softmax is diffuse: the untargeted PGD row is marked; the baseline trips nothing
    suite = (workdir / "suites/smoke.yaml").read_text()
    models = suite.split("tests:")[0]
    attack = "tests:\n  - kind: attack\n    attacks: [pgd]\n    eps: [32/255]\n    n_examples: 60\n"
    (workdir / "suites/one.yaml").write_text(models + attack)
    (workdir / "suites/twenty.yaml").write_text(models.split("  - name: binary")[0] + attack)  # the baseline only
    lax = invoke("eval", "suites/one.yaml", "--device", "cpu", "--json", "one.json")
    assert lax.exit_code == 0 and "honesty checks fired" in lax.output and "⚠" in lax.output
    doc = json.loads((workdir / "one.json").read_text())
    mark = doc["flags"]["binary"]["attack"]["numbers"]["adv/pgd-linf-32_255/acc"]
    assert mark["trusted"] is False and mark["why"].startswith("diffuse_softmax")
    strict = CliRunner().invoke(main, ["eval", "suites/one.yaml", "--device", "cpu", "--strict"])
    assert strict.exit_code == 3 and "diffuse_softmax" in strict.output
    calm = invoke("eval", "suites/twenty.yaml", "--device", "cpu", "--strict", "--json", "twenty.json")
    assert calm.exit_code == 0 and "honesty checks: none fired" in calm.output
