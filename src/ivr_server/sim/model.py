"""What the simulated PBX keeps besides its virtual switch: its calls as the operator sees them,
what the operator set on each DN, its application connections, and the error its operator's
requests raise."""

from __future__ import annotations

__all__ = ["LIVE", "DnSettings", "LinkInfo", "SimCall", "SimError"]

from dataclasses import dataclass, field
from typing import Any, Final

from ivr_server.switch.csta.server import CstaServerSession

LIVE: Final = frozenset({"alerting", "connected", "dialing"})
"""The states of a call still at its DN (``dialing``: a call placed by a port whose destination
was busy; it stays until cleared)."""


class SimError(Exception):
    """An operator's request the PBX cannot do: ``status`` is the HTTP status it maps to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True, kw_only=True)
class DnSettings:
    """What the operator set on a DN."""

    busy: bool = False
    no_answer: bool = False
    answer_delay: float | None = None


@dataclass(slots=True, kw_only=True)
class SimCall:
    """One call the PBX delivered (or failed to)."""

    id: str
    """The CSTA callID (decimal)."""
    ani: str
    dn: str
    dnis: str
    queue: str | None
    state: str
    """``alerting``, ``connected``, ``cleared``, ``busy``, ``out-of-service``."""
    conn_id: str | None = None
    """The virtual switch's ConnID."""
    cleared_by: str | None = None
    held: bool = False
    """``dn`` holds the call (the original call of a consultation)."""
    joined: list[str] = field(default_factory=list)
    """Devices a conference added besides ``ani`` and ``dn``."""
    consultation: str | None = None
    """The id of the consultation call ``dn`` placed from this call, while it lasts."""

    def as_json(self) -> dict[str, Any]:
        """The call as the API shows it."""
        return {
            "id": self.id,
            "state": self.state,
            "from": self.ani,
            "to": self.dn,
            "dnis": self.dnis,
            "queue": self.queue,
            "csta_call_id": self.id,
            "parties": [self.ani, self.dn, *self.joined] if self.state in LIVE else [],
            "held": self.held,
            "cleared_by": self.cleared_by,
        }


@dataclass(slots=True, kw_only=True)
class LinkInfo:
    """One TCP connection of an application."""

    peer: str
    session: CstaServerSession
