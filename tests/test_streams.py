"""The process-level promises of README's Reliability section, on a real `robustcollapse` process: a closed
stdout pipe exits quietly with the command's own code, a stdout that cannot print UTF-8 gets ASCII spellings, and
Ctrl-C (SIGINT) is exit 130 with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a fresh robustcollapse process per test

COMMAND = [sys.executable, "-m", "robustcollapse"]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "120", "PYTHONUNBUFFERED": "1", **extra}


def test_a_closed_stdout_pipe_exits_quietly_with_the_commands_code(tmp_path):
    """`robustcollapse list | head -1`: the reader is gone before the first table is printed; the exit is 0 (as
    `ls | head -1` is) and nothing reaches stderr, so a passing command never reads as failed under pipefail."""
    process = subprocess.Popen(
        [*COMMAND, "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=tmp_path
    )
    process.stdout.close()  # before the interpreter has even imported torch: the first write meets EPIPE
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, stderr
    assert stderr == ""


@pytest.mark.parametrize("encoding", ["ascii"])
def test_a_stdout_that_cannot_print_utf8_gets_ascii(tmp_path, encoding):
    """Under an encoding without box lines or `…` (a `PYTHONIOENCODING`, or a console code page; a plain C locale
    is not one: Python >= 3.7 runs it in UTF-8 mode) the tables print ASCII spellings (`...` for `…`, `eps` for
    ε) instead of raising UnicodeEncodeError after the work is done."""
    env = {k: v for k, v in _env(PYTHONIOENCODING=encoding).items() if k != "PYTHONUTF8"}
    result = subprocess.run(
        [*COMMAND, "list", "datasets"], capture_output=True, env=env, cwd=tmp_path, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"Traceback" not in result.stderr
    text = result.stdout.decode(encoding)
    assert "cifar-10-batches-py/ ...)" in text and "…" not in text


def test_ctrl_c_during_an_export_is_exit_130_in_one_line(tmp_path):
    """SIGINT in the middle of `corrupt --export` (no eval involved): exit 130, one line saying so; the export's
    manifest, written first, says it is not complete, so the half-made folder is refused when read."""
    process = subprocess.Popen(
        [*COMMAND, "corrupt", "digits", "--export", "out", "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=tmp_path,
    )
    manifest = tmp_path / "out" / "manifest.json"
    deadline = time.monotonic() + 120
    while not manifest.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the export finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 130, stderr.decode()
    assert "Traceback" not in stderr.decode() and lines[-1].startswith("interrupted"), lines
    assert '"complete": false' in Path(manifest).read_text()
