"""What the honesty checks say of a (model, test)'s numbers, as the document records it: read by the tables, the
HTML page and the verdicts alike."""

from __future__ import annotations

from typing import Any


def test_flags(doc: dict[str, Any], model: str, test_id: str) -> dict[str, Any]:
    """The honesty-check record of one (model, test): {'checks', 'numbers', 'summary'} (empty when none ran)."""
    return doc["flags"].get(model, {}).get(test_id, {})


def untrusted(doc: dict[str, Any], model: str, test_id: str, key: str) -> str | None:
    """Why a number is not trusted (the checks that fired on it), or None."""
    entry = test_flags(doc, model, test_id).get("numbers", {}).get(key)
    return None if entry is None or entry["trusted"] else entry["why"]
