"""How the command line fails: bad input is one line on stderr (exit 2, or the error's own code), Ctrl-C and
SIGTERM are exit 130 with the finished results kept, and click's usage errors print like every other bad input."""

from __future__ import annotations

import codecs
import functools
import io
import os
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
        except OSError as exc:  # a full disk, a read-only folder, a name too long: what and where, finished work kept
            where = f"{exc.filename}: " if exc.filename else ""
            message = f"{where}{exc.strerror or exc} (errno {exc.errno}); finished results are kept"
            err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            sys.exit(2)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted:[/] finished results are kept; rerun the same command to resume")
            sys.exit(130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


ASCII_FALLBACK = {"ε": "eps", "✓": "ok", "⚠": "!", "×": "x", "—": "-", "–": "-", "→": "->", "…": "...", "±": "+-"}


def _ascii_fallback(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: a character the terminal's encoding lacks becomes its ASCII spelling (or '?')."""
    assert isinstance(error, UnicodeEncodeError)
    text = error.object[error.start : error.end]
    return "".join(ASCII_FALLBACK.get(ch, "?") for ch in text), error.end


codecs.register_error("robustcollapse-ascii", _ascii_fallback)


class _PipeSafe:
    """A text stream whose reader may go away (`robustcollapse show … | head -1`): after a broken pipe, output is
    dropped instead of raised, so the command finishes with its own exit code, quietly, as Unix tools do."""

    def __init__(self, stream: Any) -> None:
        self._stream, self._closed = stream, False

    def write(self, text: str) -> int:
        if not self._closed:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self._closed:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self._closed = True
        try:  # the interpreter flushes stdout at exit: point the descriptor at /dev/null so that flush is quiet too
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _guard_streams() -> tuple[Any, Any]:
    """Make stdout and stderr safe for any terminal: characters its encoding lacks get an ASCII spelling (a
    non-UTF-8 locale must not crash a run after its work), and a closed stdout pipe is not an error."""
    saved = sys.stdout, sys.stderr
    for stream in saved:
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (getattr(stream, "encoding", None) or "").lower().replace("-", "") != "utf8":
            try:
                reconfigure(errors="robustcollapse-ascii")
            except (ValueError, io.UnsupportedOperation):
                pass
    sys.stdout = _PipeSafe(sys.stdout)
    return saved


class OneLineErrors(click.Group):
    """Click's usage errors (a bad flag, a value out of range) print as one line like every other bad input,
    `error: COMMAND: message (see COMMAND --help)` with exit 2, instead of click's usage block."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        saved = _guard_streams()
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
        finally:
            sys.stdout, sys.stderr = saved
        sys.exit(code if isinstance(code, int) else 0)
