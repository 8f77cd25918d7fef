"""robustcollapse.progress: plain lines off a terminal (CI logs, SLURM files), rich bars on one, silence when quiet
or on ranks other than 0, nesting. A fake clock drives the rates and ETAs, so nothing sleeps."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.progress import Progress

from robustcollapse import progress
from robustcollapse.progress import duration, iterate, set_quiet, status_line, track


class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts unquiet, as rank 0 of one process, with no live display left over."""
    monkeypatch.setattr(progress, "_state", progress._State())
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def log_console() -> Console:
    """What a CI log or a SLURM output file is: not a terminal."""
    return Console(file=io.StringIO(), width=200)


def tty_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=160, color_system=None)


def text(console: Console) -> str:
    return console.file.getvalue()  # type: ignore[attr-defined]


def run_loop(console: Console, clock: FakeClock, steps: int = 50, per_step: int = 10, every: float = 10) -> None:
    """500 images, 10 per simulated second."""
    with track(steps * per_step, "pgd eps 8/255", unit="images", console=console, clock=clock, every=every) as advance:
        for _ in range(steps):
            clock.now += 1
            advance(per_step)


def test_off_a_terminal_plain_lines_with_counts_rate_and_eta():
    console, clock = log_console(), FakeClock()
    run_loop(console, clock)
    assert text(console).splitlines() == [
        "pgd eps 8/255: 100/500 (20 %) 10.0 images/s, eta 40 s",
        "pgd eps 8/255: 200/500 (40 %) 10.0 images/s, eta 30 s",
        "pgd eps 8/255: 300/500 (60 %) 10.0 images/s, eta 20 s",
        "pgd eps 8/255: 400/500 (80 %) 10.0 images/s, eta 10 s",
        "pgd eps 8/255: 500/500 (100 %) 10.0 images/s, eta 0 s",
        "pgd eps 8/255: 500/500 (100 %) 10.0 images/s, done in 50 s",
    ]


def test_a_short_loop_is_one_final_line_and_an_unknown_total_has_no_eta():
    console, clock = log_console(), FakeClock()
    with track(None, "ood textures", unit="batches", console=console, clock=clock, every=30) as advance:
        for _ in range(4):
            clock.now += 0.5
            advance()
    assert text(console).splitlines() == ["ood textures: 4 batches 2.00 batches/s, done in 2 s"]


def test_inner_loops_print_only_when_long_and_a_failure_says_where_it_stopped():
    console, clock = log_console(), FakeClock()
    with pytest.raises(KeyError):
        with track(3, "model binary", unit="tests", console=console, clock=clock, every=10) as outer:
            with track(5, "clean", console=console, clock=clock, every=10) as inner:  # 5 s: silent
                for _ in range(5):
                    clock.now += 1
                    inner()
            outer()
            with track(4, "attack", console=console, clock=clock, every=10) as inner:  # 20 s: shows itself
                for _ in range(4):
                    clock.now += 5
                    inner()
            outer()
            raise KeyError("boom")
    assert text(console).splitlines() == [
        "attack: 2/4 (50 %) 0.20 items/s, eta 10 s",
        "attack: 4/4 (100 %) 0.20 items/s, eta 0 s",
        "attack: 4/4 (100 %) 0.20 items/s, done in 20 s",
        "model binary: 2/3 (67 %) 0.08 tests/s, eta 12 s",
        "model binary: 2/3 (67 %) 0.08 tests/s, stopped after 25 s",
    ]


def test_quiet_prints_nothing():
    set_quiet(True)
    for console in (log_console(), tty_console()):
        run_loop(console, FakeClock())
        assert text(console) == ""


def test_a_rank_other_than_0_prints_nothing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    for console in (log_console(), tty_console()):
        run_loop(console, FakeClock())
        assert text(console) == ""
    monkeypatch.setenv("RANK", "0")
    console = log_console()
    run_loop(console, FakeClock())
    assert text(console).count("\n") == 6


def test_on_a_terminal_a_bar_with_count_rate_and_description_taken_literally():
    console, clock = tty_console(), FakeClock()
    with track(10, "[bold]clean[/bold]", unit="images", console=console, clock=clock) as advance:
        for _ in range(10):
            clock.now += 0.5
            advance()
    shown = text(console)
    assert "[bold]clean[/bold]" in shown  # user text is never read as rich markup
    assert "10/10" in shown and "100%" in shown
    assert "2.00 images/s" in shown


def test_nested_loops_share_one_display_and_inner_tasks_leave(monkeypatch: pytest.MonkeyPatch):
    console, clock = tty_console(), FakeClock()
    with track(2, "model baseline", unit="tests", console=console, clock=clock) as outer:
        for test in ("clean", "attack"):
            with track(3, test, console=console, clock=clock) as inner:
                assert progress._state.live is not None and len(progress._state.live.tasks) == 2
                for _ in range(3):
                    clock.now += 1
                    inner()
            outer()
        assert len(progress._state.live.tasks) == 1
    assert progress._state.live is None and "2/2" in text(console)


def test_a_foreign_live_display_does_not_crash_a_loop():
    console, clock = tty_console(), FakeClock()
    with Progress(console=console) as theirs:
        theirs.add_task("training", total=1)
        with track(3, "corruptions", console=console, clock=clock, every=1) as advance:
            for _ in range(3):
                clock.now += 1
                advance()
    assert "3/3" in text(console)


def test_iterate_yields_every_item_and_counts_them():
    console = log_console()
    progress.set_console(console)
    assert list(iterate(range(7), "batches")) == list(range(7))
    assert text(console).splitlines()[-1].startswith("batches: 7/7 (100 %)")


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.4, "0 s"), (7, "7 s"), (200, "3 min 20 s"), (7500, "2 h 05 min"), (-3, "0 s")]
)
def test_durations(seconds: float, shown: str):
    assert duration(seconds) == shown


def test_status_line_before_any_time_passed_has_no_rate():
    assert status_line("x", 0, 10, 0.0, "items") == "x: 0/10 (0 %)"


def test_an_error_before_any_progress_line_leaves_the_error_as_the_only_line():
    console, clock = log_console(), FakeClock()
    with pytest.raises(ValueError):
        with track(3, "suite", unit="tests", console=console, clock=clock, every=10):
            clock.now += 1
            raise ValueError("bad model entry")
    assert text(console) == ""
