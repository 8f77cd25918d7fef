"""What a metric key means, declared once where the metric is produced: its label, format, unit, which way is
better and the gate's default tolerance. Tables, the HTML page, the plots and the regression gate read these
specs; no other module keeps a list of metric names.

A spec's `pattern` is a glob over full metric keys (`*/ece` matches `cal/ece`, `cal/ts/ece` and
`shift/fog/3/ece`); a key takes the spec of its longest matching pattern. A key without a spec is reported by the
gate and never judged.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

DEFAULT_TOLERANCE = 0.02  # absolute, for a judged metric whose spec names no tolerance of its own


@dataclass(frozen=True)
class MetricSpec:
    """One family of metric keys: `pattern` (glob over keys), `label` (for people), `fmt` (a format spec, or
    "flag" for an honesty check's 0/1), `higher_is_better` (None: reported, never judged by the gate), `tolerance`
    (the gate's default absolute tolerance) and `unit`."""

    pattern: str
    label: str
    fmt: str = ".4f"
    higher_is_better: bool | None = None
    tolerance: float = DEFAULT_TOLERANCE
    unit: str = ""

    @property
    def direction(self) -> int:
        """+1 when higher is better, -1 when lower is better, 0 when the gate does not judge it."""
        return 0 if self.higher_is_better is None else (1 if self.higher_is_better else -1)


_SPECS: dict[str, MetricSpec] = {}


def declare(*specs: MetricSpec) -> tuple[MetricSpec, ...]:
    """Register specs (at import of the module that produces them); a pattern declared twice is a programming
    error, so two modules cannot disagree about one metric."""
    for spec in specs:
        if spec.pattern in _SPECS and _SPECS[spec.pattern] != spec:
            raise ValueError(f"metric pattern {spec.pattern!r} declared twice")
        _SPECS[spec.pattern] = spec
    return specs


def spec_for(key: str) -> MetricSpec | None:
    """The spec of the longest pattern matching `key`, or None."""
    matches = [p for p in _SPECS if fnmatch.fnmatchcase(key, p)]
    return _SPECS[max(matches, key=len)] if matches else None


def declared() -> list[MetricSpec]:
    """Every declared spec, by pattern."""
    return [_SPECS[p] for p in sorted(_SPECS)]


def is_flag(key: str) -> bool:
    """Whether `key` is an honesty check's 0/1 (shown as the check's verdict, not as a number)."""
    spec = spec_for(key)
    return spec is not None and spec.fmt == "flag"


def format_value(key: str, value: float | None, default: str = ".4f") -> str:
    """A metric value as its spec formats it (`default` without a spec; a flag as 0/1; '—' for a missing or
    non-finite value)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    spec = spec_for(key)
    fmt = default if spec is None else spec.fmt
    return format(value, ".0f" if fmt == "flag" else fmt)
