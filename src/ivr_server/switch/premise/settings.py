"""The premise switch's link settings as plain values (:class:`PremiseSettings`).

The configuration package's ``[tservers.premise]`` table is turned into these by the service, so
that ``switch/`` never imports the config package. The password is kept in plain text because the
PBX needs it; it is left out of ``repr`` and never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ivr_server.switch.protocol import LinkTarget

__all__ = ["PremiseSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PremiseSettings:
    """How a premise switch reaches its PBX and keeps the CSTA application session."""

    host: str
    """The PBX's CSTA XML service: host name or address (IPv6 without brackets)."""
    port: int
    """Its TCP port."""
    application_id: str = "ivr-server"
    """The ``applicationID`` given in StartApplicationSession (ECMA-354)."""
    user: str | None = None
    """User name for the PBX's authentication, if it asks for one."""
    password: str | None = field(default=None, repr=False)
    """Password for ``user`` (never logged, never in ``repr``)."""
    dialect: str = "generic"
    """A name of :data:`ivr_server.switch.csta.dialects.DIALECTS`."""
    tls: bool = False
    """Wrap the link in TLS."""
    session_duration_s: int = 180
    """The application session's duration asked for."""
    heartbeat_s: float = 60.0
    """How often the session is kept alive (at most half the negotiated duration)."""
    invoke_timeout_s: float = 10.0
    """How long a request waits for its response before it counts as failed."""
    reconnect_initial: float = 1.0
    """Seconds before the first reconnection attempt."""
    reconnect_max: float = 30.0
    """The longest wait between reconnection attempts."""
    emulate_single_step: str = "off"
    """``off``, ``on-answer`` or ``on-alerting``: TSingleStepTransfer as SingleStepTransferCall,
    or emulated with ConsultationCall + TransferCall completed on answer / on alerting (G4)."""
    mirror_keys: tuple[str, ...] = ()
    """User-data keys mirrored into CSTA ``correlatorData`` on transfers and consultations (G17)."""

    def target(self) -> LinkTarget:
        """Where the adapter connects, and how it retries."""
        return LinkTarget(
            host=self.host,
            port=self.port,
            tls=self.tls,
            reconnect_initial=self.reconnect_initial,
            reconnect_max=self.reconnect_max,
        )
