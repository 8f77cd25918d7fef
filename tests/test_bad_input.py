"""The bad-input corpus: every case exits 2 with exactly one line on stderr that names the offending file, field
or flag, no traceback, and leaves every file as it was."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from robustcollapse.cli import main

GOOD = """\
name: s
dataset: digits
models:
  - name: m
    checkpoint: m.safetensors
tests:
  - kind: clean
"""
RECIPE = "    train: {backbone: {name: mlp, hidden: 16, depth: 1}, head: linear, epochs: 1, batch_size: 128}\n"


def swap(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


def trained_suite() -> str:
    return swap("    checkpoint: m.safetensors\n", RECIPE)


# (case id, files to write {name: text or bytes}, CLI arguments, what the one line must contain)
CASES: list[tuple[str, dict[str, str | bytes], list[str], str]] = [
    # --- suite files -------------------------------------------------------------------------------------------
    ("suite-missing", {}, ["eval", "nope.yaml"], "nope.yaml: file not found"),
    ("suite-is-folder", {"dir/x": ""}, ["eval", "dir"], "dir: is a folder, not a YAML file"),
    ("suite-not-utf8", {"s.yaml": b"name: \xff\xfe\n"}, ["eval", "s.yaml"], "s.yaml: not UTF-8 text"),
    ("suite-bad-yaml", {"s.yaml": "name: [unclosed\n"}, ["eval", "s.yaml"], "s.yaml:2 invalid YAML"),
    ("suite-top-list", {"s.yaml": "- a\n- b\n"}, ["eval", "s.yaml"], "s.yaml:1 expected a mapping"),
    ("suite-empty", {"s.yaml": ""}, ["eval", "s.yaml"], "s.yaml:1 expected a mapping"),
    ("duplicate-key", {"s.yaml": GOOD + "name: t\n"}, ["eval", "s.yaml"], "s.yaml:8 name: duplicate key"),
    (
        "duplicate-nested-key",
        {"s.yaml": swap("  - kind: clean\n", "  - kind: clean\n    kind: ood\n")},
        ["eval", "s.yaml"],
        "s.yaml:8 tests[0].kind: duplicate key (first given on line 7)",
    ),
    ("unknown-field", {"s.yaml": GOOD + "sed: 1\n"}, ["eval", "s.yaml"], "s.yaml:8 sed: unknown field; allowed:"),
    ("no-dataset", {"s.yaml": swap("dataset: digits\n", "")}, ["eval", "s.yaml"], "dataset: Field required"),
    ("unknown-dataset", {"s.yaml": swap("digits", "digts")}, ["eval", "s.yaml"], "s.yaml:2 dataset:"),
    ("huge-seed", {"s.yaml": GOOD + "seed: 1180591620717411303424\n"}, ["eval", "s.yaml"], "s.yaml:8 seed:"),
    ("negative-seed", {"s.yaml": GOOD + "seed: -1\n"}, ["eval", "s.yaml"], "s.yaml:8 seed: Input should be greater"),
    ("zero-batch", {"s.yaml": GOOD + "batch_size: 0\n"}, ["eval", "s.yaml"], "s.yaml:8 batch_size:"),
    (
        "no-models",
        {"s.yaml": "name: s\ndataset: digits\nmodels: []\ntests: [{kind: clean}]\n"},
        ["eval", "s.yaml"],
        "models:",
    ),
    ("markup-model-name", {"s.yaml": swap("name: m", "name: '[/]:x:'")}, ["eval", "s.yaml"], "models[0].name:"),
    (
        "duplicate-model",
        {"s.yaml": swap("tests:", "  - name: m\n    checkpoint: m.safetensors\ntests:")},
        ["eval", "s.yaml"],
        "s.yaml:6 models[1].name: duplicate model name 'm'",
    ),
    (
        "model-without-source",
        {"s.yaml": swap("    checkpoint: m.safetensors\n", "")},
        ["eval", "s.yaml"],
        "s.yaml:4 models[0]: give a `checkpoint:` path",
    ),
    (
        "unknown-backbone",
        {"s.yaml": trained_suite().replace("mlp", "mlpp")},
        ["eval", "s.yaml"],
        "models[0].train.backbone",
    ),
    (
        "unknown-head",
        {"s.yaml": trained_suite().replace("linear", "lnear")},
        ["eval", "s.yaml"],
        "models[0].train.head",
    ),
    (
        "bad-backbone-arg",
        {"s.yaml": trained_suite().replace("hidden: 16", "hiden: 16")},
        ["eval", "s.yaml"],
        "models[0].train.backbone.hiden",
    ),
    ("zero-epochs", {"s.yaml": trained_suite().replace("epochs: 1", "epochs: 0")}, ["eval", "s.yaml"], "train.epochs"),
    (
        "unknown-test-kind",
        {"s.yaml": swap("kind: clean", "kind: clear")},
        ["eval", "s.yaml"],
        "s.yaml:7 tests[0].kind:",
    ),
    ("test-without-kind", {"s.yaml": swap("kind: clean", "name: x")}, ["eval", "s.yaml"], "tests[0]: each test needs"),
    (
        "unknown-attack",
        {"s.yaml": swap("kind: clean", "kind: attack\n    attacks: [pgdd]\n    eps: [8/255]")},
        ["eval", "s.yaml"],
        "tests[0].attacks",
    ),
    (
        "bad-eps",
        {"s.yaml": swap("kind: clean", "kind: attack\n    attacks: [pgd]\n    eps: [eight]")},
        ["eval", "s.yaml"],
        "tests[0].eps",
    ),
    (
        "unknown-corruption",
        {"s.yaml": swap("kind: clean", "kind: corruption\n    corruptions: [gaussian_nose]")},
        ["eval", "s.yaml"],
        "tests[0].corruptions",
    ),
    (
        "severity-out-of-range",
        {"s.yaml": swap("kind: clean", "kind: corruption\n    severities: [6]")},
        ["eval", "s.yaml"],
        "tests[0].severities",
    ),
    (
        "two-corruption-tests-one-prefix",
        {"s.yaml": swap("kind: clean", "kind: corruption\n  - kind: corruption\n    source: npy")},
        ["eval", "s.yaml"],
        "s.yaml:8 tests[1]: its metrics could overwrite those of tests[0] (`shift/…` and `shift/…`; one key, one "
        "writer): give one of them another `prefix:`",
    ),
    (
        "unknown-detector",
        {"s.yaml": swap("kind: clean", "kind: ood\n    sets: [textures]\n    detectors: [msq]")},
        ["eval", "s.yaml"],
        "tests[0].detectors",
    ),
    (
        "heldout-set-without-heldout",
        {"s.yaml": swap("kind: clean", "kind: ood\n    sets: [heldout]")},
        ["eval", "s.yaml"],
        "tests[0].sets: the 'heldout' set needs",
    ),
    (
        "heldout-unknown-class",
        {"s.yaml": trained_suite() + "heldout: [99]\n"},
        ["eval", "s.yaml"],
        "s.yaml: heldout: classes [99]",
    ),
    (
        "heldout-every-class",
        {"s.yaml": trained_suite() + "heldout: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"},
        ["eval", "s.yaml"],
        "s.yaml: heldout: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] leaves 0 of digits's 10 classes",
    ),
    (
        "module-and-torchvision",
        {"s.yaml": swap("    checkpoint: m.safetensors\n", "    module: a.b:c\n    torchvision: resnet18\n")},
        ["eval", "s.yaml"],
        "models[0].torchvision: give one of `module:`, `torchvision:` or `timm:`, not several",
    ),
    (
        "unknown-torchvision",
        {"s.yaml": swap("    checkpoint: m.safetensors\n", "    torchvision: resnet19\n")},
        ["eval", "s.yaml"],
        "models[0].torchvision: unknown torchvision classifier 'resnet19'",
    ),
    # --- command-line flags ------------------------------------------------------------------------------------
    (
        "limit-zero",
        {"s.yaml": GOOD},
        ["eval", "s.yaml", "--limit", "0"],
        "robustcollapse eval: Invalid value for '--limit'",
    ),
    (
        "unknown-flag",
        {"s.yaml": GOOD},
        ["eval", "s.yaml", "--limt", "3"],
        "robustcollapse eval: No such option '--limt'",
    ),
    ("unknown-command", {}, ["evaluate"], "robustcollapse: No such command 'evaluate'"),
    ("bad-device", {"s.yaml": GOOD}, ["eval", "s.yaml", "--device", "tpu"], "--device 'tpu': allowed values"),
    (
        "json-is-the-suite",
        {"s.yaml": trained_suite()},
        ["eval", "s.yaml", "--json", "s.yaml"],
        "--json s.yaml: that is the suite file",
    ),
    (
        "json-is-a-checkpoint",
        {"s.yaml": trained_suite()},
        ["eval", "s.yaml", "--json", "w.safetensors"],
        "that is a model checkpoint",
    ),
    (
        "json-is-the-models-sidecar",
        {"s.yaml": trained_suite()},
        ["eval", "s.yaml", "--json", "results/models/s-m.json"],
        "checkpoint sidecar of model 'm'",
    ),
    (
        "json-under-a-file",
        {"s.yaml": trained_suite(), "f.txt": "x"},
        ["eval", "s.yaml", "--json", "f.txt/r.json"],
        "--json f.txt/r.json: cannot write there",
    ),
    (
        "json-is-a-folder",
        {"s.yaml": trained_suite(), "out/k": ""},
        ["eval", "s.yaml", "--json", "out"],
        "Invalid value for '--json': File 'out' is a directory",
    ),
    (
        "train-flags-incomplete",
        {},
        ["train", "--dataset", "digits"],
        "training from flags needs --backbone, --head too",
    ),
    (
        "train-epochs-without-flags",
        {"s.yaml": GOOD},
        ["train", "s.yaml", "--epochs", "3"],
        "--epochs/--seed/--out go with",
    ),
    (
        "train-unknown-head-flag",
        {},
        ["train", "--dataset", "digits", "--backbone", "mlp", "--head", "x"],
        "--head: unknown head 'x'",
    ),
    ("list-unknown-family", {}, ["list", "colours"], "unknown family 'colours'; known:"),
    ("corrupt-bad-severity", {}, ["corrupt", "digits", "--severities", "0"], "--severities: '0'; allowed"),
    # --- checkpoints -------------------------------------------------------------------------------------------
    ("checkpoint-missing", {"s.yaml": GOOD}, ["eval", "s.yaml"], "model 'm': checkpoint m.safetensors not found"),
    (
        "sidecar-missing",
        {"s.yaml": GOOD, "m.safetensors": b"x"},
        ["eval", "s.yaml"],
        "m.safetensors: checkpoint sidecar m.json is missing",
    ),
    (
        "sidecar-not-json",
        {"s.yaml": GOOD, "m.safetensors": b"x", "m.json": "{"},
        ["eval", "s.yaml"],
        "m.json: not valid JSON",
    ),
    (
        "sidecar-a-list",
        {"s.yaml": GOOD, "m.safetensors": b"x", "m.json": "[]"},
        ["eval", "s.yaml"],
        "m.json: a checkpoint sidecar is a JSON object",
    ),
    (
        "sidecar-wrong-format",
        {"s.yaml": GOOD, "m.safetensors": b"x", "m.json": '{"format": "pickle"}'},
        ["eval", "s.yaml"],
        "m.json: field 'format' is 'pickle'",
    ),
    ("weights-replaced", {"s.yaml": GOOD, "@checkpoint": "replace"}, ["eval", "s.yaml"], "m.safetensors: sha256"),
    (
        "weights-truncated",
        {"s.yaml": GOOD, "@checkpoint": "truncate"},
        ["eval", "s.yaml"],
        "m.safetensors: unreadable safetensors file",
    ),
    (
        "sidecar-bad-model",
        {"s.yaml": GOOD, "@checkpoint": "bad-model"},
        ["eval", "s.yaml"],
        "m.json: field model.backbone",
    ),
    (
        "checkpoint-other-dataset",
        {"s.yaml": swap("digits", "mnist5k"), "@checkpoint": "ok"},
        ["eval", "s.yaml"],
        "m.safetensors: model 'm' was trained on digits (10 classes: 0, 1, 2, 3, …; 1x8x8 images); the suite "
        "evaluates mnist5k (10 classes: 0, 1, 2, 3, …; 1x28x28 images): the image shapes differ",
    ),
    (
        "checkpoint-other-classes",
        {"s.yaml": GOOD + "heldout: [9]\n", "@checkpoint": "ok"},
        ["eval", "s.yaml"],
        "the classes differ",
    ),
    # --- data folders ------------------------------------------------------------------------------------------
    (
        "ondisk-missing",
        {"s.yaml": swap("digits", "cifar10"), "data/k": ""},
        ["eval", "s.yaml", "--data-root", "data"],
        "cifar10",
    ),
    # --- result documents --------------------------------------------------------------------------------------
    (
        "compare-missing",
        {"a.json": '{"schema_version": 1, "metrics": {}}'},
        ["compare", "a.json", "b.json"],
        "b.json: result document not found",
    ),
    ("compare-not-object", {"a.json": "[]", "b.json": "[]"}, ["compare", "a.json", "b.json"], "a.json: unreadable"),
    ("show-not-json", {"r.json": "{"}, ["show", "r.json"], "r.json: not valid JSON"),
    (
        "show-other-schema",
        {"r.json": '{"schema_version": 7, "metrics": {}}'},
        ["show", "r.json"],
        "r.json: schema_version 7",
    ),
    ("report-not-utf8", {"r.json": b'{"a": "\xff"}'}, ["report", "r.json"], "r.json: unreadable: not UTF-8 text"),
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A real digits checkpoint (weights + sidecar bytes) to corrupt in the checkpoint cases."""
    import torch

    from robustcollapse.config import Recipe, check_recipe
    from robustcollapse.data import load_dataset
    from robustcollapse.training.loop import train_to_checkpoint

    recipe = Recipe.model_validate(
        {"dataset": "digits", "backbone": {"name": "mlp", "hidden": 16, "depth": 1}, "head": "linear", "epochs": 1}
    )
    check_recipe(recipe, Path("<test>"), {}, ())
    folder = tmp_path_factory.mktemp("ckpt")
    train_to_checkpoint(recipe, load_dataset("digits"), folder / "m.safetensors", torch.device("cpu"))
    return {"weights": (folder / "m.safetensors").read_bytes(), "sidecar": (folder / "m.json").read_bytes()}


def materialise(where: Path, files: dict[str, str | bytes], checkpoint: dict[str, bytes]) -> None:
    for name, content in files.items():
        if name == "@checkpoint":
            weights, sidecar = checkpoint["weights"], json.loads(checkpoint["sidecar"])
            if content == "replace":
                weights = weights[:-4] + b"\x00\x00\x00\x00"
            if content == "truncate":
                weights = weights[:40]
                sidecar["sha256"] = hashlib.sha256(weights).hexdigest()
            if content == "bad-model":
                sidecar["model"]["backbone"] = 7
            (where / "m.safetensors").write_bytes(weights)
            (where / "m.json").write_text(json.dumps(sidecar))
            continue
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def snapshot(where: Path) -> dict[str, bytes]:
    return {str(p.relative_to(where)): p.read_bytes() for p in sorted(where.rglob("*")) if p.is_file()}


def test_the_corpus_is_large_and_unique():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("files", "args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, monkeypatch, checkpoint, files, args, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")  # long messages must not wrap into a second line
    materialise(tmp_path, files, checkpoint)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert snapshot(tmp_path) == before
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.lock"))


def test_markup_and_emoji_in_user_text_print_as_written(tmp_path, monkeypatch, checkpoint):
    """Rich markup (`[/]`, `[bold]`) or emoji codes (`:x:`) in a path or a test name print literally, and do not
    crash the tables (rich raised MarkupError on `[/]`)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "[bold]x:x:.yaml").write_text("- a\n")
    result = CliRunner().invoke(main, ["eval", "[bold]x:x:.yaml"])
    assert result.exit_code == 2 and "error: [bold]x:x:.yaml:1 expected a mapping" in result.stderr
    materialise(
        tmp_path,
        {"s.yaml": swap("kind: clean", "kind: clean\n    name: '[/]:x: [bold]t'"), "@checkpoint": "ok"},
        checkpoint,
    )
    result = CliRunner().invoke(main, ["eval", "s.yaml", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "[/]:x: [bold]t: clean" in result.output and "❌" not in result.output


def test_an_unwritable_output_fails_before_any_work(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("root writes everywhere")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ro").mkdir(mode=0o500)
    (tmp_path / "s.yaml").write_text(trained_suite())
    result = CliRunner().invoke(main, ["eval", "s.yaml", "--json", "ro/r.json"])
    assert result.exit_code == 2 and "cannot write there" in result.stderr
    assert not (tmp_path / "results").exists()  # nothing was trained
