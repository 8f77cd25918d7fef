"""Files the tool writes: atomic replacement, one writer per output, stale temporaries, JSON with no NaN.

Every result, resume state and checkpoint goes through `atomic_write_bytes`, so a reader (or a run killed at any
instant) sees either the old file or the new one, never a mixture.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from robustcollapse.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer is the user's business
    fcntl = None  # type: ignore[assignment]


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers never see a half file.

    The file gets the permissions a plain `open` would (0666 less the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temp files a killed `atomic_write_bytes(path, …)` left behind (SIGKILL skips its cleanup).

    Call it only while holding `exclusive(path)` (or for files no other process writes), so a live writer's temp
    file is never taken."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = [p for p in path.parent.glob(_temporary_prefix(path) + "*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def clean_numbers(obj: Any) -> Any:
    """JSON-safe copy: NaN/Inf become None (JSON has no NaN), tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean_numbers(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_numbers(v) for v in obj]
    return obj


def write_json(path: Path, doc: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(clean_numbers(doc), indent=2, sort_keys=False) + "\n")


def lock_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".lock")


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an advisory lock on `<path>.lock` while writing `path`: a second run writing the same output stops
    at once with a one-line error instead of interleaving its results. The lock dies with the process."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(
                    f"{path}: another robustcollapse run is writing it (lock {lock}); wait for it"
                ) from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


@contextlib.contextmanager
def one_at_a_time(path: Path | None, on_wait: Callable[[], None]) -> Iterator[None]:
    """Hold `<path>.lock`, waiting (after calling `on_wait` once) while another process holds it.

    For files that several runs may make at once and that are then only read, such as a checkpoint two shards of a
    job array both miss: the second waits for the first's training and loads its weights. A holder removes the
    lock file on release, so a waiter checks that its lock is on the file still at that path and otherwise takes
    the new one. Without advisory locks, or where no lock file can be made (a read-only folder, where nothing can
    be written anyway) or `path` is None, it holds nothing."""
    if path is None or fcntl is None:
        yield
        return
    lock = lock_path(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fh = _locked(lock, on_wait)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        fh.close()


def _locked(lock: Path, on_wait: Callable[[], None]) -> IO[str]:
    """An open handle holding the advisory lock on the file now at `lock` (waiting for it if need be)."""
    waited = False
    while True:
        fh = open(lock, "a+")  # noqa: SIM115 - held open while the lock is held, closed by the caller
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not waited:
                    on_wait()
                    waited = True
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            if os.fstat(fh.fileno()).st_ino == os.stat(lock).st_ino:
                return fh
        except FileNotFoundError:
            pass  # released and removed by the holder we waited for: lock the file at that path now
        except BaseException:
            fh.close()
            raise
        fh.close()


def check_output(path: Path, flag: str, protected: dict[Path, str]) -> None:
    """Refuse, before any work, an output the run could not write or must not overwrite.

    `protected` maps input files (the suite, checkpoints) to what they are; the output may be none of them, nor a
    checkpoint's weights or sidecar, nor a folder; its folder must be creatable and writable."""
    path = Path(path)
    resolved = path.resolve()
    for other, what in protected.items():
        if Path(other).resolve() == resolved:
            raise UserError(f"{flag} {path}: that is the {what}; give another file for the results")
    if path.suffix == ".safetensors" or (path.is_file() and _is_checkpoint_sidecar(path)):
        raise UserError(f"{flag} {path}: that is a model checkpoint; give another file for the results")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file path such as {path / 'results.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path}: the file exists and is not writable")


def _is_checkpoint_sidecar(path: Path) -> bool:
    return path.with_suffix(".safetensors").is_file()
