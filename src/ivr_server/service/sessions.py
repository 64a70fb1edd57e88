"""A connected IVR session as the service sees it: its link engine plus its login."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ivr_server.session import IvrLink

__all__ = ["LogMsgBudget", "Login", "LoginStatus", "Session"]

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


class LogMsgBudget:
    """A session's ``LogMsg`` token bucket (``logmsg-rate``, ``logmsg-burst``) and its count of
    those dropped. A period of dropping starts with the first LogMsg dropped and is summed up
    every interval while it lasts; an interval without a drop ends it."""

    __slots__ = ("dropped", "limiting", "since", "tokens", "updated_at")

    def __init__(self, burst: int, now: float) -> None:
        self.tokens = float(burst)
        self.updated_at = now
        self.limiting = False
        """In a period of dropping."""
        self.dropped = 0
        """LogMsgs dropped since ``since``."""
        self.since = now
        """The start of the period of dropping, or its last summary."""

    def admit(self, now: float, rate: float, burst: int) -> bool:
        """Take a token for one LogMsg; False when none is left."""
        tokens = min(float(burst), self.tokens + (now - self.updated_at) * rate)
        self.updated_at = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False

    def drop(self, now: float) -> bool:
        """Count one LogMsg dropped; True when it starts a period of dropping."""
        self.dropped += 1
        if self.limiting:
            return False
        self.limiting = True
        self.since = now
        return True

    def summary_due(self, now: float, interval: float) -> int:
        """-1 unless a period of dropping has gone on for ``interval`` since it started or was
        last summed up; else the count dropped in that time (0: the period is over)."""
        if not self.limiting or now - self.since < interval:
            return -1
        dropped = self.dropped
        self.dropped = 0
        self.since = now
        self.limiting = dropped > 0
        return dropped

    def take_dropped(self) -> int:
        """The count not yet summed up (the session is closing)."""
        dropped = self.dropped
        self.dropped = 0
        self.limiting = False
        return dropped


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
    logmsg_budget: LogMsgBudget | None = None
    """Its LogMsg rate limit, from its first LogMsg on."""
    stream: str | None = None
    """High availability (``[ha]`` on, service/standby.py): the driver stream this session
    carries, ``"<ClientName>#<k>"``, named at its first successful login; ``None`` otherwise
    (always with ``[ha] mode = "off"``)."""
    stream_base: int = 0
    """``documents_in`` when the stream was named: the index of a document on the stream is
    ``documents_in - stream_base`` (1 for the first one after the LoginReq)."""

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
