"""`robustcollapse corrupt --export` writes the CIFAR-10-C layout, `source: npy` reads it back to the same numbers
as `source: generate`, and `robustcollapse list corruptions` shows the table. The corruptions write, the data layer
reads: neither imports the layers above it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from click.testing import CliRunner

import robustcollapse
from robustcollapse.cli import main
from robustcollapse.corruptions import CORRUPTIONS, FAMILIES, corrupt

SUITE = {
    "dataset": "digits",
    "seed": 3,
    "batch_size": 128,
    "models": [
        {
            "name": "mlp",
            "train": {
                "backbone": {"name": "mlp", "hidden": 32, "depth": 1},
                "head": "linear",
                "epochs": 2,
                "batch_size": 64,
                "seed": 0,
            },
        }
    ],
}
CHOSEN = ["gaussian_noise", "glass_blur", "frost", "spatter", "jpeg_compression"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def run_suite(name: str, source: str, data_root: Path) -> dict[str, float]:
    test = {"kind": "corruption", "corruptions": CHOSEN, "severities": [1, 3, 5], "n_examples": 150, "source": source}
    Path(f"{name}.yaml").write_text(yaml.safe_dump({**SUITE, "name": name, "tests": [test]}))
    result = invoke("eval", f"{name}.yaml", "--device", "cpu", "--data-root", str(data_root))
    assert result.exit_code == 0, result.output
    return json.loads(Path("results", f"{name}.json").read_text())["metrics"]["mlp"]


def test_exported_files_give_the_accuracies_of_generated_corruptions(workdir):
    data_root = workdir / "data"
    exported = invoke(
        "corrupt", "digits", "--export", str(data_root / "digits-C"), "--corruptions", ",".join(CHOSEN),
        "--severities", "1,3,5", "--seed", "3", "--limit", "150", "--device", "cpu",
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    generated = run_suite("gen", "generate", data_root)
    read = run_suite("npy", "npy", data_root)
    keys = [k for k in generated if k.startswith("shift/")]
    assert len(keys) > len(CHOSEN) * 3 and set(keys) == {k for k in read if k.startswith("shift/")}
    assert {k: generated[k] for k in keys} == {k: read[k] for k in keys}
    assert generated["shift/glass_blur/5/acc"] < generated["shift/clean/acc"]


def test_export_of_an_npy_array_is_the_cifar_c_layout(tmp_path):
    gen = np.random.RandomState(0)
    images = gen.randint(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    labels = np.array([0, 1, 2, 3, 4, 9])
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    out = tmp_path / "X-C"
    result = invoke("corrupt", str(tmp_path / "x.npy"), "--export", str(out), "--labels", str(tmp_path / "y.npy"),
                    "--corruptions", "fog,pixelate", "--seed", "5", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    for name in ("fog", "pixelate"):
        arr = np.load(out / f"{name}.npy")
        assert arr.shape == (30, 32, 32, 3) and arr.dtype == np.uint8
        for s in range(1, 6):
            expected = corrupt(x, name, s, seed=5) * 255
            assert np.array_equal(arr[(s - 1) * 6 : s * 6], expected.round().byte().permute(0, 2, 3, 1).numpy())
    saved = np.load(out / "labels.npy")
    assert saved.dtype == np.uint8 and np.array_equal(saved, np.tile(labels, 5))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["severities"] == [1, 2, 3, 4, 5] and manifest["parameters"] == "cifar"


def test_export_rejects_what_is_not_an_image_array(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((3, 3)))
    result = invoke("corrupt", str(tmp_path / "bad.npy"), "--export", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "bad.npy: expected uint8 images (N, H, W, C) with C 1 or 3, got float64 (3, 3)" in result.output


def test_list_shows_the_corruptions_with_family_and_both_parameter_sets():
    result = CliRunner().invoke(main, ["list", "corruptions"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") == 6}
    assert list(rows) == [*CORRUPTIONS]
    for spec in CORRUPTIONS.values():
        cells = [c.strip() for c in rows[spec.name].split("│")[1:-1]]
        assert cells[1] == spec.family and spec.family in FAMILIES and cells[2] == "1-5"
    assert rows["gaussian_noise"].split("│")[4].strip() == "0.04; 0.06; 0.08; 0.09; 0.1"
    assert rows["shot_noise"].split("│")[5].strip() == "60; 25; 12; 5; 3"
    everything = CliRunner().invoke(main, ["list"], env={"COLUMNS": "400"})
    assert "corruptions (" in everything.output and "backbones" in everything.output


def modules_loaded_by(module: str) -> set[str]:
    """The robustcollapse modules a fresh interpreter has loaded after importing `module` (this checkout's code)."""
    root = str(Path(robustcollapse.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('robustcollapse')))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_reading_corrupted_files_does_not_import_the_corruptions():
    loaded = modules_loaded_by("robustcollapse.data.corrupted")
    assert "robustcollapse.data.corrupted" in loaded
    assert not {m for m in loaded if m.startswith("robustcollapse.corruptions")}


def test_the_corruptions_import_no_layer_above_them():
    loaded = modules_loaded_by("robustcollapse.corruptions.export")
    assert "robustcollapse.corruptions.noise" in loaded  # the package imports its family modules
    above = {"evaluate", "report", "cli", "api", "attacks", "ood", "train", "training_cli"}
    assert not {m.split(".")[1] for m in loaded if "." in m} & above
