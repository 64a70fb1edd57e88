"""T-Library-style events published by a switch, and the value types they carry (PROTOCOL.md §10).

An event is a fact that already happened on the switch, so every class is named as T-Library names
it (``EventAgentLogin``) and its ``name`` class attribute holds that name for printing and logs.
Events are frozen, slotted and keyword-only. ``reference_id`` is the T-Library ReferenceID of the
request that caused the event (echoed unchanged); unsolicited events carry ``None``.

Calls (EventRinging, EventEstablished, …), routing (EventRouteRequest, …) and user data events
join this module in the next release; the base class and the ``name`` convention stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import ClassVar

__all__ = [
    "AgentStatus",
    "DnType",
    "EventAddressInfo",
    "EventAgentLogin",
    "EventAgentLogout",
    "EventAgentNotReady",
    "EventAgentReady",
    "EventDNBackInService",
    "EventDNOutOfService",
    "EventError",
    "EventLinkConnected",
    "EventLinkDisconnected",
    "EventRegistered",
    "EventUnregistered",
    "SwitchEvent",
    "WorkMode",
]


class DnType(StrEnum):
    """Configuration type of a DN (PROTOCOL.md §10.4); values are our configuration spellings."""

    EXTENSION = "extension"
    VOICE_TREATMENT_PORT = "voice-treatment-port"
    ROUTING_POINT = "routing-point"
    ACD_QUEUE = "acd-queue"
    VIRTUAL_ROUTING_POINT = "virtual-routing-point"


class WorkMode(StrEnum):
    """T-Library AttributeWorkMode. AgentReady/AgentNotReady carry ``Unknown``/``AutoIn``/``ManualIn``."""

    UNKNOWN = "Unknown"
    AUTO_IN = "AutoIn"
    MANUAL_IN = "ManualIn"
    AFTER_CALL_WORK = "AfterCallWork"
    WALK_AWAY = "WalkAway"


class AgentStatus(IntEnum):
    """The ``AgentStatus`` extension of EventAddressInfo (PROTOCOL.md §3.2.1, XMLG p.69 Table 16)."""

    UNKNOWN = -1
    LOGGED_OUT = 0
    LOGGED_IN = 1
    READY = 2
    NOT_READY = 3
    ACW = 4
    WALK_AWAY = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchEvent:
    """Base of every event a switch publishes."""

    name: ClassVar[str]
    """The T-Library event name, e.g. ``EventAgentLogin``."""

    switch: str
    """Name of the switch that published the event."""
    reference_id: int | None = None
    """ReferenceID of the request that caused the event; ``None`` for unsolicited events."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventLinkConnected(SwitchEvent):
    """The link between the T-Server and the switch is up."""

    name: ClassVar[str] = "EventLinkConnected"

    tserver: str
    """Application name of the T-Server whose link came up (``MonitorInfo/Server/@Name``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventLinkDisconnected(SwitchEvent):
    """The link between the T-Server and the switch is down."""

    name: ClassVar[str] = "EventLinkDisconnected"

    tserver: str
    """Application name of the T-Server whose link went down."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRegistered(SwitchEvent):
    """A DN is registered: its events are delivered to the T-Library client."""

    name: ClassVar[str] = "EventRegistered"

    dn: str
    """The registered DN."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventUnregistered(SwitchEvent):
    """A DN is no longer registered (unregistered by request, or removed from the configuration)."""

    name: ClassVar[str] = "EventUnregistered"

    dn: str
    """The unregistered DN."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventDNOutOfService(SwitchEvent):
    """A DN went out of service."""

    name: ClassVar[str] = "EventDNOutOfService"

    dn: str
    """The DN now out of service."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventDNBackInService(SwitchEvent):
    """A DN is back in service."""

    name: ClassVar[str] = "EventDNBackInService"

    dn: str
    """The DN now in service again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventAgentLogin(SwitchEvent):
    """An agent logged in on a DN (always followed by EventAgentReady or EventAgentNotReady)."""

    name: ClassVar[str] = "EventAgentLogin"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    agent_id: str
    """The agent login id (AttributeAgentID)."""
    queue: str
    """The ACD queue logged into (AttributeThisQueue); empty when none was given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventAgentLogout(SwitchEvent):
    """An agent logged out of a DN."""

    name: ClassVar[str] = "EventAgentLogout"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    agent_id: str
    """The agent that logged out (AttributeAgentID)."""
    queue: str
    """The queue logged out of (AttributeThisQueue)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventAgentReady(SwitchEvent):
    """An agent is ready."""

    name: ClassVar[str] = "EventAgentReady"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    agent_id: str
    """The agent (AttributeAgentID)."""
    queue: str
    """The agent's queue (AttributeThisQueue)."""
    work_mode: WorkMode
    """The work mode now in effect (AttributeWorkMode)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventAgentNotReady(SwitchEvent):
    """An agent is not ready."""

    name: ClassVar[str] = "EventAgentNotReady"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    agent_id: str
    """The agent (AttributeAgentID)."""
    queue: str
    """The agent's queue (AttributeThisQueue)."""
    work_mode: WorkMode
    """The work mode now in effect (AttributeWorkMode); AfterCallWork / WalkAway refine NotReady."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventAddressInfo(SwitchEvent):
    """Answer to TQueryAddress: the DN and the state of its agent."""

    name: ClassVar[str] = "EventAddressInfo"

    dn: str
    """The queried DN (AttributeThisDN)."""
    dn_type: DnType
    """The DN's configured type."""
    agent_status: AgentStatus
    """The ``AgentStatus`` extension (PROTOCOL.md §3.2.1); ``LOGGED_OUT`` when no agent is there."""
    agent_id: str | None
    """The logged-in agent, or ``None``."""
    queue: str | None
    """The logged-in agent's queue, or ``None``."""
    work_mode: WorkMode
    """The agent's work mode; ``UNKNOWN`` when no agent is there."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventError(SwitchEvent):
    """A request failed; nothing changed on the switch."""

    name: ClassVar[str] = "EventError"

    dn: str | None
    """The request's DN (AttributeThisDN), if it had one."""
    error_code: int
    """AttributeErrorCode: a :class:`~ivr_server.switch.errors.TErrorCode` value (decimal on the wire)."""
    error_message: str
    """Human-readable reason (AttributeErrorMessage); for logs, never for decisions."""
    request: str
    """T-Library name of the failed request, e.g. ``TAgentLogin``."""
