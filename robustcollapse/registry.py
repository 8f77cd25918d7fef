"""One small name -> factory registry shared by every plug-in family (backbones, heads, data, tests...)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from robustcollapse.errors import UserError

_FAMILIES: dict[str, dict[str, Callable[..., Any]]] = {}


def register(family: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register `fn` under `family/name`; a duplicate name is a programming error."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        entries = _FAMILIES.setdefault(family, {})
        if name in entries:
            raise ValueError(f"{family} {name!r} registered twice")
        entries[name] = fn
        return fn

    return wrap


def names(family: str) -> list[str]:
    """Registered names of a family, sorted."""
    _load_plugins()
    return sorted(_FAMILIES.get(family, {}))


def families() -> list[str]:
    """Every family that has at least one registered entry."""
    _load_plugins()
    return sorted(_FAMILIES)


def unknown_name_message(family: str, name: str) -> str:
    """'unknown head 'binray' (did you mean 'binary'?); known: binary, linear'."""
    known = names(family)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {family} {name!r}{hint}; known: {', '.join(known)}"


def get(family: str, name: str) -> Callable[..., Any]:
    """The factory registered as `family/name`, or a UserError listing the known names."""
    _load_plugins()
    try:
        return _FAMILIES[family][name]
    except KeyError:
        raise UserError(unknown_name_message(family, name)) from None


def describe(family: str, name: str) -> str:
    """First line of the factory's docstring, for `robustcollapse list`."""
    doc = (get(family, name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _load_plugins() -> None:
    """Import the modules whose import registers the built-in plug-ins."""
    import robustcollapse.attacks  # noqa: F401
    import robustcollapse.corruptions  # noqa: F401
    import robustcollapse.data  # noqa: F401
    import robustcollapse.evaluate  # noqa: F401
    import robustcollapse.models  # noqa: F401
    import robustcollapse.ood  # noqa: F401
