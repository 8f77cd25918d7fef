"""One progress display for every long loop (training epochs, attack batches, corruptions, OOD sets).

    with track(len(batches), "pgd eps 8/255", unit="images") as advance:
        for batch in batches:
            ...
            advance(len(batch))

On a terminal this is a rich bar on stderr — description, bar, M/N count, percentage, rate (images/s), elapsed
time and time remaining. When stderr is not a terminal (CI logs, SLURM output files, `2> log`) a redrawn bar would
be a mess of control codes, so a plain line is printed at most every `every` seconds and once at the end:

    pgd eps 8/255: 120/500 (24 %) 37.5 images/s, eta 10 s
    pgd eps 8/255: 500/500 (100 %) 37.9 images/s, done in 13 s

Nothing is printed when `set_quiet(True)` was called (the CLI's --quiet) or on torchrun ranks other than 0, whose
progress would repeat rank 0's. Loops nest (a test's batches inside a model's tests): rich allows one live display
per console, so every loop is a task of one shared Progress, and an inner loop's task is removed when it ends.
In plain mode an inner loop's final line is printed only if the loop printed progress lines, so a loop of many
short inner loops does not flood the log. If another live display already runs on the console (a rich Progress
not made here), the loop falls back to plain lines printed through that console, above its display.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from rich.console import Console
from rich.errors import LiveError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from robustcollapse.distributed import is_main

LOG_EVERY_S = 30.0  # plain mode: seconds between two progress lines of one loop
Advance = Callable[[int], None]
Clock = Callable[[], float]
T = TypeVar("T")


@dataclass
class _State:
    """Module-wide settings and the one live display shared by nested loops."""

    quiet: bool = False
    console: Console | None = None
    depth: int = 0  # loops currently open, in any mode
    live: Progress | None = None  # the shared rich Progress while a terminal loop is open
    live_users: int = 0


_state = _State()


def set_quiet(quiet: bool = True) -> None:
    """Silence every progress display (the CLI's --quiet); results and errors are printed elsewhere."""
    _state.quiet = quiet


def set_console(console: Console | None) -> None:
    """The console progress is drawn on (default: a rich Console on stderr)."""
    _state.console = console


def main_only(console: Console) -> Console:
    """`console` on rank 0 (and in one process); a silent console on the other torchrun ranks, which compute the
    same things and would print them again."""
    return console if is_main() else Console(quiet=True)


def _console() -> Console:
    """The module's console, made on first use (a rich Console on stderr, which decides terminal or not)."""
    if _state.console is None:
        _state.console = Console(stderr=True)
    return _state.console


class RateColumn(ProgressColumn):
    """Items per second with the loop's own unit ("images/s"); the final rate once the task is finished."""

    def render(self, task: Task) -> Text:
        """Empty until rich has two samples to estimate a rate from."""
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "items")
        return Text("" if speed is None else f"{_number(speed)} {unit}/s", style="progress.data.speed")


def _number(rate: float) -> str:
    """A rate with about three significant digits, never in exponent notation."""
    if rate >= 100:
        return f"{rate:.0f}"
    return f"{rate:.1f}" if rate >= 10 else f"{rate:.2f}"


def duration(seconds: float) -> str:
    """A short human duration: '7 s', '3 min 20 s', '2 h 05 min'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def status_line(description: str, done: int, total: int | None, elapsed: float, unit: str, end: str = "") -> str:
    """The plain-mode line: 'desc: 120/500 (24 %) 37.5 images/s, eta 10 s' ('done in …' or 'stopped' at the end)."""
    rate = done / elapsed if elapsed > 0 else None
    count = f"{done}/{total} ({100 * done / total:.0f} %)" if total else f"{done} {unit}"
    line = f"{description}: {count}"
    if rate is not None:
        line += f" {_number(rate)} {unit}/s"
    if end == "done":
        return f"{line}, done in {duration(elapsed)}"
    if end:
        return f"{line}, {end} after {duration(elapsed)}"
    if total and rate:
        line += f", eta {duration((total - done) / rate)}"
    return line


def _columns() -> tuple[ProgressColumn, ...]:
    """Description (user text: never read as markup), bar, M/N, %, rate, elapsed, remaining."""
    return (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )


class _Plain:
    """Rate-limited plain lines for one loop, written through the console (so they land above a live display)."""

    def __init__(self, console: Console, description: str, total: int | None, unit: str, clock: Clock, every: float):
        """A loop that starts now by `clock`."""
        self.console, self.description, self.total, self.unit = console, description, total, unit
        self.clock, self.every = clock, every
        self.start = self.last = clock()
        self.done, self.lines = 0, 0

    def advance(self, k: int = 1) -> None:
        """Count k more items; print a line if `every` seconds passed since the last one."""
        self.done += k
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self._print(status_line(self.description, self.done, self.total, now - self.start, self.unit))

    def finish(self, end: str, always: bool) -> None:
        """The closing line ('done in …' or 'stopped after …'): when `always`, or when the loop printed before."""
        if always or self.lines:
            self._print(status_line(self.description, self.done, self.total, self.clock() - self.start, self.unit, end))

    def _print(self, line: str) -> None:
        """User text is printed literally: no markup, highlighting or emoji codes."""
        self.lines += 1
        self.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


def _shared_live(console: Console, clock: Clock) -> Progress | None:
    """The live Progress every open loop adds its task to, started by the outermost one; None when another live
    display already runs on this console and rich (before 14) refuses a second one."""
    if _state.live is None:
        live = Progress(*_columns(), console=console, get_time=clock, transient=False)
        try:
            live.start()
        except LiveError:
            return None
        _state.live = live
    return _state.live


@contextmanager
def _task(live: Progress, description: str, total: int | None, unit: str) -> Iterator[Advance]:
    """One loop's task on the shared Progress: an inner loop's task is removed when it ends, the outermost loop's
    stays as the final line, and the display stops with the outermost loop."""
    outermost = _state.live_users == 0
    _state.live_users += 1
    task = live.add_task(description, total=total, unit=unit)
    try:
        yield lambda k=1: live.advance(task, k)
    finally:
        _state.live_users -= 1
        if not outermost:
            live.remove_task(task)
        if _state.live_users == 0:
            _state.live = None
            live.stop()


@contextmanager
def track(
    total: int | None,
    description: str,
    unit: str = "items",
    *,
    console: Console | None = None,
    clock: Clock = time.monotonic,
    every: float = LOG_EVERY_S,
) -> Iterator[Advance]:
    """Show the progress of a loop of `total` items (None: unknown); yields `advance(k=1)` to call as items finish.

    A rich bar on a terminal, plain lines at most every `every` seconds elsewhere, nothing when quiet or on a
    rank other than 0. `console` overrides the module's console for this loop; `clock` is injectable for tests."""
    if _state.quiet or not is_main():
        yield _nothing
        return
    out = console or _console()
    terminal = out.is_terminal and not out.is_dumb_terminal
    _state.depth += 1
    try:
        live = _shared_live(out, clock) if terminal else None
        if live is not None:
            with _task(live, description, total, unit) as advance:
                yield advance
            return
        yield from _plain_loop(_Plain(out, description, total, unit, clock, every))
    finally:
        _state.depth -= 1


def _plain_loop(plain: _Plain) -> Iterator[Advance]:
    """Yield the plain advance, then the final line: always for an outermost loop that finished; 'stopped' on an
    exception only when the loop printed before (an error right away is the one line a user should see)."""
    outermost = _state.depth == 1
    try:
        yield plain.advance
    except BaseException:
        plain.finish("stopped", always=False)
        raise
    plain.finish("done", always=outermost)


def _nothing(k: int = 1) -> None:
    """The advance of a silent loop."""


def iterate(items: Iterable[T], description: str, unit: str = "items", total: int | None = None) -> Iterator[T]:
    """`for x in iterate(batches, "clean"):` — track(len(items)) advanced by one per item yielded."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with track(total, description, unit) as advance:
        for item in items:
            yield item
            advance(1)


__all__ = [
    "LOG_EVERY_S",
    "RateColumn",
    "duration",
    "iterate",
    "main_only",
    "set_console",
    "set_quiet",
    "status_line",
    "track",
]
