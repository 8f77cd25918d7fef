"""The command line in this process, in a given folder: what the subprocess tests use for a run that no signal
interrupts and no second rank shares (a fresh interpreter costs 4 s of imports)."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner, Result

from robustcollapse.cli import main


def cli(cwd: Path, *args: str) -> Result:
    """`robustcollapse ARGS` run in `cwd` (lines 200 columns wide, so no message wraps); the working folder is
    restored afterwards."""
    here = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})
    finally:
        os.chdir(here)
