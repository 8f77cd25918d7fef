"""Property-based fuzz (hypothesis, derandomised: a fixed seed and a bounded number of examples, so CI is
reproducible) of the three readers of user files: the suite loader, the result-document reader and the gate.
Whatever the input: the exit code is 0, 1 or 2, a bad input is one `error:` line and a failed gate `gate failed:`
lines, there is no traceback, and no file changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from robustcollapse.cli import main
from robustcollapse.config import load_suite
from robustcollapse.errors import UserError

FUZZ = settings(
    derandomize=True,
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

GOOD_SUITE: dict[str, Any] = {
    "name": "s",
    "dataset": "digits",
    "models": [{"name": "m", "checkpoint": "m.safetensors"}],
    "tests": [{"kind": "clean"}, {"kind": "attack", "attacks": ["fgsm"], "eps": [0.1]}],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "name",
        "dataset",
        "models",
        "tests",
        "seed",
        "batch_size",
        "kind",
        "eps",
        "attacks",
        "bins",
        "checkpoint",
        "regression",
        "tolerances",
        "n_examples",
        "heldout",
        "train",
        "epochs",
    ]
)


def _mutate(value: Any, path: list[Any], replacement: Any) -> Any:
    """`value` with the node at `path` (keys/indices, as far as they exist) replaced."""
    if not path:
        return replacement
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        key = head if head in value or not value else list(value)[hash(head) % len(value)]
        return {**value, key: _mutate(value.get(key), rest, replacement)}
    if isinstance(value, list) and value:
        i = hash(head) % len(value)
        return [*value[:i], _mutate(value[i], rest, replacement), *value[i + 1 :]]
    return replacement


suites = st.builds(
    _mutate,
    st.just(GOOD_SUITE),
    st.lists(st.one_of(keys, st.integers(0, 3)), max_size=4),
    json_values,
)


def _text(doc: Any) -> str:
    """JSON text with NaN/Infinity literals as Python writes them (a reader must judge those, not crash)."""
    return json.dumps(doc, allow_nan=True)


def _snapshot(where: Path) -> dict[str, bytes]:
    return {str(p.relative_to(where)): p.read_bytes() for p in sorted(where.rglob("*")) if p.is_file()}


def _assert_clean_exit(result: Any, allowed: set[int]) -> None:
    assert result.exit_code in allowed, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    if result.exit_code == 2:  # bad input: one line
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    if result.exit_code == 1:  # the gate failed: one line per kind of failure
        assert lines and all(line.startswith("gate failed: ") for line in lines), result.stderr


@FUZZ
@given(suite=suites)
def test_the_suite_loader_returns_a_suite_or_one_user_error(tmp_path_factory, suite):
    """Any YAML mapping near a valid suite loads or is a one-line UserError naming the file."""
    path = tmp_path_factory.mktemp("s") / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    try:
        load_suite(path)
    except UserError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc), str(exc)


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_the_suite_loader_survives_arbitrary_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("s") / "s.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_suite(path)
    except UserError as exc:
        assert "\n" not in str(exc), str(exc)


def _document(metrics: Any, suite: Any, status: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "status": status,
        "suite": suite,
        "env": {},
        "models": {"m": {}},
        "metrics": metrics,
        "details": {},
        "flags": {},
        "timings": {"m": {"clean": 1.0}},
        "warnings": [],
        "overrides": {},
    }


metric_maps = st.dictionaries(
    st.sampled_from(["clean/acc", "clean/ece", "clean/nll", "attack/pgd/0.1/acc", "ood/noise/msp/auroc", "x"]),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.text(max_size=3)),
    max_size=6,
)
documents = st.one_of(
    st.builds(
        _document,
        st.one_of(st.dictionaries(st.sampled_from(["m", "n"]), metric_maps, max_size=2), json_values),
        st.one_of(
            st.just({"name": "s", "dataset": "digits"}),
            st.just(GOOD_SUITE),
            st.fixed_dictionaries(
                {
                    "dataset": st.sampled_from(["digits", "mnist5k"]),
                    "regression": st.fixed_dictionaries(
                        {"tolerances": st.dictionaries(st.sampled_from(["clean/*", "*"]), json_values, max_size=2)}
                    ),
                }
            ),
            json_values,
        ),
        st.sampled_from(["complete", "running", "interrupted", None]),
    ),
    json_values,
)


@FUZZ
@given(doc=documents)
def test_show_reads_any_document_or_refuses_it_in_one_line(tmp_path_factory, doc):
    where = tmp_path_factory.mktemp("d")
    (where / "r.json").write_text(_text(doc))
    before = _snapshot(where)
    result = CliRunner().invoke(main, ["show", str(where / "r.json")], env={"COLUMNS": "200"})
    event(f"exit {result.exit_code}")
    _assert_clean_exit(result, {0, 2})
    assert _snapshot(where) == before


@FUZZ
@given(base=documents, new=documents, tolerances=st.one_of(st.none(), json_values))
def test_the_gate_exits_0_1_or_2_on_any_pair(tmp_path_factory, base, new, tolerances):
    where = tmp_path_factory.mktemp("g")
    (where / "a.json").write_text(_text(base))
    (where / "b.json").write_text(_text(new))
    args = ["compare", str(where / "a.json"), str(where / "b.json")]
    if tolerances is not None:
        (where / "t.yaml").write_text(yaml.safe_dump(tolerances))
        args += ["--tolerances", str(where / "t.yaml")]
    before = _snapshot(where)
    result = CliRunner().invoke(main, args, env={"COLUMNS": "200"})
    event(f"exit {result.exit_code}")
    _assert_clean_exit(result, {0, 1, 2})
    assert _snapshot(where) == before
