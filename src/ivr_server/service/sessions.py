"""A connected IVR session as the service sees it: its link engine plus its login."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ivr_server.session import IvrLink

__all__ = ["Login", "LoginStatus", "Session"]

SUPPORTED_VERSIONS = frozenset({"2.0", "3.0", "4.0"})
"""Session protocol versions the server accepts (DECISIONS.md)."""


class LoginStatus(Enum):
    """The ``Status`` a LoginResp reports (PROTOCOL.md §3.1.1)."""

    OK = "OK"
    NO_SUCH_CLIENT = "NoSuchClient"
    INIT_IN_PROGRESS = "InitInProgress"


@dataclass(frozen=True, slots=True)
class Login:
    """What the session's latest successful LoginReq established."""

    call_id: str
    """The session CallId: MonitorInfo, FlowControl and agent control use it."""
    client_name: str
    """The IVR object named by ClientName (case-sensitive)."""
    version: str
    """Session protocol version: ``2.0``, ``3.0`` or ``4.0``."""
    monitor: bool
    """Subscribed to MonitorInfo/Server (``ServerMonitor='set'`` on a 4.0 login)."""
    known_client: bool
    """An IVR object of that name existed at login (else Status was NoSuchClient)."""


@dataclass(eq=False, slots=True)
class Session:
    """One TCP connection of an IVR driver."""

    id: int
    """Server-unique session number (for logs and the API)."""
    peer: str
    """The peer's ``host:port``."""
    link: IvrLink
    """The connection's protocol engine; replies are queued on it."""
    login: Login | None = None
    """``None`` until a LoginReq succeeds (or after one with an unsupported version)."""
    servers_reported: dict[str, str] = field(default_factory=dict)
    """T-Server name -> status last sent in MonitorInfo/Server (monitoring sessions only)."""
    opened_at: float = 0.0
    """When the connection was accepted (loop time)."""
    documents_in: int = 0
    """Documents received."""
    documents_out: int = 0
    """Documents sent."""

    @property
    def ivr_name(self) -> str | None:
        """The IVR this session serves, when logged in as a known IVR."""
        login = self.login
        return login.client_name if login is not None and login.known_client else None

    @property
    def is_v4(self) -> bool:
        """Logged in as a known IVR with session version 4.0 (monitoring and agent control)."""
        login = self.login
        return login is not None and login.known_client and login.version == "4.0"
