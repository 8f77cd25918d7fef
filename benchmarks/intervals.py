"""What intervals and verdicts cost: one evaluation of a suite with the time spent in the intervals (every test's
`TestResult.uncertainty`) and in the comparisons between models (`compare_models`) measured inside the same run,
and their share of the evaluation (issue 26 asks for at most 10 % on the main job).

    python benchmarks/intervals.py                      # suites/mnist.yaml, models trained first (not timed)
    python benchmarks/intervals.py --suite suites/smoke.yaml
    python benchmarks/intervals.py --checkpoints results/models       # reuse the main job's trained models

The two functions are wrapped with a timer for this run only; everything else is the normal `eval`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from robustcollapse.evaluate import api, base, runner
from robustcollapse.metrics import samples
from robustcollapse.report import verdicts

ROOT = Path(__file__).resolve().parents[1]
SPENT = {"intervals": 0.0, "comparisons": 0.0}


def timed(name: str, function: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[name] += time.perf_counter() - start

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="suites/mnist.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--checkpoints", type=Path, default=None, help="a results/models folder of trained models (else trained first)"
    )
    args = parser.parse_args()
    quiet = Console(quiet=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        shutil.copytree(ROOT / "suites", work / "suites")
        if args.checkpoints:
            shutil.copytree(args.checkpoints.resolve(), work / "results" / "models")
        os.chdir(work)  # the suite's checkpoints (results/models/...) are relative to the working directory
        if not args.checkpoints:  # a first, untimed run trains the models
            api.evaluate_file(args.suite, "warm.json", device=args.device, show=False, console=quiet)
        samples._DISTRIBUTIONS.clear()  # nothing drawn by the untimed run may be reused by the timed one
        base.TestResult.uncertainty = timed("intervals", base.TestResult.uncertainty)
        runner.compare_models = timed("comparisons", verdicts.compare_models)
        start = time.perf_counter()
        api.evaluate_file(args.suite, "r.json", device=args.device, show=False, console=quiet)
        total = time.perf_counter() - start
        os.chdir(ROOT)
    added = SPENT["intervals"] + SPENT["comparisons"]
    print(f"suite {args.suite} on {args.device} (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"evaluation, everything included: {total:.1f} s")
    print(f"intervals: {SPENT['intervals']:.2f} s, comparisons: {SPENT['comparisons']:.2f} s")
    share = added / total
    print(f"share of the evaluation: {share:.1%} (target <= 10 %); {total - added:.1f} s without them")


if __name__ == "__main__":
    main()
