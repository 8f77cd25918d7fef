"""How the command line fails: bad input is one line on stderr (exit 2, or the error's own code), Ctrl-C and
SIGTERM are exit 130 with the finished results kept, and click's usage errors print like every other bad input."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from robustcollapse.errors import UserError

err_console = Console(stderr=True, emoji=False)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM (what a batch scheduler sends before killing) is handled like Ctrl-C."""
    raise KeyboardInterrupt


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn UserError into a one-line message (its exit code, 2 for bad input) and Ctrl-C or SIGTERM into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import robustcollapse.evaluate  # noqa: F401  (registers every plug-in: test kinds and their families)

        try:
            previous = signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread: leave signals alone
            previous = None
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted:[/] finished results are kept; rerun the same command to resume")
            sys.exit(130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


class OneLineErrors(click.Group):
    """Click's usage errors (a bad flag, a value out of range) print as one line like every other bad input,
    `error: COMMAND: message (see COMMAND --help)` with exit 2, instead of click's usage block."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "robustcollapse"
            message = f"{command}: {exc.format_message()} (see {command} --help)"
            err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            err_console.print(f"[bold red]error:[/] {escape(exc.format_message())}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            err_console.print("[yellow]interrupted[/]")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)
