"""One small name -> factory registry shared by every plug-in family (backbones, heads, data, tests...).

Plug-ins register by being imported: each family's package imports its plug-in modules from its `__init__`
(`robustcollapse.data`, `.models`, `.attacks`, `.corruptions`, `.ood`), and `robustcollapse.evaluate` imports every
test kind and through them every family. The registry itself imports none of them (it sits in the bottom layer);
a lookup in a family nobody has imported yet says which package to import."""

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
    return sorted(_FAMILIES.get(family, {}))


def families() -> list[str]:
    """Every family that has at least one registered entry."""
    return sorted(_FAMILIES)


def unknown_name_message(family: str, name: str) -> str:
    """'unknown head 'binray' (did you mean 'binary'?); known: binary, linear'."""
    known = names(family)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {family} {name!r}{hint}; known: {', '.join(known)}"


def get(family: str, name: str) -> Callable[..., Any]:
    """The factory registered as `family/name`, or a UserError listing the known names."""
    try:
        return _FAMILIES[family][name]
    except KeyError:
        if family not in _FAMILIES:
            msg = f"no {family} is registered: import robustcollapse.evaluate (it registers every plug-in)"
            raise UserError(msg) from None
        raise UserError(unknown_name_message(family, name)) from None


def describe(family: str, name: str) -> str:
    """First line of the factory's docstring, for `robustcollapse list`."""
    doc = (get(family, name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
