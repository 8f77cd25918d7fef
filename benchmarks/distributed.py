"""Wall time of a suite with 1 process and with N processes under torchrun (gloo on the CPU, NCCL on GPUs), the
speed-up, and whether the two documents are the same; with --per-kind, one process's seconds and images/s per test
kind (the figure to record for suites/cifar.yaml on a GPU).

    python benchmarks/distributed.py                           # suites/mnist.yaml, 1 vs 2 CPU processes
    python benchmarks/distributed.py --nproc 8 --device cuda --suite suites/cifar.yaml --data-root ~/data

The models are trained once (one process) before anything is timed, so both timings are evaluation only. Each
process gets cores/N threads, so the two runs use the same cores: the ratio is what splitting the work buys, not
what more cores buy. The reference (1 process) is measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from same_document import differences  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], cwd: Path, threads: int) -> float:
    """Seconds `cmd` took; its output is kept in cwd/<name>.log and a failure stops the benchmark."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env |= {"OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return seconds


def per_kind(doc: dict) -> list[tuple[str, str, float, float]]:
    """(model, test, seconds, images/s) of one document: images are the test's examples (its details' `n`)."""
    rows = []
    for model, timings in doc["timings"].items():
        for test, seconds in timings.items():
            n = doc["details"][model].get(test, {}).get("n") or doc["suite"].get("limit") or 0
            rows.append((model, test, seconds, n / seconds if seconds and n else float("nan")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="suites/mnist.yaml")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".bench-distributed")
    parser.add_argument("--per-kind", action="store_true", help="also print one process's time per test")
    args = parser.parse_args()

    work = args.workdir.resolve()
    (work / "suites").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / args.suite, work / "suites" / Path(args.suite).name)
    suite = f"suites/{Path(args.suite).name}"
    common = ["--device", args.device] + (["--data-root", args.data_root] if args.data_root else [])
    cores = os.cpu_count() or 1
    module = [sys.executable, "-m", "robustcollapse"]
    run([*module, "train", suite, *common], work, cores)
    extra = ["--quiet", *common] + (["--limit", str(args.limit)] if args.limit else [])
    one = run([*module, "eval", suite, *extra, "--json", "one.json"], work, cores)
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={args.nproc}"]
    torchrun += ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", "-m", "robustcollapse"]
    many = run([*torchrun, "eval", suite, *extra, "--json", "many.json"], work, max(1, cores // args.nproc))
    a, b = (json.loads((work / f).read_text()) for f in ("one.json", "many.json"))
    found = differences(a, b, rel=1e-5)
    print(f"suite {suite} on {a['env']['device']} ({a['env']['device_name'] or 'cpu'}), {cores} cores")
    print(f"1 process: {one:.1f} s   {args.nproc} processes: {many:.1f} s   speed-up {one / many:.2f}x")
    print(f"documents: {'the same' if not found else f'{len(found)} differences, e.g. ' + found[0]}")
    if args.per_kind:
        for model, test, seconds, rate in per_kind(a):
            print(f"  {model:12s} {test:24s} {seconds:8.1f} s  {rate:10.0f} images/s")


if __name__ == "__main__":
    main()
