"""Job arrays: `eval SUITE --shard I/N` runs one share of a suite's (model, test) pairs into its own state file,
and `merge SUITE` assembles the N states into the document an unsharded `eval` writes.

For clusters where a scheduler starts N independent processes (SLURM arrays, Kubernetes indexed jobs) that share
a file system. Beside the output `results/X.json`, shard I of N keeps `results/X.json.shard-I-of-N`: the runner's
resume state (`fingerprint` of suite and limit, `models`: the sha256 of each model it opened, `results`: each
finished (model, test)) plus `shard` ({index, count}), `model_info` (what the document records of each model it
opened), `env` (with the host), `overrides` and `complete`. It is written atomically after every finished pair, so
a killed shard resumes where it stopped; a shard never writes `X.json` (nor `X.interrupted.json`).

`merge` reads the N states and refuses (exit 2, naming the file) a missing, duplicated, incomplete one or one made
from another suite, limit or overrides; it records every pair in suite order through the runner's `record`, so
the document equals an unsharded run's except for `timings` and `env` (shard 0's, with every shard's under
`env.shards`). The states are deleted once the document is written. A plain `eval` of an output that has shard
states beside it refuses and names `merge`: recomputing would throw the shards' work away, assembling silently
would hide which run made the numbers, and a later `merge` could overwrite a fresh document with older results.

A shard opens (loads, or trains when missing) only the models it has pairs for. Two shards missing the same
checkpoint do not both train it: the runner obtains a model under a lock on its checkpoint (`io.one_at_a_time`),
so the second waits and loads the first's weights. Unlocked, two journaled saves of one checkpoint at once fail
(each save's recovery deletes the other's pending files). Shards that do not share the checkpoint folder each
train a copy: the same recipe seed gives the same weights on the same hardware and library versions (CPU), and
`merge` refuses shards whose weights differ (sha256), so train first (`robustcollapse train SUITE`) where
training is not bit-reproducible (GPUs)."""

from __future__ import annotations

import contextlib
import glob
import json
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from robustcollapse.config import Suite, load_suite
from robustcollapse.distributed import world
from robustcollapse.errors import UserError
from robustcollapse.evaluate.overrides import Overrides, apply_overrides
from robustcollapse.evaluate.runner import (
    NUMERICS,
    RunOptions,
    check_checkpoints,
    default_output,
    fingerprint,
    finish,
    plan,
    protected_inputs,
    record,
    run_pairs,
    run_suite,
    suite_pairs,
)
from robustcollapse.io import check_output, exclusive, read_json, remove_stale_temporaries, write_json
from robustcollapse.report.document import new_document

SHARD_FORM = "I/N with whole numbers 0 <= I < N, e.g. --shard 0/8"
STATE_FIELDS = ("fingerprint", "models", "results", "shard", "model_info", "env", "overrides", "complete")
VERSIONS = ("robustcollapse", "python", "torch", "torchvision", "torchattacks", "git_revision")


@dataclass(frozen=True)
class Shard:
    """Shard `index` (from 0) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"


def parse_shard(text: str) -> Shard:
    """`--shard I/N` as a Shard; anything else is a one-line error naming the flag and the allowed form."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if match is None or int(match[1]) >= int(match[2]):
        raise UserError(f"--shard {text!r}: allowed: {SHARD_FORM}")
    return Shard(int(match[1]), int(match[2]))


def shard_path(out: Path, shard: Shard) -> Path:
    """Where shard I of N keeps its state: `results/X.json.shard-I-of-N`."""
    return out.with_name(f"{out.name}.shard-{shard.index}-of-{shard.count}")


def shard_states(out: Path) -> dict[Path, Shard]:
    """The shard state files beside `out` (any split), by what their names claim."""
    found = {}
    for path in sorted(out.parent.glob(glob.escape(out.name) + ".shard-*-of-*")):
        match = re.fullmatch(r"\.shard-(\d+)-of-(\d+)", path.name[len(out.name) :])
        if match and path.is_file():
            found[out.with_name(path.name)] = Shard(int(match[1]), int(match[2]))
    return found


def shard_pairs(suite: Suite, shard: Shard) -> list[tuple[str, str]]:
    """The pairs of `shard`: pair k of the suite's (model-major) pairs when k % N == I.

    Round-robin rather than contiguous blocks, for balance: tests differ in cost by orders of magnitude (a clean
    pass takes seconds, an attack hours), and blocks would give one shard a model's expensive tests and another
    only cheap ones. When N divides the number of tests, each shard gets the same tests for every model, so shards
    still differ by their tests' cost; pick N coprime to it for the most even spread. The price: most shards open
    most models (loading is cheap; a missing checkpoint is trained once, see the module docstring)."""
    return suite_pairs(suite)[shard.index :: shard.count]


def merge_command(suite: Suite, out: Path) -> str:
    """The `robustcollapse merge` command line that assembles the shard states of `out`."""
    flag = "" if out == default_output(suite) else f" --json {out}"
    return f"robustcollapse merge {suite._source}{flag}"


def run_eval(suite: Suite, out: Path, options: RunOptions, shard: str | None, console: Console) -> dict[str, Any]:
    """`eval`: the whole suite (`run_suite`) or, with `--shard I/N`, one share of it (`run_shard`, its document
    holds only its pairs). A whole run refuses when shard states of `out` are present: `merge` assembles them."""
    if shard is not None:
        if world().size > 1:
            raise UserError(
                f"--shard {shard}: a shard is one job of an array; run it without torchrun (or drop --shard)"
            )
        return run_shard(suite, out, options, parse_shard(shard), console)
    found = shard_states(out)
    if found:
        first = next(iter(found))
        raise UserError(
            f"{first}: a shard state of {out} from `eval --shard` ({len(found)} found); assemble them with "
            f"`{merge_command(suite, out)}`, or delete them to run the whole suite here"
        )
    return run_suite(suite, out, options, console)


def run_shard(suite: Suite, out: Path, options: RunOptions, shard: Shard, console: Console) -> dict[str, Any]:
    """Run the pairs of `shard`, keeping its state in `shard_path` (written after each pair and at the end, with
    `complete: true` once every pair finished); returns the document of its pairs (never written as one)."""
    check_output(out, "--json", protected_inputs(suite))
    check_checkpoints(suite, out)
    path = shard_path(out, shard)
    pairs = shard_pairs(suite, shard)
    with exclusive(path):
        remove_stale_temporaries(path)
        p = plan(suite, out, options, path)
        p.doc["env"]["host"] = socket.gethostname()
        shard_info = {"index": shard.index, "count": shard.count}
        p.state.update(shard=shard_info, model_info=p.doc["models"], env=p.doc["env"], overrides=p.doc["overrides"])
        p.state["complete"] = False
        try:
            run_pairs(p, pairs, options, console)
        finally:
            finished = sum(test in p.state["results"].get(model, {}) for model, test in pairs)
            p.state["complete"] = finished == len(pairs)
            write_json(path, p.state)
            console.print(f"{shard}: {finished} of its {len(pairs)} pairs finished: {path}", markup=False)
    if not pairs:
        console.print(f"{shard} has no pairs: the suite has {len(suite_pairs(suite))}", markup=False)
    console.print(f"when all {shard.count} shards have finished: {merge_command(suite, out)}", markup=False)
    return p.doc


def merge_shards(suite_file: Path, json_path: Path | None, console: Console) -> tuple[dict[str, Any], Suite, Path]:
    """`merge`: assemble the complete shard states of the output into its document, written atomically with
    `status: complete`; returns (document, suite with the shards' overrides applied, output path)."""
    base = load_suite(suite_file)
    out = json_path or default_output(base)
    check_output(out, "--json", protected_inputs(base))
    paths = _one_split(out, shard_states(out), suite_file)
    with exclusive(out), contextlib.ExitStack() as held:
        for path in paths:  # a shard still running is an error naming its state; none starts while we merge
            held.enter_context(exclusive(path))
        states = [_read_state(path, Shard(i, len(paths))) for i, path in enumerate(paths)]
        suite, limit = _suite_of(base, states[0], paths[0])
        check_output(out, "--json", protected_inputs(suite))  # the checkpoints of the shards' --epochs too
        for i, (path, state) in enumerate(zip(paths, states, strict=True)):
            _check_state(state, path, Shard(i, len(paths)), suite, limit, states[0]["overrides"])
        owners = _owners(states, paths, suite)
        _same_weights(states, paths, suite_file)
        doc = _assemble(suite, limit, states, owners, console)
        write_json(out, doc)
        for path in paths:
            path.unlink()
    return doc, suite, out


def _one_split(out: Path, found: dict[Path, Shard], suite_file: Path) -> list[Path]:
    """The state paths of shards 0..N-1 of the one split found; none, a missing or duplicated shard, or states
    of two splits are one-line errors naming the file."""
    if not found:
        pattern = shard_path(out, Shard(0, 1)).name.replace("-0-of-1", "-I-of-N")
        raise UserError(f"{out}: no shard states ({pattern}) to merge; run `eval {suite_file} --shard I/N` first")
    for path, shard in found.items():
        if shard.index >= shard.count:
            raise UserError(f"{path}: shard index {shard.index} out of range for {shard.count} shards")
    counts = sorted({shard.count for shard in found.values()})
    if len(counts) > 1:
        by_index: dict[int, list[Path]] = {}
        for path, shard in found.items():
            by_index.setdefault(shard.index, []).append(path)
        split = [next(path for path, shard in found.items() if shard.count == count) for count in counts[:2]]
        a, b = next((paths[:2] for paths in by_index.values() if len(paths) > 1), split)
        what = f"duplicated shard {found[a].index}" if found[a].index == found[b].index else "two splits"
        raise UserError(f"{what}: {a} and {b} (of {found[a].count} and {found[b].count} shards); delete the stale ones")
    count = counts[0]
    paths = [shard_path(out, Shard(i, count)) for i in range(count)]
    missing = [i for i, path in enumerate(paths) if path not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(
            f"shard {missing[0]} of {count} missing: {paths[missing[0]]}{more}; run it with "
            f"`robustcollapse eval {suite_file} --shard {missing[0]}/{count}` and the other shards' flags"
        )
    return paths


def _read_state(path: Path, shard: Shard) -> dict[str, Any]:
    """A shard state file, checked to be one and to hold the shard its name claims."""
    state = read_json(path, "shard state")
    if not isinstance(state, dict) or any(key not in state for key in STATE_FIELDS):
        raise UserError(f"{path}: not a shard state: it needs the fields {', '.join(STATE_FIELDS)}")
    claimed = state["shard"]
    if claimed != {"index": shard.index, "count": shard.count}:
        raise UserError(f"{path}: duplicated shard: it holds {claimed}, not the {shard} its name says; delete it")
    return state


def _suite_of(base: Suite, state: dict[str, Any], path: Path) -> tuple[Suite, int | None]:
    """The suite and example limit the shards ran: `base` with the overrides they recorded applied."""
    recorded = state["overrides"]
    try:
        overrides = Overrides(
            recorded.get("epochs"), tuple(recorded.get("models", ())), tuple(recorded.get("tests", ()))
        )
        suite = apply_overrides(base, overrides)
    except (UserError, AttributeError, TypeError) as exc:
        raise UserError(f"{path}: its overrides {recorded} do not fit {base._source}: {exc}") from None
    return suite, recorded.get("limit", suite.limit)


def _check_state(
    state: dict[str, Any], path: Path, shard: Shard, suite: Suite, limit: int | None, overrides: dict[str, Any]
) -> None:
    """One shard state: the first's overrides, this suite and limit, complete with every pair it owns."""
    if state["overrides"] != overrides:
        raise UserError(f"{path}: made with overrides {state['overrides']}, shard 0 with {overrides}; rerun it")
    if state["fingerprint"] != fingerprint(suite, limit, {k: v for k, v in overrides.items() if k in NUMERICS}):
        raise UserError(
            f"{path}: made from another suite or --limit than {suite._source} (limit {limit}, overrides "
            f"{overrides}); rerun `robustcollapse eval {suite._source} --shard {shard.index}/{shard.count}`"
        )
    pairs = shard_pairs(suite, shard)
    finished = [pair for pair in pairs if pair[1] in state["results"].get(pair[0], {})]
    if state["complete"] is not True or len(finished) < len(pairs):
        raise UserError(
            f"{shard} incomplete: {path} ({len(finished)} of {len(pairs)} pairs finished); finish it with "
            f"`robustcollapse eval {suite._source} --shard {shard.index}/{shard.count}` and the same flags"
        )


def _owners(states: list[dict[str, Any]], paths: list[Path], suite: Suite) -> dict[tuple[str, str], int]:
    """Which shard holds each pair; a pair in two shards, or in none, is an error naming the files."""
    owners: dict[tuple[str, str], int] = {}
    for i, state in enumerate(states):
        for model, tests in state["results"].items():
            for test_id in tests:
                if (model, test_id) in owners:
                    other = paths[owners[model, test_id]]
                    raise UserError(f"{paths[i]}: pair {model} / {test_id} is in two shards (also {other})")
                owners[model, test_id] = i
    lost = [pair for pair in suite_pairs(suite) if pair not in owners]
    if lost:
        raise UserError(f"pair {lost[0][0]} / {lost[0][1]} is in none of the shard states {paths[0]}, …")
    return owners


def _same_weights(states: list[dict[str, Any]], paths: list[Path], suite_file: Path) -> None:
    """Every shard that opened a model used the same weights (sha256), else results of two models would mix."""
    seen: dict[str, tuple[str, Path]] = {}
    for path, state in zip(paths, states, strict=True):
        for model, digest in state["models"].items():
            first, where = seen.setdefault(model, (digest, path))
            if digest != first:
                raise UserError(
                    f"{path}: model {model!r} has other weights than in {where} (sha256 {str(digest)[:12]}… vs "
                    f"{str(first)[:12]}…); train it once (`robustcollapse train {suite_file}`) and rerun the shards"
                )


def _assemble(
    suite: Suite, limit: int | None, states: list[dict[str, Any]], owners: dict[tuple[str, str], int], console: Console
) -> dict[str, Any]:
    """The document of the whole suite, filled as an unsharded run fills it: models, then pairs in suite order."""
    env = {key: value for key, value in states[0]["env"].items() if key != "host"}
    env["shards"] = [{"index": i, **state["env"]} for i, state in enumerate(states)]
    differ = [key for key in VERSIONS if len({json.dumps(state["env"].get(key)) for state in states}) > 1]
    if differ:
        message = f"warning: the shards ran different {', '.join(differ)} (see env.shards)"
        console.print(message, style="yellow", markup=False)
    doc = new_document(suite.model_dump(mode="json"), env)
    doc["suite"]["limit"] = limit
    doc["overrides"] = states[0]["overrides"]
    for entry in suite.models:
        infos = [state["model_info"][entry.name] for state in states if entry.name in state["model_info"]]
        trained = [info for info in infos if info.get("trained_now")]
        if infos:
            doc["models"][entry.name] = (trained or infos)[0]
    for model, test_id in suite_pairs(suite):
        record(doc, model, test_id, states[owners[model, test_id]]["results"][model][test_id])
    finish(doc, dict(zip(suite.test_ids(), suite.test_entries(), strict=True)))
    doc["status"] = "complete"
    return doc
