"""The command line (`robustcollapse`, `python -m robustcollapse`): `commands.py` holds the Click commands (`board`
its own module, `board.py`), `errors.py` how they fail."""

from robustcollapse.cli.board import board
from robustcollapse.cli.commands import main

main.add_command(board)

__all__ = ["main"]
