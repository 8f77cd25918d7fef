"""Command-line overrides that let anyone try a heavy suite cheaply: cap the epochs, keep some models or tests.

A document made with overrides records them (`overrides` at its top level), and the gate never compares it with one
made without (or with others): a one-epoch run is not a regression of a thirty-epoch one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustcollapse.config import Suite
from robustcollapse.errors import UserError
from robustcollapse.models.zoo import checkpoint_path


@dataclass(frozen=True)
class Overrides:
    epochs: int | None = None  # cap on every recipe's epochs
    models: tuple[str, ...] = ()  # model names to keep (all when empty)
    tests: tuple[str, ...] = ()  # test ids, names or kinds to keep (all when empty)

    def record(self) -> dict[str, Any]:
        """What the document records: only the overrides that were given."""
        out: dict[str, Any] = {}
        if self.epochs is not None:
            out["epochs"] = self.epochs
        if self.models:
            out["models"] = list(self.models)
        if self.tests:
            out["tests"] = list(self.tests)
        return out


def split_list(value: str | None) -> tuple[str, ...]:
    """'a, b' -> ('a', 'b'); None or '' -> ()."""
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def capped_checkpoint(path: Path, epochs: int) -> Path:
    """Where a recipe capped to `epochs` keeps its checkpoint, apart from the full recipe's."""
    return path.with_name(f"{path.stem}-epochs{epochs}{path.suffix or '.safetensors'}")


def apply_overrides(suite: Suite, overrides: Overrides) -> Suite:
    """The suite with the overrides applied; an unknown model or test is a one-line error listing the known ones."""
    models = list(suite.models)
    if overrides.models:
        known = [m.name for m in models]
        unknown = [m for m in overrides.models if m not in known]
        if unknown:
            raise UserError(f"--models: no model {unknown[0]!r} in {suite._source}; models: {', '.join(known)}")
        models = [m for m in models if m.name in overrides.models]
    if overrides.epochs is not None:
        capped = []
        for entry in models:
            if entry.train is not None and entry.train.epochs > overrides.epochs:
                path = capped_checkpoint(checkpoint_path(suite, entry), overrides.epochs)
                train = entry.train.model_copy(update={"epochs": overrides.epochs})
                entry = entry.model_copy(update={"train": train, "checkpoint": str(path)})
            capped.append(entry)
        models = capped
    tests = list(suite.tests)
    if overrides.tests:
        entries = suite.test_entries()
        ids = suite.test_ids()
        known = sorted({*ids, *(e.kind for e in entries)})
        unknown = [t for t in overrides.tests if t not in known]
        if unknown:
            raise UserError(f"--tests: no test {unknown[0]!r} in {suite._source}; tests and kinds: {', '.join(known)}")
        tests = [
            {**raw, "name": test_id}  # the kept tests keep the ids they have in the whole suite
            for raw, test_id, entry in zip(suite.tests, ids, entries, strict=True)
            if test_id in overrides.tests or entry.kind in overrides.tests
        ]
    out = suite.model_copy(update={"models": models, "tests": tests})
    out._source = suite._source
    return out
