"""Two result documents compared in everything but wall-clock fields: what "the same document" means in tests
(timings, env, and the `seconds` / `images_per_s` inside details and training histories differ run to run)."""

from __future__ import annotations

import math
from typing import Any

IGNORED = frozenset({"timings", "env"})
WALL_CLOCK = frozenset({"seconds", "images_per_s"})


def differences(old: dict[str, Any], new: dict[str, Any], rel: float = 0.0) -> list[str]:
    """'path: old vs new' for every difference; numbers may differ by `rel` (relative) when it is given."""
    out: list[str] = []
    for key in sorted((set(old) | set(new)) - IGNORED):
        _walk(old.get(key), new.get(key), key, out, rel)
    return out


def _walk(a: Any, b: Any, path: str, out: list[str], rel: float) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted((set(a) | set(b)) - WALL_CLOCK):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'new' if k in b else 'old'}")
            else:
                _walk(a[k], b[k], f"{path}/{k}", out, rel)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _walk(x, y, f"{path}[{i}]", out, rel)
    elif isinstance(a, float) and isinstance(b, float):
        if not (a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=0.0)):
            out.append(f"{path}: {a!r} vs {b!r}")
    elif a != b:
        out.append(f"{path}: {a!r} vs {b!r}")
