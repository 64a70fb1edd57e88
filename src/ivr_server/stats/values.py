"""What a statistic request yields, and how a value is written on the wire (PROTOCOL.md §3.9.3).

A request for a statistic has three outcomes, one type each, so that the answer's
``StatResp ResultCode`` follows from the type alone (:func:`result_code`):

* :class:`StatValue` → ``Success`` with ``<Result Value='…'/>`` (:attr:`StatValue.text`);
* :class:`StatUnavailable` → ``MiscError``: the statistic is configured but no value could be
  computed now and none was ever computed before (PROTOCOL.md §7, Stat Timeout row);
* ``None`` → ``NoSuchStat``: no such statistic is configured.
"""

from __future__ import annotations

__all__ = ["StatResultCode", "StatUnavailable", "StatValue", "format_value", "result_code"]

import math
from dataclasses import dataclass
from decimal import Decimal

from ivr_server.vocabulary import StatResultCode


def format_value(value: float) -> str:
    """A statistic value as ``Result/@Value`` writes it (PROTOCOL.md §9.4.5): an integral value
    without decimals (``42``), any other as the shortest decimal that reads back as the same float,
    with a dot and never an exponent (``0.1``, ``12.5``, ``0.0000001``).

    Raises :class:`ValueError` for NaN and infinities, which no statistic produces.
    """
    if not math.isfinite(value):
        raise ValueError(f"a statistic value must be finite, got {value!r}")
    if value == int(value):
        return str(int(value))  # also turns -0.0 into "0"
    # repr() is the shortest round-tripping decimal but may use an exponent; Decimal re-writes
    # exactly those digits positionally.
    return format(Decimal(repr(float(value))), "f")


@dataclass(frozen=True, slots=True, kw_only=True)
class StatValue:
    """A statistic's value: answered ``StatResp ResultCode='Success'``."""

    name: str
    """The configured statistic's name (``PeekStatReq StatName``)."""
    value: float
    """The value: a count, or seconds for the time statistics."""
    computed_at: float
    """``now`` when the value was computed (cached values keep their original time)."""
    last_known: bool = False
    """True when the value could not be computed at request time and this is the last value
    that was (the original's rule after a Stat Timeout, PROTOCOL.md §7)."""

    @property
    def text(self) -> str:
        """The value as written in ``<Result Value='…'/>`` (:func:`format_value`)."""
        return format_value(self.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatUnavailable:
    """A configured statistic with no value: answered ``StatResp ResultCode='MiscError'``."""

    name: str
    """The configured statistic's name."""
    reason: str
    """Why, in words for logs (e.g. the switch or DN is not there); never for decisions."""


def result_code(result: StatValue | StatUnavailable | None) -> StatResultCode:
    """The ``StatResp ResultCode`` answering a request that yielded ``result``."""
    if result is None:
        return "NoSuchStat"
    if isinstance(result, StatUnavailable):
        return "MiscError"
    return "Success"
