"""T-Library-style requests a client sends to a switch (PROTOCOL.md §10.2).

Class names are the T-Library function names (``TAgentLogin``), so a grep goes from the spec to
the code; ``name`` repeats it for error reports. A request is plain data: frozen, slotted,
keyword-only. The switch checks it and answers with events carrying ``reference_id``; a request
is never rejected by raising (a bad request becomes an EventError).

Call requests (TRouteCall, TApplyTreatment, TMakeCall, …) join this module in the next release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ivr_server.switch.events import WorkMode

__all__ = [
    "SwitchRequest",
    "TAgentLogin",
    "TAgentLogout",
    "TAgentSetNotReady",
    "TAgentSetReady",
    "TQueryAddress",
    "TRegisterAddress",
    "TUnregisterAddress",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchRequest:
    """Base of every request a T-Library client sends to a switch."""

    name: ClassVar[str]
    """The T-Library request name, e.g. ``TAgentLogin``."""

    reference_id: int
    """The client's ReferenceID; echoed on every event the request causes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TQueryAddress(SwitchRequest):
    """Ask for a DN's state; answered by EventAddressInfo (AgentQuery, PROTOCOL.md §3.2.2)."""

    name: ClassVar[str] = "TQueryAddress"

    dn: str
    """The DN queried (AttributeThisDN)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TAgentLogin(SwitchRequest):
    """Log an agent in on a DN (AgentLogin, PROTOCOL.md §3.2.3)."""

    name: ClassVar[str] = "TAgentLogin"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    queue: str
    """ACD queue to log into (AttributeThisQueue); empty = no queue."""
    agent_id: str
    """Agent login id (AttributeAgentID); must not be empty."""
    password: str = ""
    """Agent password (AttributePassword); the virtual switch does not check it."""
    work_mode: WorkMode = WorkMode.UNKNOWN
    """AttributeWorkMode: ``AutoIn``/``ManualIn`` end the login in Ready, anything else in NotReady."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TAgentLogout(SwitchRequest):
    """Log the agent on a DN out (AgentLogout, PROTOCOL.md §3.2.4)."""

    name: ClassVar[str] = "TAgentLogout"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    queue: str | None = None
    """Queue to log out of; ``None`` = the queue of the current login (PROTOCOL.md §9.4.5)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TAgentSetReady(SwitchRequest):
    """Make the agent on a DN ready (AgentReady, PROTOCOL.md §3.2.5)."""

    name: ClassVar[str] = "TAgentSetReady"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    queue: str
    """The agent's queue (AttributeThisQueue); empty = the queue of the current login."""
    work_mode: WorkMode = WorkMode.UNKNOWN
    """AttributeWorkMode: ``Unknown``, ``AutoIn`` or ``ManualIn``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TAgentSetNotReady(SwitchRequest):
    """Make the agent on a DN not ready (AgentNotReady, PROTOCOL.md §3.2.6)."""

    name: ClassVar[str] = "TAgentSetNotReady"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    queue: str
    """The agent's queue (AttributeThisQueue); empty = the queue of the current login."""
    work_mode: WorkMode = WorkMode.UNKNOWN
    """AttributeWorkMode; ``AfterCallWork`` and ``WalkAway`` are reported as ACW / WALK_AWAY."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TRegisterAddress(SwitchRequest):
    """Register a DN: the client receives its events (PROTOCOL.md §10.2)."""

    name: ClassVar[str] = "TRegisterAddress"

    dn: str
    """The DN to register (AttributeThisDN)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TUnregisterAddress(SwitchRequest):
    """Unregister a DN (PROTOCOL.md §10.2)."""

    name: ClassVar[str] = "TUnregisterAddress"

    dn: str
    """The DN to unregister (AttributeThisDN)."""
