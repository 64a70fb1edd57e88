"""The value sets that more than one layer speaks: DN types, route and treatment types, statuses.

Each set is written here once and imported wherever it is used: the configuration, the switch's
events and requests, the generated wire messages (``tools/gen_messages.py`` types an attribute
with the name below whose values are exactly the attribute's), the service and the HTTP API.
Values are spelled as they appear on the wire or in the TOML file, so a member or literal passes
between layers unchanged.

This module imports only the standard library, so every layer may import it (as
:mod:`ivr_server.errors`).
"""

from __future__ import annotations

__all__ = [
    "LOG_LEVELS",
    "ROUTABLE_DN_TYPES",
    "AgentStatusName",
    "DnType",
    "LinkStatus",
    "LogFormat",
    "LogLevel",
    "NodeType",
    "RouteType",
    "RouterMode",
    "StatResultCode",
    "TreatStatus",
    "TreatmentType",
    "WorkMode",
]

import typing
from enum import StrEnum
from typing import Final, Literal, TypeAlias


class DnType(StrEnum):
    """Type of a DN (the original's DN object types that matter to an IVR Server, PROTOCOL.md
    §10.4); the values are the configuration's spellings."""

    EXTENSION = "extension"
    """An extension; may carry an IVR port (or an agent)."""
    VOICE_TREATMENT_PORT = "voice-treatment-port"
    """Voice Treatment Port: the usual DN type of an IVR port."""
    ROUTING_POINT = "routing-point"
    """Routing Point: target of ``RouteRequest RouteDN``; a router (URS) routes calls from it."""
    ACD_QUEUE = "acd-queue"
    """ACD Queue: what agents log in to (``AgentLogin Queue``, ``[AutoLogin] Queue``)."""
    VIRTUAL_ROUTING_POINT = "virtual-routing-point"
    """Virtual Routing Point (used on premise switches in Behind mode)."""


ROUTABLE_DN_TYPES: Final = frozenset({DnType.ROUTING_POINT, DnType.VIRTUAL_ROUTING_POINT})
"""DN types a ``RouteRequest`` may name and ivr-server's routers serve: a Virtual Routing Point of
a premise switch is ivr-server's own routing point (MODES-AND-HA G1)."""


class WorkMode(StrEnum):
    """T-Library AttributeWorkMode. AgentReady/AgentNotReady carry ``Unknown``/``AutoIn``/``ManualIn``."""

    UNKNOWN = "Unknown"
    AUTO_IN = "AutoIn"
    MANUAL_IN = "ManualIn"
    AFTER_CALL_WORK = "AfterCallWork"
    WALK_AWAY = "WalkAway"


RouteType: TypeAlias = Literal[
    "Default", "Normal", "Reroute", "RerouteAttended", "RerouteConferenced"
]
"""``RouteResponse/@RouteType`` values (PROTOCOL.md §3.3.3), also T-Library's AttributeRouteType
of a route request by these names."""

TreatmentType: TypeAlias = Literal[
    "PlayAnnounce",
    "PlayAnnounceAndDigits",
    "Music",
    "RAN",
    "Busy",
    "CollectDigits",
    "CancelCall",
    "SetDefaultRoute",
    "PlayApplication",
    "IVR",
    "RingBack",
    "Silence",
    "VerifyDigits",
    "RecordAnnounce",
    "DeleteAnnounce",
    "TextToSpeech",
    "FastBusy",
    "TextToSpeechAndDigits",
]
"""``TreatCall/@Type`` values (PROTOCOL.md §3.4.1), the 18 of the wire schema."""

TreatStatus: TypeAlias = Literal["Started", "NotStarted", "Completed"]
"""``TreatStatus/@Status`` values: how a treatment the IVR was asked to apply went."""

AgentStatusName: TypeAlias = Literal["LoggedIn", "LoggedOut", "Ready", "NotReady", "Unknown"]
"""An agent's status as ``MonitorInfo`` and ``AgentStatus`` report it."""

LinkStatus: TypeAlias = Literal["OK", "Unavailable"]
"""A T-Server link's status as ``MonitorInfo`` and ``TServerStatus`` report it."""

StatResultCode: TypeAlias = Literal["Success", "NoSuchStat", "MiscError"]
"""``StatResp/@ResultCode`` values (PROTOCOL.md §3.9.3)."""

NodeType: TypeAlias = Literal["Int", "Str", "Bin"]
"""Types of a key/value node (``UDataEx``/``ExtnsEx`` items): 32-bit integer, string, binary."""

RouterMode: TypeAlias = Literal["builtin", "external", "webhook", "none"]
"""Who answers the calls waiting at a routing point: the configuration's rules, API clients, a
webhook, or nobody (only the router timeout)."""

LogLevel: TypeAlias = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
"""Levels of the server's log, least to most severe."""

LOG_LEVELS: Final[tuple[LogLevel, ...]] = typing.get_args(LogLevel)
"""Every :data:`LogLevel`, least to most severe."""

LogFormat: TypeAlias = Literal["auto", "json", "text"]
"""How log lines are written: JSON objects, text, or text on a terminal and JSON otherwise."""
