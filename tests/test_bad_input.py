"""The bad-input corpus: every case exits 2 with exactly one line on stderr that names the offending file, field
or flag, no traceback, and leaves every file as it was."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
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


def document(**fields: object) -> str:
    """A complete result document of model m, with `fields` replaced."""
    doc = {
        "schema_version": 1,
        "status": "complete",
        "suite": {"name": "s", "dataset": "digits"},
        "env": {},
        "models": {"m": {}},
        "metrics": {"m": {"clean/acc": 0.9}},
        "details": {},
        "flags": {},
        "timings": {"m": {"clean": 1.0}},
        "warnings": [],
        "overrides": {},
    }
    return json.dumps({**doc, **fields})


def with_checkpoint(path: str) -> str:
    """The trained suite whose model also names the checkpoint it will train into."""
    return trained_suite().replace(RECIPE, RECIPE + f"    checkpoint: {path}\n")


def laughs(levels: int = 8) -> str:
    """A 'billion laughs' YAML: each alias level holds ten of the previous one (10**levels strings in all)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


SIDECAR = '{"format": "robustcollapse-checkpoint"}'
DEEP = "[" * 100_000 + "]" * 100_000
TRAIN = ["train", "--dataset", "digits", "--backbone", "mlp", "--head", "linear"]
RESERVED = "are the tool's own resume and temporary files"
EXPORT = ["--limit", "2", "--corruptions", "gaussian_noise", "--severities", "1"]
NPY_SUITE = swap(
    "kind: clean", "kind: corruption\n    source: npy\n    corruptions: [gaussian_noise]\n    severities: [1]"
)
HALF_EXPORT = {
    "s.yaml": NPY_SUITE,
    "@checkpoint": "ok",
    "data/digits-C/labels.npy": "@labels",
    "data/digits-C/gaussian_noise.npy": "@corrupted",
}


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
        "models[0].torchvision: give one of `module:`, `torchvision:`, `timm:` or `robustbench:`, not several",
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
    # --- outputs: one guard for every path written (issue 25) ------------------------------------------------
    (
        "json-reserved-interrupted",
        {"s.yaml": trained_suite()},
        ["eval", "s.yaml", "--json", "r.interrupted.json"],
        RESERVED,
    ),
    ("json-reserved-partial", {"s.yaml": trained_suite()}, ["eval", "s.yaml", "--json", "r.json.partial"], RESERVED),
    ("json-reserved-shard", {"s.yaml": trained_suite()}, ["eval", "s.yaml", "--json", "r.json.shard-0-of-2"], RESERVED),
    ("json-reserved-lock", {"s.yaml": trained_suite()}, ["eval", "s.yaml", "--json", "r.json.lock"], RESERVED),
    (
        "suite-named-like-a-resume-file",
        {"s.yaml": trained_suite().replace("name: s\n", "name: tiny.interrupted\n")},
        ["eval", "s.yaml"],
        "--json results/tiny.interrupted.json: names ending in",
    ),
    (
        "json-is-a-yaml",
        {"s.yaml": trained_suite(), "o.yaml": "a: 1\n"},
        ["eval", "s.yaml", "--json", "o.yaml"],
        "--json o.yaml: that is a YAML file",
    ),
    (
        "json-over-another-sidecar",
        {"s.yaml": trained_suite(), "x.safetensors": b"x", "x.json": SIDECAR},
        ["eval", "s.yaml", "--json", "x.json"],
        "--json x.json: that is a checkpoint sidecar; the results document would overwrite it",
    ),
    (
        "json-over-a-resume-state",
        {"s.yaml": trained_suite(), "st.json": '{"fingerprint": "a"}'},
        ["eval", "s.yaml", "--json", "st.json"],
        "that is a resume state",
    ),
    ("merge-json-reserved", {"s.yaml": trained_suite()}, ["merge", "s.yaml", "--json", "r.json.partial"], RESERVED),
    (
        "train-out-onto-a-suite",
        {"s.yaml": GOOD},
        [*TRAIN, "--out", "s.yaml"],
        "s.yaml: a checkpoint's weights file ends",
    ),
    ("train-out-json", {}, [*TRAIN, "--out", "w.json"], "w.json: a checkpoint's weights file ends in .safetensors"),
    ("train-out-reserved", {}, [*TRAIN, "--out", "w.pending"], "w.pending: a checkpoint's weights file ends in"),
    (
        "train-out-beside-a-results-document",
        {"R.json": document()},
        [*TRAIN, "--out", "R.safetensors"],
        "R.json: that is a results document; the checkpoint sidecar would overwrite it",
    ),
    (
        "train-out-a-folder",
        {"d.safetensors/k": ""},
        [*TRAIN, "--out", "d.safetensors"],
        "'d.safetensors' is a directory",
    ),
    (
        "suite-checkpoint-over-a-results-document",
        {"s.yaml": with_checkpoint("results/X.safetensors"), "results/X.json": document()},
        ["eval", "s.yaml"],
        "s.yaml: models[0].checkpoint results/X.json: that is a results document",
    ),
    (
        "suite-checkpoint-not-safetensors",
        {"s.yaml": with_checkpoint("w.pt")},
        ["eval", "s.yaml"],
        "s.yaml: models[0].checkpoint w.pt: a checkpoint's weights file ends in .safetensors",
    ),
    (
        "suite-checkpoint-a-folder",
        {"s.yaml": with_checkpoint("d.safetensors"), "d.safetensors/k": ""},
        ["eval", "s.yaml"],
        "models[0].checkpoint d.safetensors: is a folder",
    ),
    (
        "suite-checkpoint-sidecar-is-the-output",
        {"s.yaml": with_checkpoint("results/s.safetensors")},
        ["eval", "s.yaml"],
        "--json results/s.json: that is the checkpoint sidecar of model 'm'",
    ),
    (
        "report-out-a-file",
        {"r.json": document(), "f.txt": "x"},
        ["report", "r.json", "--out", "f.txt"],
        "'f.txt' is a file",
    ),
    (
        "report-page-a-folder",
        {"r.json": document(), "o/index.html/k": ""},
        ["report", "r.json", "--out", "o"],
        "--out o/index.html: is a folder",
    ),
    (
        "corrupt-out-the-source",
        {"img.png": "@png"},
        ["corrupt", "img.png", "--out", "img.png"],
        "--out img.png: that is the source image",
    ),
    ("corrupt-out-a-suite", {}, ["corrupt", "digits", "--out", "s.yaml"], "--out s.yaml: that is a YAML file"),
    ("export-a-file", {"f.txt": "x"}, ["corrupt", "digits", "--export", "f.txt", *EXPORT], "'f.txt' is a file"),
    (
        "export-over-foreign-files",
        {"d/data.npy": b"x"},
        ["corrupt", "digits", "--export", "d", *EXPORT],
        "--export d: holds files not written by `corrupt --export` (no manifest.json)",
    ),
    # --- numbers read: tolerances, suite fields, weights, sidecars, documents ---------------------------------
    *[
        (
            f"tolerance-{name}",
            {"a.json": document(), "b.json": document(), "t.yaml": f"clean/*: {value}\n"},
            ["compare", "a.json", "b.json", "--tolerances", "t.yaml"],
            f"t.yaml:1 tolerances.clean/*: {message}",
        )
        for name, value, message in (
            ("nan", ".nan", "Input should be a finite number"),
            ("inf", ".inf", "Input should be a finite number"),
            ("negative", "-0.1", "Input should be greater than or equal to 0"),
            ("text", "lots", "Input should be a valid number"),
        )
    ],
    *[
        (
            f"document-tolerance-{name}",
            {
                "a.json": document(),
                "b.json": document(suite={"dataset": "digits", "regression": {"tolerances": {"clean/acc": value}}}),
            },
            ["compare", "a.json", "b.json"],
            f"b.json: suite.regression.tolerances.clean/acc: {message}",
        )
        for name, value, message in (
            ("nan", float("nan"), "Input should be a finite number"),
            ("negative", -1, "Input should be greater than or equal to 0"),
        )
    ],
    (
        "suite-tolerance-nan",
        {"s.yaml": GOOD + "regression:\n  tolerances: {clean/acc: .nan}\n"},
        ["eval", "s.yaml"],
        "s.yaml:9 regression.tolerances.clean/acc: Input should be a finite number",
    ),
    (
        "suite-tolerance-negative",
        {"s.yaml": GOOD + "regression:\n  tolerances: {clean/acc: -0.5}\n"},
        ["eval", "s.yaml"],
        "regression.tolerances.clean/acc: Input should be greater than or equal to 0",
    ),
    *[
        (f"suite-field-{name}", {"s.yaml": text}, ["eval", "s.yaml"], message)
        for name, text, message in (
            (
                "attack-examples-absurd",
                swap("kind: clean", "kind: attack\n    attacks: [fgsm]\n    eps: [0.1]\n    n_examples: 1000000000000"),
                "s.yaml:10 tests[0].n_examples: Input should be less than or equal to 100000000",
            ),
            (
                "eps-inf",
                swap("kind: clean", "kind: attack\n    attacks: [fgsm]\n    eps: [.inf]"),
                "tests[0].eps[0]: Input",
            ),
            (
                "eps-nan",
                swap("kind: clean", "kind: attack\n    attacks: [fgsm]\n    eps: [.nan]"),
                "tests[0].eps[0]: Input",
            ),
            ("bins-zero", swap("kind: clean", "kind: clean\n    bins: 0"), "tests[0].bins: Input should be greater"),
            (
                "bins-absurd",
                swap("kind: clean", "kind: clean\n    bins: 1000000000"),
                "tests[0].bins: Input should be less",
            ),
            (
                "epochs-absurd",
                trained_suite().replace("epochs: 1", "epochs: 1000000000"),
                "models[0].train.epochs: Input",
            ),
            (
                "batch-size-absurd",
                trained_suite().replace("batch_size: 128", "batch_size: 1000000000000"),
                "models[0].train.batch_size: Input should be less",
            ),
            ("lr-negative", trained_suite().replace("epochs: 1", "epochs: 1, lr: -0.1"), "models[0].train.lr: Input"),
            (
                "lr-nan",
                trained_suite().replace("epochs: 1", "epochs: 1, lr: .nan"),
                "train.lr: Input should be a finite",
            ),
            ("batch-size-inf", GOOD + "batch_size: .inf\n", "s.yaml:8 batch_size: Input should be a finite number"),
            (
                "corruption-examples-absurd",
                swap("kind: clean", "kind: corruption\n    n_examples: 1000000000000"),
                "tests[0].n_examples: Input should be less than or equal to 100000000",
            ),
            (
                "energy-t-zero",
                swap("kind: clean", "kind: ood\n    sets: [gaussian_noise]\n    energy_t: 0"),
                "tests[0].energy_t: Input should be greater than 0",
            ),
            (
                "knn-k-zero",
                swap("kind: clean", "kind: ood\n    sets: [gaussian_noise]\n    knn_k: 0"),
                "tests[0].knn_k: Input should be greater than or equal to 1",
            ),
            (
                "ridge-negative",
                swap("kind: clean", "kind: reliability\n    ridge: -1"),
                "tests[0].ridge: Input should be",
            ),
        )
    ],
    (
        "reference-unknown",
        {"s.yaml": GOOD + "reference: z\n"},
        ["eval", "s.yaml"],
        "s.yaml:8 reference: unknown model 'z'",
    ),
    ("confidence-above-1", {"s.yaml": GOOD + "confidence: 1.5\n"}, ["eval", "s.yaml"], "s.yaml:8 confidence: Input"),
    (
        "seeds-without-a-recipe",
        {"s.yaml": swap("    checkpoint: m.safetensors\n", "    checkpoint: m.safetensors\n    seeds: [0, 1]\n")},
        ["eval", "s.yaml"],
        "models[0].seeds: replicas are trained: give the model a `train:` recipe",
    ),
    (
        "seeds-repeated",
        {"s.yaml": trained_suite().replace(RECIPE, RECIPE + "    seeds: [1, 1]\n")},
        ["eval", "s.yaml"],
        "models[0].seeds: distinct seeds in 0..4294967295, got [1, 1]",
    ),
    ("weights-nan", {"s.yaml": GOOD, "@checkpoint": "nan"}, ["eval", "s.yaml"], "non-finite values (NaN or inf)"),
    ("weights-inf", {"s.yaml": GOOD, "@checkpoint": "inf"}, ["eval", "s.yaml"], "m.safetensors: tensor 'backbone."),
    ("sidecar-version-99", {"s.yaml": GOOD, "@checkpoint": "version-99"}, ["eval", "s.yaml"], "'format_version' is 99"),
    ("sidecar-without-sha256", {"s.yaml": GOOD, "@checkpoint": "no-sha"}, ["eval", "s.yaml"], "'sha256' is missing"),
    ("sidecar-sha256-a-number", {"s.yaml": GOOD, "@checkpoint": "sha-number"}, ["eval", "s.yaml"], "'sha256' is 12;"),
    (
        "sidecar-duplicate-key",
        {"s.yaml": GOOD, "m.safetensors": b"x", "m.json": '{"format": "a", "format": "b"}'},
        ["eval", "s.yaml"],
        "m.json: unreadable: duplicate key 'format'",
    ),
    (
        "checkpoint-a-folder",
        {"s.yaml": GOOD, "m.safetensors/k": "", "m.json": SIDECAR},
        ["eval", "s.yaml"],
        "checkpoint m.safetensors is not a regular file",
    ),
    (
        "checkpoint-a-fifo",
        {"s.yaml": GOOD, "@fifo": "m.safetensors", "m.json": SIDECAR},
        ["eval", "s.yaml"],
        "checkpoint m.safetensors is not a regular file",
    ),
    (
        "sidecar-a-fifo",
        {"s.yaml": GOOD, "m.safetensors": b"x", "@fifo": "m.json"},
        ["eval", "s.yaml"],
        "m.json: not a regular file (a FIFO, socket or device)",
    ),
    ("suite-a-fifo", {"@fifo": "s.yaml"}, ["eval", "s.yaml"], "s.yaml: not a regular file"),
    ("show-a-fifo", {"@fifo": "r.json"}, ["show", "r.json"], "r.json: not a regular file"),
    (
        "show-duplicate-key",
        {"r.json": document()[:-1] + ', "status": "complete"}'},
        ["show", "r.json"],
        "r.json: unreadable: duplicate key 'status'",
    ),
    (
        "compare-duplicate-metric",
        {"a.json": document(), "b.json": document().replace('"clean/acc": 0.9', '"clean/acc": 0.1, "clean/acc": 0.9')},
        ["compare", "a.json", "b.json"],
        "b.json: unreadable: duplicate key 'clean/acc'",
    ),
    ("show-deep", {"r.json": DEEP}, ["show", "r.json"], "r.json: unreadable: nested deeper than 64 levels"),
    (
        "compare-deep",
        {"a.json": document(), "b.json": DEEP},
        ["compare", "a.json", "b.json"],
        "b.json: unreadable: nested",
    ),
    ("report-deep", {"r.json": DEEP}, ["report", "r.json"], "r.json: unreadable: nested deeper than 64 levels"),
    (
        "merge-deep-shard",
        {"s.yaml": trained_suite(), "results/s.json.shard-0-of-1": DEEP},
        ["merge", "s.yaml"],
        "results/s.json.shard-0-of-1: unreadable: nested deeper",
    ),
    ("show-metric-a-string", {"r.json": document(metrics={"m": {"clean/acc": "NaN"}})}, ["show", "r.json"], "is str"),
    (
        "export-half-made",
        {**HALF_EXPORT, "data/digits-C/manifest.json": '{"severities": [1], "complete": false}'},
        ["eval", "s.yaml", "--data-root", "data"],
        "data/digits-C: a half-made export",
    ),
    (
        "export-manifest-unreadable",
        {**HALF_EXPORT, "data/digits-C/manifest.json": '{"sev'},
        ["eval", "s.yaml", "--data-root", "data"],
        "data/digits-C/manifest.json: unreadable export manifest",
    ),
    # --- inputs that could hang it or eat the memory ----------------------------------------------------------
    ("yaml-billion-laughs", {"s.yaml": laughs()}, ["eval", "s.yaml"], "s.yaml: expands to more than 100000 values"),
    ("yaml-alias-in-itself", {"s.yaml": "a: &a [*a]\n"}, ["eval", "s.yaml"], "s.yaml: expands to more than 100000"),
    ("yaml-over-1mib", {"s.yaml": GOOD + "#" + "x" * (1 << 20) + "\n"}, ["eval", "s.yaml"], "s.yaml: 1048675 bytes"),
    ("yaml-deep", {"s.yaml": "a: " + "[" * 50_000 + "]" * 50_000 + "\n"}, ["eval", "s.yaml"], "nested too deeply"),
    (
        "tolerances-billion-laughs",
        {"a.json": document(), "b.json": document(), "t.yaml": laughs()},
        ["compare", "a.json", "b.json", "--tolerances", "t.yaml"],
        "t.yaml: expands to more than 100000 values",
    ),
    ("corrupt-size-absurd", {}, ["corrupt", "digits", "--size", "100000"], "'--size': 100000 is not in the range"),
    ("corrupt-huge-npy", {"big.npy": "@huge-npy"}, ["corrupt", "big.npy", "--export", "out"], "big.npy:"),
    ("corrupt-huge-image", {"big.png": "@huge-png"}, ["corrupt", "big.png"], "big.png: an image of 1x16385"),
    ("data-root-a-file", {"s.yaml": GOOD, "data": "x"}, ["eval", "s.yaml", "--data-root", "data"], "'data' is a file"),
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


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


# file contents made on demand (binary formats, or too big to spell in the table)
MADE: dict[str, Callable[[], bytes]] = {
    "@png": lambda: _png(16, 16),
    "@huge-png": lambda: _png(1, 4 * 4096 + 1),  # a few hundred bytes, 16,385 pixels tall
    "@huge-npy": lambda: _npy(np.zeros((1, 4097, 1, 1), np.uint8)),  # a side beyond 4096
    "@labels": lambda: _npy(np.zeros(2, np.int64)),
    "@corrupted": lambda: _npy(np.zeros((2, 8, 8, 1), np.uint8)),
}


def _checkpoint_files(mode: str, checkpoint: dict[str, bytes]) -> tuple[bytes, dict]:
    """The module's real checkpoint, damaged as `mode` says; the sidecar's sha256 follows the weights unless the
    damage is to the hash itself."""
    from safetensors.torch import load, save

    weights, sidecar = checkpoint["weights"], json.loads(checkpoint["sidecar"])
    if mode == "replace":
        return weights[:-4] + b"\x00\x00\x00\x00", sidecar
    if mode == "truncate":
        weights = weights[:40]
    if mode in ("nan", "inf"):
        state = load(weights)
        first = sorted(state)[0]
        state[first] = state[first].clone().fill_(float(mode))
        weights = save(state)
    sidecar["sha256"] = hashlib.sha256(weights).hexdigest()
    if mode == "bad-model":
        sidecar["model"]["backbone"] = 7
    if mode == "version-99":
        sidecar["format_version"] = 99
    if mode == "no-sha":
        del sidecar["sha256"]
    if mode == "sha-number":
        sidecar["sha256"] = 12
    return weights, sidecar


def materialise(where: Path, files: dict[str, str | bytes], checkpoint: dict[str, bytes]) -> None:
    """Write a case's files: text, bytes, a MADE content, `@checkpoint: MODE` (m.safetensors + m.json) or
    `@fifo: NAME` (a named pipe; a reader that opened it would block)."""
    for name, content in files.items():
        if name == "@checkpoint":
            weights, sidecar = _checkpoint_files(str(content), checkpoint)
            (where / "m.safetensors").write_bytes(weights)
            (where / "m.json").write_text(json.dumps(sidecar))
            continue
        if name == "@fifo":
            os.mkfifo(where / str(content))
            continue
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content in MADE:
            content = MADE[content]()
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def snapshot(where: Path) -> dict[str, bytes]:
    return {str(p.relative_to(where)): p.read_bytes() for p in sorted(where.rglob("*")) if p.is_file()}


def test_the_corpus_is_large_and_unique():
    assert len(CASES) >= 120 and len({c[0] for c in CASES}) == len(CASES)


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


def test_a_full_disk_is_one_line_naming_the_file_and_keeps_finished_work(tmp_path, monkeypatch, checkpoint):
    """ENOSPC while the final document is renamed into place (any OSError of a write): exit 2, one line naming the
    path and the cause, no traceback; the finished test stays in the `.partial` state and a rerun resumes it."""
    import errno

    import robustcollapse.io as rio

    monkeypatch.chdir(tmp_path)
    materialise(tmp_path, {"s.yaml": GOOD, "@checkpoint": "ok"}, checkpoint)
    real_replace = os.replace

    def full_disk(src: str, dst: str | Path) -> None:
        if str(dst).endswith("r.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(rio.os, "replace", full_disk)
    result = CliRunner().invoke(main, ["eval", "s.yaml", "--json", "r.json", "--device", "cpu", "--quiet"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0] == "error: r.json: No space left on device (errno 28); finished results are kept"
    assert not (tmp_path / "r.json").exists() and not list(tmp_path.glob(".r.json.*.tmp"))
    recorded = json.loads((tmp_path / "r.json.partial").read_text())
    assert '"clean/acc"' in json.dumps(recorded)
    monkeypatch.setattr(rio.os, "replace", real_replace)
    rerun = CliRunner().invoke(main, ["eval", "s.yaml", "--json", "r.json", "--device", "cpu"])
    assert rerun.exit_code == 0, rerun.output
    accuracy = json.loads((tmp_path / "r.json").read_text())["metrics"]["m"]["clean/acc"]
    assert f'"clean/acc": {accuracy}' in json.dumps(recorded)  # the rerun took the kept result


def test_compare_of_documents_on_other_data_is_not_comparable(tmp_path, monkeypatch):
    """Documents evaluated on another data set (or other held-out classes) are exit 1, "not comparable" — never
    "improved"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.json").write_text(document(metrics={"m": {"clean/acc": 0.5}}))
    for name, suite in (
        ("data", {"name": "s", "dataset": "mnist5k"}),
        ("heldout", {"name": "s", "dataset": "digits", "heldout": [9]}),
    ):
        (tmp_path / f"{name}.json").write_text(document(suite=suite, metrics={"m": {"clean/acc": 0.9}}))
        result = CliRunner().invoke(main, ["compare", "a.json", f"{name}.json"], env={"COLUMNS": "200"})
        assert result.exit_code == 1, result.output
        assert "not comparable" in result.stderr and "improved" not in result.stderr
    same = CliRunner().invoke(main, ["compare", "a.json", "a.json"])
    assert same.exit_code == 0, same.output
