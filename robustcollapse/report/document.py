"""The versioned result document: one JSON per run, written atomically by `robustcollapse.io`."""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1


def new_document(suite: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    """An empty result document (DESIGN.md §5)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "running",
        "suite": suite,
        "env": env,
        "models": {},
        "metrics": {},
        "details": {},
        "flags": {},
        "timings": {},
        "warnings": [],
    }
