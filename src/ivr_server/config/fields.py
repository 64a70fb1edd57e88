"""Field types shared by the configuration's sections: flags, names, numbers, durations, encodings.

Each type is an ``Annotated`` alias whose validator accepts the spellings the original accepted
(``on``/``off`` flags, DN numbers written as TOML integers, durations with or without a unit) and
raises ``ValueError`` with the words the loader reports.
"""

from __future__ import annotations

__all__ = [
    "Encoding",
    "Flag",
    "Name",
    "Number",
    "NumberText",
    "OutputEncoding",
    "PositiveSeconds",
    "TimerSeconds",
    "duration",
]

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationInfo

from .base import describe_value, from_toml
from .durations import DurationUnit, parse_duration


def duration(value: object, bare_unit: DurationUnit) -> float:
    """A raw TOML duration (a number in ``bare_unit`` or a string with a unit) → seconds."""
    if not isinstance(value, str | int | float):
        raise ValueError(
            f"expected a duration such as '4s' or '500ms', got {describe_value(value)}"
        )
    return parse_duration(value, bare_unit=bare_unit)


def _timer_seconds(value: object, info: ValidationInfo) -> float:
    seconds = duration(value, "ms" if from_toml(info) else "s")
    if seconds <= 0:
        raise ValueError("a timer must be longer than zero")
    return seconds


def _positive_seconds(value: object) -> float:
    seconds = duration(value, "s")
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def _flag(value: object) -> object:
    """TOML booleans, and the original's spellings ``on``/``off``, ``true``/``false``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("on", "true"):
            return True
        if word in ("off", "false"):
            return False
    raise ValueError(f"expected true/false (or 'on'/'off'), got {describe_value(value)}")


def _number_to_str(value: object) -> object:
    """Let DN and port numbers be written as TOML integers: ``dn = 4001`` is ``"4001"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
"""A boolean; TOML ``true``/``false``, or the strings ``on``/``off``/``true``/``false``."""

Name = Annotated[str, Field(min_length=1)]
"""A configuration object's name: non-empty, case-sensitive, compared byte for byte."""

NumberText = Annotated[str, BeforeValidator(_number_to_str)]
"""A string that may be written as a TOML integer (converted to its decimal string)."""

Number = Annotated[str, BeforeValidator(_number_to_str), Field(min_length=1)]
"""A DN or port number: a non-empty string; a TOML integer is converted to its decimal string."""

TimerSeconds = Annotated[float, BeforeValidator(_timer_seconds)]
"""A ``[server.timers]`` duration in seconds (> 0); in TOML a bare number is milliseconds."""

PositiveSeconds = Annotated[float, BeforeValidator(_positive_seconds)]
"""A duration in seconds (> 0); a bare number is seconds, a string may carry a unit."""

OutputEncoding = Literal["ISO-8859-1", "UTF-8"]
"""Character encodings the server can write XML in."""


def _encoding(value: object) -> object:
    if isinstance(value, str) and value.upper() in ("ISO-8859-1", "UTF-8"):
        return value.upper()
    return value


Encoding = Annotated[OutputEncoding, BeforeValidator(_encoding)]
"""An output encoding; the case of the name does not matter (``utf-8`` is ``UTF-8``)."""
