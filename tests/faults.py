"""Run the `robustcollapse` CLI with one fault planted, for the fault-injection tests.

    python tests/faults.py POINT SIGNAL -- ARGS...

At POINT the process sends itself SIGNAL (INT, TERM or KILL), then runs on as far as the signal lets it:
- `train`: the 2nd epoch evaluation, i.e. during the second model's training (1 epoch each);
- `test`: entering the `collapse` test (the second test of the model, after `clean` finished);
- `write:NAME`: inside the atomic write of file NAME, after its temporary file is written, before the rename;
- `commit:SUFFIX`: just before the rename of a file whose target ends with SUFFIX (checkpoint journal steps).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def fire(sig: str) -> None:
    os.kill(os.getpid(), getattr(signal, f"SIG{sig}"))


def plant(point: str, sig: str) -> None:
    # A shell that starts jobs in the background (`cmd &`) leaves SIGINT ignored in them, and Python then installs
    # no KeyboardInterrupt handler: restore Ctrl-C's default so the planted SIGINT is a Ctrl-C wherever this runs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if point == "train":
        import robustcollapse.training.loop as train

        real_accuracy, calls = train.accuracy, {"n": 0}

        def accuracy(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                fire(sig)
            return real_accuracy(*args, **kwargs)

        train.accuracy = accuracy
    elif point == "test":
        import robustcollapse.evaluate  # noqa: F401  (registers the test kinds, as the CLI does)
        from robustcollapse import registry

        kind = registry.get("test", "collapse")
        real_run, calls = kind.run, {"n": 0}

        def run(ctx, params):
            calls["n"] += 1
            if calls["n"] == 1:
                fire(sig)
            return real_run(ctx, params)

        kind.run = staticmethod(run)
    elif point.startswith("write:"):
        name, real_fsync = point.split(":", 1)[1], os.fsync

        def fsync(fd):
            real_fsync(fd)
            written = Path(os.readlink(f"/proc/self/fd/{fd}")).name  # atomic writes go to .NAME.<random>.tmp
            if written.startswith(f".{name}.") and written.count(".") == name.count(".") + 3:
                fire(sig)

        os.fsync = fsync
    elif point.startswith("commit:"):
        suffix, real_replace = point.split(":", 1)[1], os.replace

        def replace(src, dst):
            if str(dst).endswith(suffix):
                fire(sig)
            return real_replace(src, dst)

        os.replace = replace
    else:
        raise SystemExit(f"unknown fault point {point!r}")


if __name__ == "__main__":
    point, sig, sep, *args = sys.argv[1:]
    assert sep == "--"
    plant(point, sig)
    from robustcollapse.cli import main

    main(args, prog_name="robustcollapse")
