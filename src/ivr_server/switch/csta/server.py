"""The server side of one CSTA application session (ECMA-354) over one TCP link, sans-IO: the
PBX's half, as the CSTA simulator plays it.

Theory of operation: the PBX drives three doors, as the client session's user does — bytes
received (:meth:`CstaServerSession.receive_data`, ``b""`` when the application closed), answers to
the requests it was handed (:meth:`~CstaServerSession.respond`,
:meth:`~CstaServerSession.refuse`, each optionally at a later time) and events
(:meth:`~CstaServerSession.send_event`), and the timer (:meth:`~CstaServerSession.next_deadline`,
:meth:`~CstaServerSession.handle_timer`). Every door takes ``now`` where time matters and returns
the :class:`ServerEvent` facts it produced; bytes to write collect in
:meth:`~CstaServerSession.data_to_send`, and :attr:`~CstaServerSession.closing` tells the adapter
to close the connection once they are written.

The session answers by itself what belongs to the session and its monitors:
StartApplicationSession (the application id and credentials checked when configured; the
duration capped), ResetApplicationSessionTimer, StopApplicationSession, MonitorStart (a
``monitorCrossRefID`` per monitor), MonitorStop and SystemStatus. Every other request is handed
up as :class:`RequestReceived` for the PBX to answer. Before any of that, every request is offered
to the shared :class:`Refusals`: a matching rule refuses it with its CSTA error after its delay,
whatever the request (the real site's PBX refused transfers 4.2-4.8 s after they were asked).

A session not renewed within its duration expires. Bad input never raises: a broken frame
header closes the link; a broken or hostile document in a good frame is answered with a
``CSTAErrorCode`` (``operation``/``generic``) on its invoke id; a well-formed document of a type
the PBX does not serve, with ``operation``/``serviceNotSupported``; a request before the session
started, with ``operation``/``securityViolation``.
"""

from __future__ import annotations

__all__ = [
    "ERROR_VALUES",
    "EVENT_INVOKE_ID",
    "ApplicationSessionEnded",
    "ApplicationSessionStarted",
    "CstaServerSession",
    "MonitorStarted",
    "MonitorStopped",
    "Refusal",
    "Refusals",
    "RequestReceived",
    "RequestRefused",
    "ServerEvent",
    "ServerProtocolError",
    "ServerState",
    "csta_error",
]

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

import msgspec

from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import CSTA_NAMESPACES, CstaDecodeError, decode, encode
from ivr_server.switch.csta.dialects import DIALECTS, Dialect
from ivr_server.switch.csta.framing import FrameDecoder, FramingError, encode_frame

EVENT_INVOKE_ID: Final = 9999
"""The invoke id events go out with, as OpenScape Voice and Eltex PBXs send them."""

ERROR_VALUES: Final[dict[str, str]] = {
    **dict.fromkeys(
        (
            "generic",
            "invalidCallID",
            "invalidConnectionID",
            "invalidDeviceID",
            "invalidDestination",
            "invalidCalledDeviceID",
            "invalidCallingDeviceID",
            "invalidFeature",
            "invalidCrossRefID",
            "invalidMonitorCrossRefID",
            "invalidMonitorObject",
            "invalidAgentIdentifier",
            "invalidAgentPassword",
            "invalidAgentState",
            "invalidAgentGroup",
            "invalidObjectType",
            "objectNotKnown",
            "privilegeViolationSpecifiedDevice",
            "requestIncompatibleWithObject",
            "securityViolation",
            "serviceNotSupported",
            "valueOutOfRange",
        ),
        "operation",
    ),
    **dict.fromkeys(
        (
            "invalidObjectState",
            "noActiveCall",
            "noHeldCall",
            "noCallToClear",
            "noConnectionToClear",
            "noCallToAnswer",
            "noCallToComplete",
            "incorrectMsgState",
        ),
        "stateIncompatibility",
    ),
    **dict.fromkeys(
        (
            "serviceBusy",
            "resourceBusy",
            "resourceOutOfService",
            "networkBusy",
            "networkOutOfService",
            "overallMonitorLimitExceeded",
            "conferenceMemberLimitExceeded",
        ),
        "systemResourceAvailability",
    ),
}
"""ECMA-269 error values a bare name may give (the category they belong to); any other value is
written ``category/value``."""

_NOT_SERVED: Final = m.CSTAErrorCode(category="operation", value="serviceNotSupported")
_BROKEN: Final = m.CSTAErrorCode(category="operation", value="generic")
_NOT_STARTED: Final = m.CSTAErrorCode(category="operation", value="securityViolation")


def csta_error(spec: str) -> m.CSTAErrorCode:
    """The CSTA error ``spec`` names: a value of :data:`ERROR_VALUES` (``invalidDestination``) or
    ``category/value`` (``stateIncompatibility/invalidObjectState``); ``ValueError`` otherwise."""
    category, slash, value = spec.strip().partition("/")
    if not slash:
        value = category
        found = ERROR_VALUES.get(value)
        if found is None:
            raise ValueError(f"unknown CSTA error value {value!r}: write it as category/value")
        category = found
    if category not in m.ERROR_CATEGORIES:
        known = ", ".join(sorted(m.ERROR_CATEGORIES))
        raise ValueError(f"unknown CSTA error category {category!r} (known: {known})")
    if not value:
        raise ValueError("the CSTA error value is empty")
    return m.CSTAErrorCode(category=category, value=value)


@dataclass(slots=True, kw_only=True)
class Refusal:
    """Refuse the next ``count`` requests of kind ``request`` with ``error`` after ``delay``."""

    request: str
    """The request's root element name (``SingleStepTransferCall``, ``MonitorStart`` …)."""
    error: m.CSTAErrorCode
    delay: float = 0.0
    """Seconds between the request and its negative response."""
    count: int = 1
    """How many more requests it refuses."""


@dataclass(slots=True)
class Refusals:
    """The PBX's refusal rules, shared by all its sessions; the first live rule of a kind wins."""

    rules: list[Refusal] = field(default_factory=list)

    def add(self, rule: Refusal) -> None:
        """Append ``rule`` (after the rules already waiting for the same kind)."""
        self.rules.append(rule)

    def take(self, request: str) -> Refusal | None:
        """The rule that refuses this ``request`` kind now (one use of it spent), or ``None``."""
        for index, rule in enumerate(self.rules):
            if rule.request == request:
                rule.count -= 1
                if rule.count <= 0:
                    del self.rules[index]
                return rule
        return None


# -- what the session reports ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerEvent:
    """Base of the server session's reports."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationSessionStarted(ServerEvent):
    """The application's StartApplicationSession was accepted."""

    session_id: str
    application_id: str
    duration_s: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationSessionEnded(ServerEvent):
    """The session is over (stopped, expired, closed by the application, broken stream)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived(ServerEvent):
    """A request for the PBX to answer with :meth:`CstaServerSession.respond` or
    :meth:`~CstaServerSession.refuse`."""

    invoke_id: int
    request: m.CstaRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRefused(ServerEvent):
    """A refusal rule refused a request; its negative response goes out after ``delay``."""

    invoke_id: int
    request: m.CstaRequest
    error: m.NegativeResponse
    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorStarted(ServerEvent):
    """The application monitors ``dn`` under ``cross_ref_id``."""

    dn: str
    cross_ref_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorStopped(ServerEvent):
    """The monitor ``cross_ref_id`` on ``dn`` is stopped."""

    dn: str
    cross_ref_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerProtocolError(ServerEvent):
    """The application sent something wrong; ``fatal`` when the link is closed for it."""

    reason: str
    invoke_id: int | None = None
    fatal: bool = False


class ServerState(Enum):
    """Where the application session is."""

    AWAITING_START = "awaiting-start"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass(order=True, slots=True)
class _Delayed:
    at: float
    seq: int
    invoke_id: int = field(compare=False)
    message: m.CstaMessage = field(compare=False)


class CstaServerSession:
    """One CSTA application session, PBX role (the API in the module docstring).

    ``session_id`` names it; ``device_known`` says whether a device may be monitored;
    ``application_id`` / ``user_name`` / ``password``, when given, must match the application's;
    ``max_duration_s`` caps the session duration an application asks for (and is granted when it
    asks for none); ``refusals`` are the PBX's rules, shared by its sessions.
    """

    def __init__(
        self,
        *,
        session_id: str,
        device_known: Callable[[str], bool],
        refusals: Refusals | None = None,
        dialect: Dialect = DIALECTS["generic"],
        application_id: str | None = None,
        user_name: str | None = None,
        password: str | None = None,
        max_duration_s: int = 300,
        first_cross_ref: int = 1,
    ) -> None:
        self.session_id = session_id
        self.dialect = dialect
        self._device_known = device_known
        self._refusals = refusals if refusals is not None else Refusals()
        self._application_id = application_id
        self._user_name = user_name
        self._password = password
        self._max_duration_s = max_duration_s
        self._namespace = dialect.namespace
        self._state = ServerState.AWAITING_START
        self._decoder = FrameDecoder()
        self._out = bytearray()
        self._delayed: list[_Delayed] = []
        self._seq = 0
        self._next_cross_ref = first_cross_ref
        self._expires_at: float | None = None
        self.application: str | None = None
        """The application id it started with."""
        self.duration_s: int | None = None
        """The granted session duration."""
        self.monitors: dict[str, str] = {}
        """monitorCrossRefID → the DN it watches."""

    @property
    def state(self) -> ServerState:
        """Where the session is."""
        return self._state

    @property
    def closing(self) -> bool:
        """The connection is to be closed once :meth:`data_to_send` is written."""
        return self._state is ServerState.CLOSED

    def monitors_of(self, dn: str) -> list[str]:
        """The cross-reference ids of the monitors watching ``dn``."""
        return [xref for xref, device in self.monitors.items() if device == dn]

    def data_to_send(self) -> bytes:
        """The bytes queued for the application since the last call."""
        data = bytes(self._out)
        self._out.clear()
        return data

    # -- the PBX's doors ---------------------------------------------------------------------

    def respond(self, invoke_id: int, response: m.CstaMessage, *, at: float | None = None) -> None:
        """Answer the request ``invoke_id`` with ``response`` now, or at time ``at``."""
        self._answer(invoke_id, response, at)

    def refuse(self, invoke_id: int, error: m.NegativeResponse, *, at: float | None = None) -> None:
        """Refuse the request ``invoke_id`` with ``error`` now, or at time ``at``."""
        self._answer(invoke_id, error, at)

    def send_event(self, dn: str, event: m.CstaEvent) -> int:
        """Write ``event`` on every monitor of ``dn`` (its ``monitor_cross_ref_id`` set to each);
        the number of monitors it went to."""
        if self._state is not ServerState.ACTIVE:
            return 0
        sent = 0
        for xref, device in self.monitors.items():
            if device == dn:
                self._send(
                    EVENT_INVOKE_ID, msgspec.structs.replace(event, monitor_cross_ref_id=xref)
                )
                sent += 1
        return sent

    def close(self, reason: str) -> list[ServerEvent]:
        """End the session now (a link drop): nothing more is written."""
        if self._state is ServerState.CLOSED:
            return []
        self._close()
        return [ApplicationSessionEnded(reason=reason)]

    def _answer(self, invoke_id: int, message: m.CstaMessage, at: float | None) -> None:
        if self._state is ServerState.CLOSED:
            return
        if at is None:
            self._send(invoke_id, message)
            return
        self._seq += 1
        self._delayed.append(_Delayed(at, self._seq, invoke_id, message))
        self._delayed.sort()

    def _send(self, invoke_id: int, message: m.CstaMessage) -> None:
        self._out += encode_frame(invoke_id, encode(message, namespace=self._namespace))

    def _close(self) -> None:
        self._state = ServerState.CLOSED
        self._delayed.clear()
        self._expires_at = None

    # -- bytes received ----------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[ServerEvent]:
        """The facts the application's bytes produce; ``b""`` means it closed the link."""
        if self._state is ServerState.CLOSED:
            return []
        if not data:
            return self.close("the application closed the link")
        broken: FramingError | None = None
        try:
            frames = self._decoder.feed(data)
        except FramingError as bad:
            frames, broken = bad.frames, bad
        events: list[ServerEvent] = []
        for invoke_id, body in frames:
            events.extend(self._on_frame(invoke_id, body, now))
            if self.closing:
                return events
        if broken is not None:  # the frames before the bad header first, then the end
            self._close()
            events += [
                ServerProtocolError(reason=str(broken), fatal=True),
                ApplicationSessionEnded(reason=f"broken stream: {broken}"),
            ]
        return events

    def _on_frame(self, invoke_id: int, body: bytes, now: float) -> list[ServerEvent]:
        try:
            message = decode(body)
        except CstaDecodeError as bad:
            self._send(invoke_id, _BROKEN)
            return [ServerProtocolError(reason=bad.reason, invoke_id=invoke_id)]
        if isinstance(message, m.CstaRequest):
            return self._on_request(invoke_id, message, now)
        if isinstance(message, m.UnknownDocument):
            self._send(invoke_id, _NOT_SERVED)
            reason = f"{message.tag} is not a service this PBX offers"
            return [ServerProtocolError(reason=reason, invoke_id=invoke_id)]
        if isinstance(message, m.SystemStatusResponse):
            return []
        reason = f"unexpected {type(message).__name__} from the application"
        return [ServerProtocolError(reason=reason, invoke_id=invoke_id)]

    def _on_request(self, invoke_id: int, request: m.CstaRequest, now: float) -> list[ServerEvent]:
        rule = self._refusals.take(type(request).__name__)
        if rule is not None:
            error = _refusal_error(request, rule.error)
            self._answer(invoke_id, error, now + rule.delay if rule.delay > 0 else None)
            return [
                RequestRefused(invoke_id=invoke_id, request=request, error=error, delay=rule.delay)
            ]
        if isinstance(request, m.StartApplicationSession):
            return self._on_start(invoke_id, request, now)
        if self._state is not ServerState.ACTIVE:
            self._send(invoke_id, _NOT_STARTED)
            reason = f"{type(request).__name__} before the application session started"
            return [ServerProtocolError(reason=reason, invoke_id=invoke_id)]
        if isinstance(request, m.ResetApplicationSessionTimer):
            return self._on_reset(invoke_id, request, now)
        if isinstance(request, m.StopApplicationSession):
            self._send(invoke_id, m.StopApplicationSessionPosResponse())
            self._close()
            return [ApplicationSessionEnded(reason="the application stopped the session")]
        if isinstance(request, m.SystemStatus):
            self._send(invoke_id, m.SystemStatusResponse())
            return []
        if isinstance(request, m.MonitorStart):
            return self._on_monitor_start(invoke_id, request)
        if isinstance(request, m.MonitorStop):
            return self._on_monitor_stop(invoke_id, request)
        return [RequestReceived(invoke_id=invoke_id, request=request)]

    def _on_start(
        self, invoke_id: int, request: m.StartApplicationSession, now: float
    ) -> list[ServerEvent]:
        if self._state is not ServerState.AWAITING_START:
            refusal = m.StartApplicationSessionNegResponse(defined_error="invalidApplicationInfo")
            self._send(invoke_id, refusal)
            reason = "StartApplicationSession on a started session"
            return [ServerProtocolError(reason=reason, invoke_id=invoke_id)]
        expected = (self._application_id, self._user_name, self._password)
        given = (request.application_id, request.user_name, request.password)
        if any(want is not None and want != got for want, got in zip(expected, given, strict=True)):
            self._send(
                invoke_id,
                m.StartApplicationSessionNegResponse(defined_error="invalidApplicationInfo"),
            )
            reason = f"application {request.application_id!r} refused: wrong id or credentials"
            return [ServerProtocolError(reason=reason, invoke_id=invoke_id)]
        known = set(CSTA_NAMESPACES.values())
        versions = request.requested_protocol_versions
        version = next((v for v in versions if v in known), None)
        if versions and version is None:
            self._send(
                invoke_id,
                m.StartApplicationSessionNegResponse(defined_error="nonSupportedProtocolVersion"),
            )
            reason = f"no known protocol version in {', '.join(versions)}"
            return [ServerProtocolError(reason=reason, invoke_id=invoke_id)]
        if version is not None:
            self._namespace = version
        self._state = ServerState.ACTIVE
        self.application = request.application_id
        self.duration_s = self._granted(request.requested_session_duration)
        self._expires_at = now + self.duration_s
        self._send(
            invoke_id,
            m.StartApplicationSessionPosResponse(
                session_id=self.session_id,
                actual_protocol_version=version or self._namespace,
                actual_session_duration=self.duration_s,
            ),
        )
        return [
            ApplicationSessionStarted(
                session_id=self.session_id,
                application_id=request.application_id,
                duration_s=self.duration_s,
            )
        ]

    def _granted(self, requested: int | None) -> int:
        if requested is None or requested <= 0:
            return self._max_duration_s
        return min(requested, self._max_duration_s)

    def _on_reset(
        self, invoke_id: int, request: m.ResetApplicationSessionTimer, now: float
    ) -> list[ServerEvent]:
        if request.session_id != self.session_id:
            self._send(
                invoke_id,
                m.ResetApplicationSessionTimerNegResponse(defined_error="invalidSessionID"),
            )
            reason = f"heartbeat for unknown session {request.session_id!r}"
            return [ServerProtocolError(reason=reason, invoke_id=invoke_id)]
        self.duration_s = self._granted(request.requested_session_duration or self.duration_s)
        self._expires_at = now + self.duration_s
        self._send(
            invoke_id,
            m.ResetApplicationSessionTimerPosResponse(actual_session_duration=self.duration_s),
        )
        return []

    def _on_monitor_start(self, invoke_id: int, request: m.MonitorStart) -> list[ServerEvent]:
        dn = request.device
        if not self._device_known(dn):
            self._send(invoke_id, m.CSTAErrorCode(category="operation", value="invalidDeviceID"))
            return [ServerProtocolError(reason=f"MonitorStart on unknown device {dn!r}")]
        xref = str(self._next_cross_ref)
        self._next_cross_ref += 1
        self.monitors[xref] = dn
        self._send(invoke_id, m.MonitorStartResponse(monitor_cross_ref_id=xref))
        return [MonitorStarted(dn=dn, cross_ref_id=xref)]

    def _on_monitor_stop(self, invoke_id: int, request: m.MonitorStop) -> list[ServerEvent]:
        xref = request.monitor_cross_ref_id
        dn = self.monitors.pop(xref, None)
        if dn is None:
            error = m.CSTAErrorCode(category="operation", value="invalidMonitorCrossRefID")
            self._send(invoke_id, error)
            return [ServerProtocolError(reason=f"MonitorStop of unknown monitor {xref!r}")]
        self._send(invoke_id, m.MonitorStopResponse())
        return [MonitorStopped(dn=dn, cross_ref_id=xref)]

    # -- the timer ---------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next run (``None``: nothing is timed)."""
        deadlines = [self._delayed[0].at] if self._delayed else []
        if self._expires_at is not None:
            deadlines.append(self._expires_at)
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> list[ServerEvent]:
        """Send the delayed answers now due; expire a session its application stopped renewing."""
        while self._delayed and self._delayed[0].at <= now:
            due = self._delayed.pop(0)
            self._send(due.invoke_id, due.message)
        if self._expires_at is not None and now >= self._expires_at:
            self._close()
            return [ApplicationSessionEnded(reason="the session expired: no heartbeat")]
        return []


def _refusal_error(request: m.CstaRequest, error: m.CSTAErrorCode) -> m.NegativeResponse:
    """A refusal as the request's family writes it (ECMA-354 requests have their own)."""
    if isinstance(request, m.StartApplicationSession):
        return m.StartApplicationSessionNegResponse(defined_error=error.value)
    if isinstance(request, m.ResetApplicationSessionTimer):
        return m.ResetApplicationSessionTimerNegResponse(defined_error=error.value)
    return error
