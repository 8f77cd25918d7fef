"""nox sessions: `tests` (the README's test command), `lint` (ruff)."""

import nox

nox.options.sessions = ["tests", "lint"]
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


@nox.session
def tests(session: nox.Session) -> None:
    """Install the package with its test extra and run pytest."""
    session.install(*TORCH)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check + format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
