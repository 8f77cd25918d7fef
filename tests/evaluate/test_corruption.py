"""The `corruption` test kind: generated corruptions and CIFAR-10-C .npy files in the real on-disk layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from robustcollapse.cli import main
from robustcollapse.config import ConfigError, load_suite
from robustcollapse.corruptions import corrupt
from robustcollapse.data import Dataset, Split
from robustcollapse.data.corrupted import corrupted_folder, read_corrupted
from robustcollapse.errors import DataNotFoundError
from robustcollapse.evaluate.base import Context
from robustcollapse.evaluate.corruption import Corruption, CorruptionParams
from robustcollapse.metrics.calibration import calibration_report, fit_temperature


class MeanBrightness(nn.Module):
    """Class 1 when the mean pixel is above 0.3, else class 0: a model whose answers we can work out by hand."""

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = x.mean(dim=(1, 2, 3), keepdim=False)[:, None]
        logits = torch.cat([-(m - 0.3) * 50, (m - 0.3) * 50], dim=1)
        return m, logits


def context(name: str, x: torch.Tensor, y: torch.Tensor, root: Path | None = None) -> Context:
    data = Dataset(name, Split(x, y), Split(x, y), ["dark", "bright"], (0.5,) * 3, (0.25,) * 3)
    return Context(MeanBrightness(), data, data.test, batch_size=7, seed=0, data_root=root)


def images() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    level = torch.linspace(0.1, 0.6, 20)
    x = (level[:, None, None, None] + 0.05 * torch.rand(20, 3, 32, 32, generator=gen)).clamp(0, 1)
    x = torch.round(x * 255).to(torch.uint8)
    y = (x.float().mean(dim=(1, 2, 3)) / 255 > 0.3).long()
    return x, y


def write_cifar_c(root: Path, corruption: str, per: int) -> np.ndarray:
    """DIR/CIFAR-10-C/<corruption>.npy (5·per, 32, 32, 3) uint8, severity s filled with the value 50·s."""
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.concatenate([np.full((per, 32, 32, 3), 50 * s, np.uint8) for s in range(1, 6)])
    np.save(folder / f"{corruption}.npy", arr)
    np.save(folder / "labels.npy", np.tile(np.arange(per) % 2, 5).astype(np.int64))
    return arr


def test_npy_reader_slices_one_severity(tmp_path):
    write_cifar_c(tmp_path, "fog", per=6)
    split = read_corrupted(corrupted_folder("cifar10", tmp_path), "fog", 3, n=4)
    assert split.x.shape == (4, 3, 32, 32) and split.x.dtype == torch.uint8
    assert bool((split.x == 150).all()) and split.y.tolist() == [0, 1, 0, 1]


def test_npy_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"CIFAR-10-C.*labels.npy not found; download https://zenodo.org"):
        corrupted_folder("cifar10", tmp_path)
    with pytest.raises(DataNotFoundError, match=r"mnist5k-C: .*labels.npy not found; make it with `robustcollapse "
                       r"corrupt mnist5k --export .*mnist5k-C` and pass --data-root"):  # fmt: skip
        corrupted_folder("mnist5k", tmp_path)
    write_cifar_c(tmp_path, "fog", per=2)
    with pytest.raises(DataNotFoundError, match="snow.npy: not found"):
        read_corrupted(corrupted_folder("cifar10", tmp_path), "snow", 1)


def test_npy_source_scores_the_files_it_reads(tmp_path):
    write_cifar_c(tmp_path, "fog", per=10)
    x, y = images()
    params = CorruptionParams(kind="corruption", corruptions=["fog"], severities=[1, 2, 5], source="npy", n_examples=8)
    result = Corruption.run(context("cifar10", x, y, tmp_path), params)
    m = result.metrics
    # values 50, 100 -> mean below 0.3 -> class 0; 250 -> class 1; labels alternate 0, 1 -> half right each time
    assert m["shift/fog/1/acc"] == m["shift/fog/2/acc"] == m["shift/fog/5/acc"] == 0.5
    assert m["shift/clean/acc"] == 1.0 and m["shift/mean/acc"] == 0.5
    assert m["shift/mean/rel_drop"] == pytest.approx(0.5)
    assert "shift/extra/acc" not in m


def test_generated_source_matches_corrupting_by_hand():
    x, y = images()
    params = CorruptionParams(
        kind="corruption", corruptions=["contrast", "brightness", "saturate"], severities=[2, 5], n_examples=20
    )
    ctx = context("rgb", x, y)
    result = Corruption.run(ctx, params)
    m = result.metrics
    assert result.details["parameters"] == "cifar"
    for name in ("contrast", "brightness", "saturate"):
        for s in (2, 5):
            by_hand = corrupt(x.float() / 255, name, s, seed=0)
            acc = float((MeanBrightness().forward_all(by_hand)[1].argmax(1) == y).float().mean())
            assert m[f"shift/{name}/{s}/acc"] == pytest.approx(acc), (name, s)
        assert m[f"shift/{name}/acc"] == pytest.approx((m[f"shift/{name}/2/acc"] + m[f"shift/{name}/5/acc"]) / 2)
    assert m["shift/mean/acc"] == pytest.approx((m["shift/contrast/acc"] + m["shift/brightness/acc"]) / 2)
    assert m["shift/extra/acc"] == m["shift/saturate/acc"]
    assert m["shift/brightness/5/acc"] < m["shift/clean/acc"], "+0.3 brightness pushes dark images over 0.3"


def test_bad_corruption_names_and_severities_are_one_line_errors(tmp_path):
    base = "name: t\ndataset: digits\nmodels:\n  - name: a\n    train: {backbone: mlp, head: linear}\ntests:\n"
    for entry, expected in (
        ("  - kind: corruption\n    corruptions: [fogg]\n", "tests[0].corruptions: unknown corruption 'fogg'"),
        ("  - kind: corruption\n    severities: [0, 6]\n", "tests[0].severities: severities [0, 6] out of range"),
        ("  - kind: corruption\n    source: disk\n", "tests[0].source: Input should be 'generate' or 'npy'"),
        (
            "  - kind: corruption\n    parameters: tiny\n",
            "tests[0].parameters: Input should be 'auto', 'cifar' or 'imagenet'",
        ),
    ):
        path = tmp_path / "s.yaml"
        path.write_text(base + entry)
        with pytest.raises(ConfigError) as info:
            load_suite(path)
        assert expected in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_corrupt_command_writes_a_grid(workdir):
    result = CliRunner().invoke(
        main, ["corrupt", "digits", "--index", "3", "--corruptions", "noise", "--out", "grid.png"]
    )
    assert result.exit_code == 0, result.output
    png = Path("grid.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    bad = CliRunner().invoke(main, ["corrupt", "digits", "--corruptions", "fogg"])
    assert bad.exit_code == 2 and "unknown corruption 'fogg'" in bad.output


def test_relative_changes_print_with_one_sign():
    from robustcollapse.evaluate.corruption import signed_percent

    assert signed_percent(-0.225) == "−22.5%" and signed_percent(0.002) == "+0.2%" and signed_percent(0.0) == "+0.0%"
    assert "−-" not in signed_percent(-0.002) and signed_percent(-0.002) == "−0.2%"


def test_temperature_scaled_cells_divide_the_logits_by_the_fitted_temperature():
    """Each cell's `ts/nll` and `ts/ece` are calibration_report(logits / T): the logits of the corrupted images
    worked out by hand here, T fitted on a validation split on which the model misses two images (T > 1)."""
    x, y = images()
    clean_logits = MeanBrightness().forward_all(x.float() / 255)[1]
    val_y = y.clone()
    val_y[[6, 7]] = 1 - val_y[[6, 7]]  # the two images nearest the model's threshold, labelled the other way
    t = fit_temperature(clean_logits, val_y)
    assert 2 < t < 5  # far enough from 1 that logits x T and logits / T score differently
    params = CorruptionParams(
        kind="corruption", corruptions=["brightness", "contrast"], severities=[1, 3, 5], n_examples=20, bins=10
    )
    ctx = context("rgb", x, y)
    ctx.temperature = t
    m = Corruption.run(ctx, params).metrics
    scaled_eces = []
    for name in ("brightness", "contrast"):
        for s in (1, 3, 5):
            key = f"shift/{name}/{s}"
            images_by_hand = corrupt(x.float() / 255, name, s, seed=0, index=torch.arange(len(x)))
            logits = MeanBrightness().forward_all(images_by_hand)[1]
            raw, scaled = calibration_report(logits, y, n_bins=10), calibration_report(logits / t, y, n_bins=10)
            assert m[f"{key}/nll"] == pytest.approx(raw["nll"], abs=1e-6), key
            assert m[f"{key}/ece"] == pytest.approx(raw["ece"], abs=1e-6), key
            assert m[f"{key}/ts/nll"] == pytest.approx(scaled["nll"], abs=1e-6), key
            assert m[f"{key}/ts/ece"] == pytest.approx(scaled["ece"], abs=1e-6), key
            wrong = calibration_report(logits * t, y, n_bins=10)
            assert abs(wrong["nll"] - scaled["nll"]) > 1e-3, key  # the check can tell / T from x T
            scaled_eces.append(scaled["ece"])
    assert m["shift/mean/ts/ece"] == pytest.approx(sum(scaled_eces) / len(scaled_eces), abs=1e-6)
    ctx.temperature = None
    assert not [k for k in Corruption.run(ctx, params).metrics if "/ts/" in k]  # no temperature, no scaled keys


def test_every_corruption_number_has_evidence_that_reproduces_it():
    """Each metric's sample, evaluated once on the recorded arrays, gives the metric itself (so its interval is
    the interval of that number), for every key: cell accuracy, NLL and ECE, raw and scaled, and the group means."""
    from robustcollapse.metrics import samples

    x, y = images()
    params = CorruptionParams(
        kind="corruption", corruptions=["brightness", "contrast"], severities=[1, 3, 5], n_examples=20, bins=10
    )
    ctx = context("rgb", x, y)
    ctx.temperature = 2.5
    result = Corruption.run(ctx, params)
    assert set(result.samples) == set(result.metrics)
    for key, sample in result.samples.items():
        arrays = [result.arrays[name][None] for group in sample.groups for name in group]
        value = float(samples.statistic_of(sample.statistic)(*arrays)[0])
        assert value == pytest.approx(result.metrics[key], abs=1e-9), key
    assert result.samples["shift/mean/ts/ece"].statistic == "ece_mean:10"
    assert len(result.samples["shift/mean/ts/ece"].groups[0]) == 2 * 2 * 3  # every cell's confidence and hits
