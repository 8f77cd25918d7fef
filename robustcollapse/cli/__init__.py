"""The command line (`robustcollapse`, `python -m robustcollapse`): `commands.py` holds the Click commands,
`errors.py` how they fail."""

from robustcollapse.cli.commands import main

__all__ = ["main"]
