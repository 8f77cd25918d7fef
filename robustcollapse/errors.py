"""User-facing errors: each prints as one line and exits with a fixed code, never a traceback."""


class UserError(Exception):
    """A problem with the user's input (file, field, value); the CLI prints it on one line and exits 2."""

    exit_code = 2


class DataNotFoundError(UserError):
    """A data set that is read from disk is not where we looked."""


class ChecksFired(UserError):
    """`eval --strict`: an honesty check fired on a robustness number (exit 3)."""

    exit_code = 3
