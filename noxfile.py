"""nox sessions: `tests` (the README's test command), `lint` (ruff and import-linter), `regression` (the results gate),
`update_baseline` (rewrite the committed baseline after an intended change) and `mutants` (mutation testing)."""

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
ROOT = Path(__file__).parent
BASELINE = ROOT / "results" / "baselines" / "smoke.json"


@nox.session
def tests(session: nox.Session) -> None:
    """Install the package with its test extra and run pytest."""
    session.install(*TORCH)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check + format check, and the import layers and acyclicity of pyproject's [tool.importlinter]."""
    session.install("ruff>=0.6", "import-linter>=2.1")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.env["PYTHONPATH"] = str(ROOT)  # import-linter reads the source tree; the package need not be installed
    session.run("lint-imports")


def _fresh_smoke_run(session: nox.Session) -> Path:
    """Train the smoke models from their recipes (fixed seed) in a scratch folder and run suites/smoke.yaml.

    Runs in the current environment (the package installed as the README says), so CI does not install torch
    a second time."""
    scratch = Path(session.create_tmp()).resolve() / "smoke"
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "suites").mkdir(parents=True)
    shutil.copy(ROOT / "suites" / "smoke.yaml", scratch / "suites" / "smoke.yaml")
    session.chdir(scratch)
    session.run("robustcollapse", "eval", "suites/smoke.yaml", "--device", "cpu", "--json", "smoke.json", external=True)
    return scratch / "smoke.json"


@nox.session(venv_backend="none")
def regression(session: nox.Session) -> None:
    """Fail when a fresh smoke run regresses against results/baselines/smoke.json beyond its tolerances."""
    new = _fresh_smoke_run(session)
    session.run("robustcollapse", "compare", str(BASELINE), str(new), external=True)


@nox.session(venv_backend="none")
def update_baseline(session: nox.Session) -> None:
    """Rewrite results/baselines/smoke.json from a fresh smoke run (commit it with the change that moved it)."""
    new = _fresh_smoke_run(session)
    shutil.copy(new, BASELINE)
    session.log(f"baseline written: {BASELINE}")


@nox.session(venv_backend="none")
def mutants(session: nox.Session) -> None:
    """Mutation testing with mutmut over the scope in pyproject's [tool.mutmut]; prints the survivors. Not in CI:
    on 2 CPU cores it takes about 20 minutes. Record the score in benchmarks/RESULTS.md."""
    single = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # torch's thread pool deadlocks in forked children
    session.run("mutmut", "run", "--max-children", "2", *session.posargs, external=True, env=single)
    session.run("mutmut", "results", external=True)
