"""The shape of the attack package: what it registers, the order the checks run in, what it may import, and the
size limits that keep one attack or one check a small, separate piece."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import robustcollapse
from robustcollapse import registry
from robustcollapse.attacks import check, check_names
from robustcollapse.attacks.checks import registered

PACKAGE = Path(robustcollapse.__file__).parent
ATTACKS = PACKAGE / "attacks"
UPPER_LAYERS = ("evaluate", "report", "cli", "api", "ood", "corruptions", "train", "training_cli")

CHECK_ORDER = (
    "nondeterministic",
    "diffuse_softmax",
    "bad_gradients",
    "single_step_stronger",
    "not_monotone",
    "unbounded_survivors",
    "black_box_stronger",
    "noise_not_weaker",
    "invalid_adversarials",
    "steps_sensitive",
    "silent_success",
    "incomplete_optimisation",
    "transfer_failure",
    "unstable_predictions",
    "targeted_stronger",
    "loss_sensitive",
    "white_box_disagreement",
)
ATTACK_NAMES = [
    "apgd-ce",
    "apgd-dlr",
    "apgd-t",
    "autoattack",
    "autoattack-rand",
    "cw",
    "deepfool",
    "fab",
    "fgm",
    "fgsm",
    "mt-pgd",
    "pgd",
    "pgdl2",
    "square",
]


def test_the_checks_run_in_their_pinned_order_and_every_registered_check_runs():
    # the order names the flags' columns and the summaries of result documents: it must not move by accident
    assert check_names() == CHECK_ORDER
    assert registry.names("check") == sorted(check_names())
    assert [c.name for c in registered() if c.audits_runs] == ["invalid_adversarials"]


def test_the_registered_attacks_keep_their_names():
    assert registry.names("attack") == ATTACK_NAMES


def test_a_check_cannot_take_another_checks_place():
    with pytest.raises(ValueError, match="order 10 is taken by 'nondeterministic'"):
        check("another", "a symptom", "any point", "nobody", order=10)(lambda probe: {})
    assert "another" not in registry.names("check")


def test_importing_the_attacks_registers_them_without_the_layers_above():
    code = (
        "import sys, robustcollapse.attacks as a, robustcollapse.registry as r\n"
        "print(len(a.check_names()), len(r._FAMILIES['attack']))\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('robustcollapse.'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    counts, modules = out.splitlines()
    assert counts == f"{len(CHECK_ORDER)} {len(ATTACK_NAMES)}"
    loaded = modules.split()
    assert "robustcollapse.attacks.checks.pintor2022" in loaded
    assert [m for m in loaded if m.split(".")[1] in UPPER_LAYERS] == []


def test_the_attacks_import_nothing_from_the_layers_above():
    # also imports inside functions, which the fresh interpreter above would not see
    for path in sorted(ATTACKS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            upward = [n for n in names if n.startswith("robustcollapse.") and n.split(".")[1] in UPPER_LAYERS]
            assert not upward, f"{path.relative_to(PACKAGE.parent)} imports {upward}"


def test_modules_and_functions_stay_small():
    for path in [*sorted(ATTACKS.rglob("*.py")), PACKAGE / "evaluate" / "attack.py"]:
        source = path.read_text()
        assert len(source.splitlines()) <= 400, path
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno - node.lineno + 1 <= 50, f"{path}:{node.lineno} {node.name}"
