"""Files the tool writes: atomic replacement, one writer per output, stale temporaries, JSON with no NaN.

Every result, resume state and checkpoint goes through `atomic_write_bytes`, so a reader (or a run killed at any
instant) sees either the old file or the new one, never a mixture.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
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
    except OSError as exc:  # a full disk or a vanished folder: name the file, not a file descriptor
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
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


MAX_JSON_BYTES = 1 << 30  # 1 GiB: far above any document the tool writes, far below what would exhaust memory
MAX_JSON_DEPTH = 64  # the tool's documents nest fewer than 10 deep


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _depth(obj: Any) -> int:
    """How deep `obj` nests, counted without recursion (a hostile file must not overflow the stack here)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


def read_json(path: Path, what: str) -> Any:
    """A JSON file the tool reads (document, resume or shard state, sidecar, manifest), or a one-line UserError
    naming the file and `what` it should be: missing, a folder, unreadable, not UTF-8, not JSON, a key written
    twice in one object (JSON readers disagree on which wins), larger than MAX_JSON_BYTES or nested deeper than
    MAX_JSON_DEPTH (bounded: a hostile file cannot exhaust memory or the stack)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a {what}")
    if path.exists() and not path.is_file():
        raise UserError(f"{path}: not a regular file (a FIFO, socket or device), not a {what}")
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UserError(f"{path}: {path.stat().st_size} bytes; a {what} is at most {MAX_JSON_BYTES} bytes")
        text = path.read_bytes().decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: unreadable: not UTF-8 text (a {what} is UTF-8 JSON)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:
        raise UserError(f"{path}: unreadable: {exc} (in a {what})") from None
    except RecursionError:
        raise UserError(f"{path}: unreadable: nested deeper than {MAX_JSON_DEPTH} levels (a {what} is not)") from None
    except OSError as exc:
        raise UserError(f"{path}: unreadable: {exc.strerror or exc}") from None
    if _depth(obj) > MAX_JSON_DEPTH:
        raise UserError(f"{path}: unreadable: nested deeper than {MAX_JSON_DEPTH} levels (a {what} is not)")
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


# Names the tool derives from an output (resume state, interrupted document, shard states, checkpoint journal,
# locks, temporaries): no output may itself carry one, so one run's derived files are never another run's output.
RESERVED_ENDINGS = (".partial", ".interrupted.json", ".pending", ".lock", ".tmp")
RESERVED_PATTERN = re.compile(r".*\.shard-\d+-of-\d+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(name: str) -> str:
    """A name taken from a document or suite, as one file-name part: characters outside [A-Za-z0-9_.-] become '_'
    and leading dots go, so it can neither leave its folder ('../', '/') nor hide ('.x')."""
    return _UNSAFE.sub("_", name).lstrip(".") or "_"


def safe_child(folder: Path, name: str) -> Path:
    """`folder / safe_name(name)`: a file the tool names after user text always lies inside `folder`."""
    return Path(folder) / safe_name(name)


def artefact_kind(path: Path) -> str | None:
    """What a file the tool knows is: 'model checkpoint', 'checkpoint sidecar', 'results document', 'YAML file (a
    suite, recipe or tolerances)', 'resume state', or None for anything else (or a file it cannot read)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return "model checkpoint"
    if path.suffix in (".yaml", ".yml"):
        return "YAML file (a suite, recipe or tolerances)"
    if path.suffix != ".json" or not path.is_file():
        return None
    if path.with_suffix(".safetensors").is_file():
        return "checkpoint sidecar"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if b'"robustcollapse-checkpoint"' in head:
        return "checkpoint sidecar"
    if b'"schema_version"' in head:
        return "results document"
    if b'"fingerprint"' in head:
        return "resume state"
    return None


def check_output(path: Path, flag: str, protected: dict[Path, str], what: str = "results document") -> None:
    """The one guard on every path the tool writes, called before any work: refuse an output that is a folder or
    not a regular file, carries a reserved derived name, is one of the run's inputs (`protected` maps them to what
    they are), is another kind of known artefact than `what` (a results document never replaces a checkpoint, a
    sidecar never a results document), exists unwritable, or lies in a folder that cannot be written."""
    path = Path(path)
    name = path.name
    if name.endswith(RESERVED_ENDINGS) or RESERVED_PATTERN.match(name):
        raise UserError(
            f"{flag} {path}: names ending in {', '.join(RESERVED_ENDINGS)} or .shard-I-of-N are the tool's own "
            "resume and temporary files; give another name"
        )
    resolved = path.resolve()
    for other, role in protected.items():
        if Path(other).resolve() == resolved:
            raise UserError(f"{flag} {path}: that is the {role}; give another file for the {what}")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file path such as {path / 'results.json'}")
    if path.exists() and not path.is_file():
        raise UserError(f"{flag} {path}: not a regular file (a FIFO, socket or device); give a file path")
    found = artefact_kind(path) if path.exists() or path.suffix in (".safetensors", ".yaml", ".yml") else None
    if found is not None and found != what:
        raise UserError(f"{flag} {path}: that is a {found}; the {what} would overwrite it, give another file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders the write will make do not exist yet: nothing is made before the work
    try:
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder")
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path}: the file exists and is not writable")


def check_checkpoint_output(weights: Path, flag: str, protected: dict[Path, str] | None = None) -> None:
    """`check_output` for a checkpoint about to be trained: weights end in .safetensors (the sidecar is the .json
    beside them, so any other ending would make the two one file), and both weights and sidecar may be written."""
    weights = Path(weights)
    if weights.suffix != ".safetensors":
        raise UserError(
            f"{flag} {weights}: a checkpoint's weights file ends in .safetensors (its sidecar is the .json beside it)"
        )
    check_output(weights, flag, protected or {}, "model checkpoint")
    check_output(weights.with_suffix(".json"), flag, protected or {}, "checkpoint sidecar")
