"""Seeds as replicas: a model with `seeds: [0, 1, 2]` trains one checkpoint per seed, each replica is evaluated,
and the document reports per-seed values, mean ± sd and the t interval (scipy's), and Welch's comparison between
replicated models (scipy's); a job array over the replicas merges to the unsharded document."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from same_document import differences
from scipy import stats

from robustcollapse.cli import main

pytestmark = pytest.mark.slow  # trains twelve models and runs a job array over them

SUITE = """\
name: seeds
dataset: digits
seed: 0
models:
  - name: narrow
    seeds: [0, 1, 2]
    train: {backbone: {name: mlp, hidden: 8, depth: 1}, head: linear, epochs: 1, batch_size: 128}
  - name: wide
    seeds: [0, 1, 2]
    train: {backbone: {name: mlp, hidden: 64, depth: 1}, head: linear, epochs: 3, batch_size: 128}
reference: narrow
tests:
  - kind: clean
"""


def cli(*args: str):
    return CliRunner().invoke(main, [*args, "--device", "cpu", "--quiet"], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path, dict]:
    """The suite run whole, and run again as a job array of two shards then merged (fresh folders each)."""
    import os

    out = []
    old = Path.cwd()
    for how in ("whole", "sharded"):
        work = tmp_path_factory.mktemp(how)
        (work / "s.yaml").write_text(SUITE)
        os.chdir(work)
        try:
            if how == "whole":
                result = cli("eval", "s.yaml")
            else:
                for shard in ("0/2", "1/2"):
                    assert cli("eval", "s.yaml", "--shard", shard).exit_code == 0
                result = CliRunner().invoke(main, ["merge", "s.yaml"])
            assert result.exit_code == 0, result.output
        finally:
            os.chdir(old)
        out += [work, json.loads((work / "results" / "seeds.json").read_text())]
    return tuple(out)  # type: ignore[return-value]


def test_each_seed_is_its_own_checkpoint_and_model(runs):
    work, doc, _, _ = runs
    names = [f"{m}-s{s}" for m in ("narrow", "wide") for s in (0, 1, 2)]
    assert list(doc["metrics"]) == names
    assert all((work / "results" / "models" / f"seeds-{name}.safetensors").is_file() for name in names)
    seeds = {name: doc["models"][name]["recipe"]["seed"] for name in names}
    assert seeds == {name: int(name[-1]) for name in names}
    accuracies = {doc["metrics"][f"wide-s{s}"]["clean/acc"] for s in (0, 1, 2)}
    assert len(accuracies) > 1  # three seeds, three models: the spread is real


def test_mean_sd_and_t_interval_over_seeds_equal_scipy(runs):
    _, doc, _, _ = runs
    replicas = doc["replicas"]
    assert replicas["reference"] == "narrow" and set(replicas["models"]) == {"narrow", "wide"}
    row = replicas["models"]["wide"]["metrics"]["clean/acc"]
    values = [doc["metrics"][f"wide-s{s}"]["clean/acc"] for s in (0, 1, 2)]
    assert row["values"] == values
    assert row["mean"] == pytest.approx(np.mean(values), abs=1e-12)
    assert row["sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    expected = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert row["interval"] == pytest.approx(list(expected), abs=1e-9)


def test_replicated_models_are_compared_with_welch_over_seeds(runs):
    _, doc, _, _ = runs
    narrow = [doc["metrics"][f"narrow-s{s}"]["clean/acc"] for s in (0, 1, 2)]
    wide = [doc["metrics"][f"wide-s{s}"]["clean/acc"] for s in (0, 1, 2)]
    row = doc["replicas"]["comparisons"]["wide"]["clean/acc"]
    reference = stats.ttest_ind(wide, narrow, equal_var=False)
    assert row["p"] == pytest.approx(reference.pvalue, abs=1e-9)
    assert row["interval"] == pytest.approx(list(reference.confidence_interval(0.95)), abs=1e-9)
    assert row["difference"] == pytest.approx(np.mean(wide) - np.mean(narrow), abs=1e-12)
    assert row["dominates"] in ("seeds", "examples") and row["example_se"] > 0
    assert doc["comparisons"]["reference"] == "narrow-s0"  # example-level verdicts pair with the first replica


def test_a_job_array_over_the_replicas_merges_to_the_same_document(runs):
    _, whole, _, merged = runs
    assert differences(whole, merged) == []


def test_tolerances_auto_come_from_the_seed_spread(runs, tmp_path, monkeypatch):
    """`compare --tolerances auto`: per metric t_{0.975, n-1} * sqrt(2) * sd over seeds; a drop larger than the
    default tolerance and outside the baseline's interval, but within what seeds alone move, regresses with the
    default and passes with auto. A baseline without replicas is exit 2."""
    from robustcollapse.report.replicas import seed_tolerances

    _, doc, _, _ = runs
    sds = [doc["replicas"]["models"][m]["metrics"]["clean/acc"]["sd"] for m in ("narrow", "wide")]
    auto = seed_tolerances(doc)["clean/acc"]
    assert auto == pytest.approx(stats.t.ppf(0.975, 2) * np.sqrt(2) * max(sds), abs=1e-12)
    low, high = doc["intervals"]["wide-s0"]["clean/acc"]
    value = doc["metrics"]["wide-s0"]["clean/acc"]
    floor = max(0.02, value - low)  # beyond the default tolerance and below the baseline's interval
    assert floor < auto, (floor, auto)
    worse = json.loads(json.dumps(doc))
    worse["metrics"]["wide-s0"]["clean/acc"] = value - (floor + auto) / 2
    monkeypatch.chdir(tmp_path)
    Path("base.json").write_text(json.dumps(doc))
    Path("new.json").write_text(json.dumps(worse))
    default = CliRunner().invoke(main, ["compare", "base.json", "new.json"], env={"COLUMNS": "200"})
    assert default.exit_code == 1 and "regressed: wide-s0:clean/acc" in default.stderr
    tolerant = CliRunner().invoke(main, ["compare", "base.json", "new.json", "--tolerances", "auto"])
    assert tolerant.exit_code == 0, tolerant.output
    plain = json.loads(json.dumps(doc))
    plain["replicas"] = {}
    Path("plain.json").write_text(json.dumps(plain))
    refused = CliRunner().invoke(main, ["compare", "plain.json", "new.json", "--tolerances", "auto"])
    assert refused.exit_code == 2 and "has no replicated models" in refused.stderr
