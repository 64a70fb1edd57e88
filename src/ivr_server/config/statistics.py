"""The named statistics (TOML ``[[statistics]]``, the original's ``[Stat:<name>]`` sections):
what ``PeekStatReq StatName`` names, computed by :mod:`ivr_server.stats` (``docs/statistics.md``).
"""

from __future__ import annotations

__all__ = [
    "STAT_OBJECT_TYPES",
    "STAT_TYPES",
    "StatObjectType",
    "StatisticConfig",
    "split_object_id",
]

from collections.abc import Mapping
from typing import Annotated, Final, Literal

from pydantic import BeforeValidator, ValidationInfo, field_validator

from .base import ConfigModel
from .fields import Name, duration

StatObjectType = Literal["RoutePoint", "Queue", "AgentGroup", "IVR", "Location"]
"""Object types the built-in statistics engine computes statistics for."""

STAT_OBJECT_TYPES: Final[tuple[StatObjectType, ...]] = (
    "RoutePoint",
    "Queue",
    "AgentGroup",
    "IVR",
    "Location",
)
"""Every :data:`StatObjectType`, in documentation order."""

STAT_TYPES: Final[Mapping[str, tuple[StatObjectType, ...]]] = {
    "CurrNumberWaitingCalls": ("RoutePoint", "Queue"),
    "ExpectedWaitTime": ("RoutePoint", "Queue"),
    "CurrMaxCallWaitingTime": ("RoutePoint",),
    "CurrentReadyAgents": ("Queue", "AgentGroup"),
    "CurrentNotReadyAgents": ("Queue", "AgentGroup"),
    "CurrentBusyAgents": ("Queue", "AgentGroup"),
    "CurrentLoggedInAgents": ("Queue", "AgentGroup"),
    "CurrNumberCallsInProgress": ("IVR",),
    "CurrNumberFreeAccessNumbers": ("Location",),
    "CurrNumberReservedAccessNumbers": ("Location",),
}
"""The statistic types the built-in statistics engine computes (docs/statistics.md), each with
the object types it applies to. :mod:`ivr_server.stats` computes exactly these pairs (a test
keeps the two in step)."""


def _stat_seconds(value: object) -> float:
    """``update-frequency``: a duration ≥ 0; a bare number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise ValueError(
            f"must be 0 (computed on every request) or a positive duration, got {value!r}"
        )
    return duration(value, "s")


StatSeconds = Annotated[float, BeforeValidator(_stat_seconds)]
"""A duration in seconds, zero allowed; a bare number is seconds, a string may carry a unit."""


class StatisticConfig(ConfigModel):
    """A named statistic (the original's ``[Stat:<name>]`` sections of the I-Server application):
    what ``PeekStatReq StatName`` names and what ``GetStatReq`` must match."""

    name: Name
    """The statistic's name (``PeekStatReq StatName``), unique."""
    server_name: Name = "StatServer"
    """The Stat Server name ``GetStatReq ServerName`` must give. Original: ``server_name``."""
    stat_type: Name
    """The statistic type, one of :data:`STAT_TYPES`, e.g. ``CurrNumberWaitingCalls``.
    Original: ``stat_type``."""
    object_id: Name
    """The object: a routing point or queue DN (``"5000"``, or ``"5000@SW"`` to name its
    switch), an agent group's name, an IVR's name, a Location's name (its DNIS pool). Original:
    ``obj_id``."""
    object_type: StatObjectType
    """``RoutePoint``, ``Queue``, ``AgentGroup``, ``IVR`` or ``Location``; one ``stat-type``
    applies to.
    Original: ``obj_type`` (``SObjectRoutePoint``, ``SObjectQueue``...)."""
    update_frequency: StatSeconds = 0.0
    """Longest age, in seconds, of a value handed out (the value is cached that long); 0 = computed
    on every request. A bare number is seconds; a string may carry a unit. Original:
    ``update_frequency`` (where ≤ 0 meant no cache)."""

    @field_validator("stat_type")
    @classmethod
    def _check_stat_type(cls, value: str) -> str:
        if value not in STAT_TYPES:
            raise ValueError(
                f"unknown statistic type {value!r}: use one of {', '.join(STAT_TYPES)}"
            )
        return value

    @field_validator("object_type")
    @classmethod
    def _check_object_type(cls, value: StatObjectType, info: ValidationInfo) -> StatObjectType:
        stat_type = info.data.get("stat_type")
        allowed = STAT_TYPES.get(stat_type) if isinstance(stat_type, str) else None
        if allowed is not None and value not in allowed:
            raise ValueError(
                f"{stat_type} applies to object type {' or '.join(allowed)}, not {value}"
            )
        return value


def split_object_id(object_id: str) -> tuple[str, str | None]:
    """A statistic's DN object id → (DN number, switch name or None): ``"5000@SW"`` →
    ``("5000", "SW")``, ``"5000"`` → ``("5000", None)``. The last ``@`` separates them."""
    number, at, switch_name = object_id.rpartition("@")
    return (number, switch_name) if at else (object_id, None)
