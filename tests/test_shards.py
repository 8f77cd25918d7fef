"""Job arrays: `eval --shard I/N` runs and `merge` give the document an unsharded run writes; a missing, duplicated,
incomplete or foreign shard state is exit 2 naming the file; a killed shard resumes; two runs needing one checkpoint
take turns."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from robustcollapse import registry
from robustcollapse.cli import main
from robustcollapse.config import load_suite
from robustcollapse.evaluate.runner import suite_pairs
from robustcollapse.evaluate.shards import Shard, shard_pairs
from robustcollapse.io import exclusive, lock_path, one_at_a_time

SUITES = Path(__file__).resolve().parents[1] / "suites"
SUITE = "suites/smoke.yaml"
FLAGS = ["--device", "cpu", "--limit", "40", "--epochs", "1", "--tests", "clean,corruption"]  # 4 quick pairs
STATE = "results/smoke.json.shard-{}-of-2"


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`shards/`: a fresh sharded run (shard 0 trains both models, shard 1 loads them), not merged; `whole/`: a
    fresh unsharded run of the same suite and flags, which trains its own models."""
    root = tmp_path_factory.mktemp("runs")
    for name, shards in (("shards", [["--shard", "0/2"], ["--shard", "1/2"]]), ("whole", [[]])):
        shutil.copytree(SUITES, root / name / "suites")
        cwd = os.getcwd()
        os.chdir(root / name)
        try:
            for shard in shards:
                result = cli("eval", SUITE, *FLAGS, *shard)
                assert result.exit_code == 0, result.output
        finally:
            os.chdir(cwd)
    return root


@pytest.fixture
def sharded(runs: Path, workdir: Path) -> Path:
    """A working directory holding the sharded run's checkpoints and its two shard states."""
    shutil.copytree(runs / "shards" / "results", workdir / "results")
    return workdir


def untimed(doc: dict[str, Any]) -> str:
    """The document as JSON (key order kept) without what may differ between runs: env, timings, epoch seconds."""
    doc = json.loads(json.dumps(doc))
    del doc["env"], doc["timings"]
    for info in doc["models"].values():
        for epoch in info.get("history") or []:
            epoch.pop("seconds", None)
    return json.dumps(doc)


def test_round_robin_puts_every_pair_in_exactly_one_shard():
    suite = load_suite(SUITES / "smoke.yaml")
    pairs = suite_pairs(suite)
    assert pairs[:2] == [("baseline", "clean"), ("baseline", "collapse")] and len(pairs) == 12
    for count in range(1, 13):
        shares = [shard_pairs(suite, Shard(index, count)) for index in range(count)]
        assert sorted(p for share in shares for p in share) == sorted(pairs), count
        assert all(shard_pairs(suite, Shard(k % count, count)).count(pair) == 1 for k, pair in enumerate(pairs))


def test_shards_merge_into_the_unsharded_document(sharded, runs):
    first, second = (json.loads(Path(STATE.format(i)).read_text()) for i in (0, 1))
    assert first["complete"] and second["complete"] and second["shard"] == {"index": 1, "count": 2}
    assert {m: list(t) for m, t in first["results"].items()} == {"baseline": ["clean"], "binary": ["clean"]}
    assert {m: list(t) for m, t in second["results"].items()} == {"baseline": ["corruption"], "binary": ["corruption"]}

    refused = cli("eval", SUITE, *FLAGS)  # a whole run beside shard states names `merge` and computes nothing
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.output
    assert f"{STATE.format(0)}: a shard state" in refused.stderr
    assert "`robustcollapse merge suites/smoke.yaml`" in refused.stderr

    merged = cli("merge", SUITE)
    assert merged.exit_code == 0, merged.output
    assert "results: results/smoke.json (merged from 2 shards)" in merged.output
    doc = json.loads(Path("results/smoke.json").read_text())
    whole = json.loads((runs / "whole" / "results" / "smoke.json").read_text())
    assert untimed(doc) == untimed(whole)  # metrics, details, flags, models, warnings, overrides, key order
    assert doc["status"] == "complete"
    assert doc["overrides"] == {"limit": 40, "epochs": 1, "tests": ["clean", "corruption"]}
    assert [s["index"] for s in doc["env"]["shards"]] == [0, 1] and all(s["host"] for s in doc["env"]["shards"])
    assert {m: list(t) for m, t in doc["timings"].items()} == {m: list(t) for m, t in whole["timings"].items()}
    assert not list(Path("results").glob("smoke.json.shard-*"))  # the states are gone once the document is written


def corrupt_state(index: int, **fields: Any) -> None:
    path = Path(STATE.format(index))
    path.write_text(json.dumps(json.loads(path.read_text()) | fields))


def results_in_two_shards() -> None:
    first = json.loads(Path(STATE.format(0)).read_text())
    second = json.loads(Path(STATE.format(1)).read_text())
    second["results"]["baseline"]["clean"] = first["results"]["baseline"]["clean"]
    Path(STATE.format(1)).write_text(json.dumps(second))


BAD = {
    "missing": (lambda: Path(STATE.format(1)).unlink(), "shard 1 of 2 missing: results/smoke.json.shard-1-of-2;"),
    "none": (
        lambda: [Path(STATE.format(i)).unlink() for i in (0, 1)],
        "results/smoke.json: no shard states (smoke.json.shard-I-of-N) to merge",
    ),
    "other-split": (
        lambda: shutil.copy(STATE.format(0), "results/smoke.json.shard-0-of-3"),
        "duplicated shard 0: results/smoke.json.shard-0-of-2 and results/smoke.json.shard-0-of-3",
    ),
    "copied": (
        lambda: shutil.copy(STATE.format(0), STATE.format(1)),
        "results/smoke.json.shard-1-of-2: duplicated shard: it holds {'index': 0, 'count': 2}",
    ),
    "pair-twice": (results_in_two_shards, "results/smoke.json.shard-1-of-2: pair baseline / clean is in two shards"),
    "other-suite": (
        lambda: Path(SUITE).write_text(Path(SUITE).read_text().replace("seed: 0\nbatch", "seed: 1\nbatch")),
        "results/smoke.json.shard-0-of-2: made from another suite or --limit than suites/smoke.yaml",
    ),
    "other-overrides": (
        lambda: corrupt_state(1, overrides={"limit": 30, "epochs": 1, "tests": ["clean", "corruption"]}),
        "results/smoke.json.shard-1-of-2: made with overrides {'limit': 30",
    ),
    "incomplete": (
        lambda: corrupt_state(1, complete=False),
        "shard 1 of 2 incomplete: results/smoke.json.shard-1-of-2 (2 of 2 pairs finished)",
    ),
    "other-weights": (
        lambda: corrupt_state(1, models={"baseline": "0" * 64, "binary": "1" * 64}),
        "results/smoke.json.shard-1-of-2: model 'baseline' has other weights than in results/smoke.json.shard-0-of-2",
    ),
    "not-json": (
        lambda: Path(STATE.format(1)).write_text("{"),
        "results/smoke.json.shard-1-of-2: not valid JSON",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_shard_set_is_one_line_exit_2_naming_the_file(sharded, monkeypatch, case):
    monkeypatch.setenv("COLUMNS", "80")  # long messages must not wrap into a second line
    spoil, expected = BAD[case]
    spoil()
    before = {p: p.read_bytes() for p in Path("results").glob("smoke.json*")}
    result = cli("merge", SUITE)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert {p: p.read_bytes() for p in Path("results").glob("smoke.json*")} == before  # nothing written or deleted


def test_merge_refuses_while_a_shard_is_still_running(sharded):
    with exclusive(Path(STATE.format(1))):  # what a live shard holds
        result = cli("merge", SUITE)
    assert result.exit_code == 2 and "results/smoke.json.shard-1-of-2: another robustcollapse run is writing it" in (
        result.stderr
    )
    assert not Path("results/smoke.json").exists() and Path(STATE.format(1)).exists()


@pytest.mark.parametrize("value", ["2/2", "0/0", "-1/2", "1", "1/2/3", "a/b", ""])
def test_a_bad_shard_flag_is_one_line_exit_2(workdir, value):
    result = cli("eval", SUITE, "--device", "cpu", "--shard", value)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert f"error: --shard {value!r}: allowed: I/N with whole numbers 0 <= I < N" in result.stderr
    assert not Path("results").exists()


def test_an_interrupted_shard_resumes_without_redoing_finished_pairs(sharded, runs, monkeypatch):
    Path(STATE.format(0)).unlink()
    clean = registry.get("test", "clean")
    real_run = clean.run
    ran: list[str] = []

    def second_interrupted(ctx, params):
        ran.append("clean")
        if len(ran) == 2:  # binary / clean, the shard's second pair
            raise KeyboardInterrupt
        return real_run(ctx, params)

    monkeypatch.setattr(clean, "run", staticmethod(second_interrupted))
    first = cli("eval", SUITE, *FLAGS, "--shard", "0/2")
    assert first.exit_code == 130 and "shard 0 of 2: 1 of its 2 pairs finished" in first.output, first.output
    state = json.loads(Path(STATE.format(0)).read_text())
    assert state["complete"] is False
    assert {m: list(t) for m, t in state["results"].items() if t} == {"baseline": ["clean"]}
    assert not Path("results/smoke.json").exists() and not Path("results/smoke.interrupted.json").exists()
    assert "shard 0 of 2 incomplete" in cli("merge", SUITE).stderr

    ran.clear()
    monkeypatch.setattr(clean, "run", staticmethod(lambda ctx, params: ran.append("clean") or real_run(ctx, params)))
    second = cli("eval", SUITE, *FLAGS, "--shard", "0/2")
    assert second.exit_code == 0, second.output
    assert "✓ baseline / clean: finished earlier, skipped" in second.output and ran == ["clean"]
    assert cli("merge", SUITE).exit_code == 0
    whole = json.loads((runs / "whole" / "results" / "smoke.json").read_text())
    assert json.loads(Path("results/smoke.json").read_text())["metrics"] == whole["metrics"]


def test_a_second_holder_of_a_checkpoint_waits_for_the_first(tmp_path):
    """Two shards missing one checkpoint: the second waits while the first trains, then holds the live lock file."""
    ckpt = tmp_path / "models" / "m.safetensors"
    holding, release, events = threading.Event(), threading.Event(), []

    def first() -> None:
        with one_at_a_time(ckpt, lambda: events.append("first waited")):
            holding.set()
            release.wait(10)
            events.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(10)
    threading.Timer(0.2, release.set).start()
    with one_at_a_time(ckpt, lambda: events.append("second waits")):
        events.append("second holds")
        with open(lock_path(ckpt), "a+") as fh, pytest.raises(BlockingIOError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # a third run would wait too
    thread.join(10)
    assert events == ["second waits", "first done", "second holds"]
    assert not lock_path(ckpt).exists()
    with one_at_a_time(None, lambda: events.append("no path")):
        pass
    assert events[-1] == "second holds"


def test_shards_evaluated_in_bf16_merge_and_keep_their_numerics(sharded):
    flags = [*FLAGS[:-1], "clean", "--bf16", "--json", "results/bf.json"]
    for shard in ("0/2", "1/2"):
        assert cli("eval", SUITE, *flags, "--shard", shard).exit_code == 0
    merged = cli("merge", SUITE, "--json", "results/bf.json")
    assert merged.exit_code == 0, merged.output
    doc = json.loads(Path("results/bf.json").read_text())
    assert doc["overrides"]["bf16"] is True and sorted(doc["metrics"]) == ["baseline", "binary"]
