"""Durations as the configuration writes them: ``"4s"``, ``"1min"``, ``"500ms"``, ``4000``.

The original product writes its ``[Timers]`` values as integers with an optional unit suffix,
milliseconds when there is none (``Router Timeout = 4000``); its documented default for
``wait-for-ringing`` reads ``1 min``. We accept that notation and a little more:

* a number, interpreted in a *bare unit* chosen by the caller (milliseconds for ``[timers]``,
  seconds elsewhere);
* a string: a non-negative decimal number, optional blanks, then an optional unit ``ms``, ``s``,
  ``min``, ``h`` or ``d`` (case-insensitive). ``"4000"`` is in the bare unit.

Everything is returned as float seconds, the unit every timer in the server uses. Positivity is the
caller's business (zero is a valid *syntax*), so that ``-1 = never`` style settings can share the
parser.
"""

from __future__ import annotations

__all__ = ["DURATION_UNITS", "DurationUnit", "format_duration", "parse_duration"]

import math
import re
from collections.abc import Mapping
from typing import Final, Literal

DurationUnit = Literal["ms", "s", "min", "h", "d"]
"""A unit a duration may be written in."""

DURATION_UNITS: Final[Mapping[str, float]] = {
    "ms": 0.001,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
"""Seconds per unit, for every unit suffix :func:`parse_duration` accepts."""

_DURATION_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)")


def parse_duration(value: str | int | float, *, bare_unit: DurationUnit = "ms") -> float:
    """Return ``value`` in seconds; raise :class:`ValueError` with an operator-facing message.

    ``bare_unit`` is the unit of a plain number (``4000``) and of a string without a suffix
    (``"4000"``). Negative, infinite and NaN values, booleans and unknown units are refused.
    """
    if isinstance(value, bool):  # bool is an int; ``true`` is never a duration
        raise ValueError(f"expected a duration such as '4s' or '500ms', got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a duration must be a finite number >= 0, got {value!r}")
        return float(value) * DURATION_UNITS[bare_unit]
    if not isinstance(value, str):  # callers may hand over raw TOML values
        raise ValueError(f"expected a duration such as '4s' or '500ms', got {type(value).__name__}")
    match = _DURATION_RE.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            f"invalid duration {value!r}: expected a number and an optional unit"
            " (ms, s, min, h, d), e.g. '4s', '500ms', '1min', '8h'"
        )
    number, unit = match.groups()
    unit = unit.lower() or bare_unit
    factor = DURATION_UNITS.get(unit)
    if factor is None:
        raise ValueError(
            f"invalid duration {value!r}: unknown unit {match.group(2)!r} (use ms, s, min, h or d)"
        )
    return float(number) * factor


def format_duration(seconds: float) -> str:
    """Write ``seconds`` in the largest unit that keeps it whole, e.g. ``"4s"``, ``"8h"``.

    The result parses back to the same value with :func:`parse_duration` (for values that are a
    whole number of milliseconds). Meant for logs and documentation.
    """
    if seconds < 0:
        return f"{seconds:g}s"
    for unit in ("d", "h", "min", "s"):
        count = seconds / DURATION_UNITS[unit]
        if count >= 1 and math.isclose(count, round(count), rel_tol=0.0, abs_tol=1e-9):
            return f"{round(count)}{unit}"
    return f"{seconds * 1000:.6f}".rstrip("0").rstrip(".") + "ms"
