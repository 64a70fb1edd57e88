"""The client side of one CSTA application session (ECMA-354) over one TCP link, sans-IO.

Theory of operation: the user (the premise switch, through its asyncio adapter) drives three
doors, as in aioquic — API calls (:meth:`CstaSession.connect`, :meth:`~CstaSession.send_request`,
:meth:`~CstaSession.monitor_start` …), bytes received (:meth:`~CstaSession.receive_data`, ``b""``
when the PBX closed), and the timer (:meth:`~CstaSession.next_deadline`,
:meth:`~CstaSession.handle_timer`); every door takes ``now`` and returns the
:mod:`~ivr_server.switch.csta.events` it produced, and bytes to write collect in
:meth:`~CstaSession.data_to_send`. One object lives for one TCP connection: once ``CLOSED`` it
stays so, and a reconnect builds a new session (then monitors and snapshots again).

- Invoke ids run 1..9999 and wrap, skipping ids still pending and the id the dialect's PBX puts
  on events; each request waits at most ``invoke_timeout_s`` for its response, then
  :class:`InvokeTimedOut` forgets it.
- After the session starts, ResetApplicationSessionTimer goes out every ``heartbeat_s`` (at most
  half the negotiated duration, which is the default); if the session's duration passes with no
  positive answer, the session is lost.
- MonitorStart's response gives the monitorCrossRefID that events carry; the session keeps the
  cross-reference id ↔ DN map and reports each event with its DN.
- A bad frame header breaks the stream (``ProtocolError(fatal=True)`` and ``SessionLost``); a bad
  document in a good frame is a message error (``ProtocolError``) and the link goes on.
"""

from __future__ import annotations

__all__ = ["INVOKE_TIMEOUT_S", "CstaSession", "SessionState"]

from dataclasses import dataclass
from enum import Enum
from typing import Final

from ivr_server.errors import LocalProtocolError
from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import RESPONSE_TYPES, CstaDecodeError, decode, encode
from ivr_server.switch.csta.dialects import DIALECTS, Dialect
from ivr_server.switch.csta.events import (
    DocumentIgnored,
    EventReceived,
    InvokeTimedOut,
    ProtocolError,
    RequestFailed,
    ResponseReceived,
    SessionEvent,
    SessionLost,
    SessionRefused,
    SessionStarted,
    SystemStatusReceived,
)
from ivr_server.switch.csta.framing import MAX_INVOKE_ID, FrameDecoder, FramingError, encode_frame

INVOKE_TIMEOUT_S: Final = 10.0
"""How long a request waits for its response by default."""


class SessionState(Enum):
    """Where the application session is."""

    IDLE = "idle"
    STARTING = "starting"
    ACTIVE = "active"
    STOPPING = "stopping"
    CLOSED = "closed"


_TRANSITIONS: Final = frozenset(
    {
        (SessionState.IDLE, SessionState.STARTING),
        (SessionState.IDLE, SessionState.CLOSED),
        (SessionState.STARTING, SessionState.ACTIVE),
        (SessionState.STARTING, SessionState.CLOSED),
        (SessionState.ACTIVE, SessionState.STOPPING),
        (SessionState.ACTIVE, SessionState.CLOSED),
        (SessionState.STOPPING, SessionState.CLOSED),
    }
)
"""The legal moves; any other is our bug (:class:`LocalProtocolError`)."""


@dataclass(slots=True)
class _Pending:
    request: m.CstaRequest
    dn: str | None
    deadline: float


class CstaSession:
    """One CSTA application session, client role (the API in the module docstring)."""

    def __init__(
        self,
        *,
        application_id: str,
        dialect: Dialect = DIALECTS["generic"],
        user_name: str | None = None,
        password: str | None = None,
        session_duration_s: int | None = None,
        heartbeat_s: float | None = None,
        invoke_timeout_s: float = INVOKE_TIMEOUT_S,
    ) -> None:
        self.dialect = dialect
        self._application_id = application_id
        self._user_name = user_name
        self._password = password
        self._requested_duration_s = (
            dialect.session_duration_s if session_duration_s is None else session_duration_s
        )
        self._heartbeat_s = heartbeat_s
        self._invoke_timeout_s = invoke_timeout_s
        self._state = SessionState.IDLE
        self._decoder = FrameDecoder()
        self._out = bytearray()
        self._pending: dict[int, _Pending] = {}
        self._next_invoke_id = 1
        self._session_id: str | None = None
        self._duration_s: int | None = None
        self._heartbeat_at: float | None = None
        self._expires_at: float | None = None
        self._dn_by_xref: dict[str, str] = {}
        self._xref_by_dn: dict[str, str] = {}

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """Where the session is."""
        return self._state

    @property
    def session_id(self) -> str | None:
        """The PBX's session id once started."""
        return self._session_id

    def monitor_of(self, dn: str) -> str | None:
        """The monitorCrossRefID watching ``dn``, if any."""
        return self._xref_by_dn.get(dn)

    def pending(self) -> int:
        """Requests waiting for their response."""
        return len(self._pending)

    def _set_state(self, state: SessionState) -> None:
        if (self._state, state) not in _TRANSITIONS:
            raise LocalProtocolError(
                f"CSTA session cannot go from {self._state.value} to {state.value}"
            )
        self._state = state

    def _close(self) -> None:
        self._set_state(SessionState.CLOSED)
        self._pending.clear()
        self._heartbeat_at = self._expires_at = None

    # -- API calls --------------------------------------------------------------------------

    def connect(self, now: float) -> None:
        """Start the session: queue StartApplicationSession."""
        self._set_state(SessionState.STARTING)
        login = self.dialect.login_in_session
        request = m.StartApplicationSession(
            application_id=self._application_id,
            user_name=self._user_name if login else None,
            password=self._password if login else None,
            requested_protocol_versions=self.dialect.protocol_versions,
            requested_session_duration=self._requested_duration_s,
        )
        self._invoke(request, None, now)

    def send_request(self, request: m.CstaRequest, now: float, *, dn: str | None = None) -> int:
        """Queue ``request`` (the session must be active); its invoke id. ``dn`` comes back with
        the response, to route it."""
        if self._state is not SessionState.ACTIVE:
            raise LocalProtocolError(f"CSTA session is {self._state.value}, not active")
        return self._invoke(request, dn, now)

    def monitor_start(self, dn: str, now: float) -> int:
        """Queue MonitorStart for ``dn``; its events are reported with ``dn`` once it answers."""
        return self.send_request(m.MonitorStart(device=dn, monitor_type="device"), now, dn=dn)

    def monitor_stop(self, dn: str, now: float) -> int:
        """Queue MonitorStop for the monitor watching ``dn``."""
        xref = self._xref_by_dn.get(dn)
        if xref is None:
            raise LocalProtocolError(f"{dn} is not monitored")
        return self.send_request(m.MonitorStop(monitor_cross_ref_id=xref), now, dn=dn)

    def snapshot_device(self, dn: str, now: float) -> int:
        """Queue SnapshotDevice for ``dn`` (the calls there, for a resync)."""
        return self.send_request(m.SnapshotDevice(snapshot_object=dn), now, dn=dn)

    def stop(self, now: float) -> int:
        """Queue StopApplicationSession; the session closes on its answer."""
        assert self._session_id is not None
        invoke_id = self.send_request(
            m.StopApplicationSession(session_id=self._session_id, defined_end_reason="normal"), now
        )
        self._set_state(SessionState.STOPPING)
        return invoke_id

    def data_to_send(self) -> bytes:
        """The bytes queued for the PBX since the last call."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def _allocate_invoke_id(self) -> int:
        reserved = self.dialect.event_invoke_id
        for _ in range(MAX_INVOKE_ID):
            candidate = self._next_invoke_id
            self._next_invoke_id = candidate % MAX_INVOKE_ID + 1
            if candidate != reserved and candidate not in self._pending:
                return candidate
        raise LocalProtocolError("no free CSTA invoke id: every one is pending")

    def _invoke(self, request: m.CstaRequest, dn: str | None, now: float) -> int:
        invoke_id = self._allocate_invoke_id()
        self._pending[invoke_id] = _Pending(request, dn, now + self._invoke_timeout_s)
        self._send(invoke_id, request)
        return invoke_id

    def _send(self, invoke_id: int, message: m.CstaMessage) -> None:
        self._out += encode_frame(invoke_id, encode(message, namespace=self.dialect.namespace))

    # -- bytes received ---------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[SessionEvent]:
        """The events the PBX's bytes produce; ``b""`` means the PBX closed the link."""
        if self._state is SessionState.CLOSED:
            return []
        if not data:
            self._close()
            return [SessionLost(reason="the PBX closed the link")]
        broken: FramingError | None = None
        try:
            frames = self._decoder.feed(data)
        except FramingError as bad:
            frames, broken = bad.frames, bad
        events: list[SessionEvent] = []
        for invoke_id, body in frames:
            events.extend(self._on_frame(invoke_id, body, now))
            if self.state is SessionState.CLOSED:
                return events
        if broken is not None:  # the frames before the bad header first, then the end
            self._close()
            events += [
                ProtocolError(reason=str(broken), fatal=True),
                SessionLost(reason=str(broken)),
            ]
        return events

    def _on_frame(self, invoke_id: int, body: bytes, now: float) -> list[SessionEvent]:
        try:
            message = decode(body)
        except CstaDecodeError as bad:
            return [ProtocolError(reason=bad.reason, invoke_id=invoke_id)]
        if isinstance(message, m.CstaEvent):
            dn = self._dn_by_xref.get(message.monitor_cross_ref_id)
            return [EventReceived(dn=dn, event=message)]
        if isinstance(message, m.CstaResponse | m.NegativeResponse):
            return self._on_response(invoke_id, message, now)
        if isinstance(message, m.SystemStatus):
            self._send(invoke_id, m.SystemStatusResponse())
            return [SystemStatusReceived(status=message.system_status)]
        if isinstance(message, m.StopApplicationSession):
            self._send(invoke_id, m.StopApplicationSessionPosResponse())
            self._close()
            return [SessionLost(reason="the PBX stopped the application session")]
        if isinstance(message, m.UnknownDocument):
            return [DocumentIgnored(invoke_id=invoke_id, tag=message.tag)]
        return [ProtocolError(reason=f"unexpected {type(message).__name__}", invoke_id=invoke_id)]

    def _on_response(
        self, invoke_id: int, message: m.CstaMessage, now: float
    ) -> list[SessionEvent]:
        tag = type(message).__name__
        pending = self._pending.pop(invoke_id, None)
        if pending is None:
            return [ProtocolError(reason=f"{tag} answers no pending invoke", invoke_id=invoke_id)]
        request = pending.request
        if isinstance(message, m.NegativeResponse):
            return self._on_negative(invoke_id, pending, message)
        if type(message) is not RESPONSE_TYPES[type(request)]:
            self._pending[invoke_id] = pending
            reason = f"{tag} does not answer {type(request).__name__}"
            return [ProtocolError(reason=reason, invoke_id=invoke_id)]
        if isinstance(message, m.StartApplicationSessionPosResponse):
            self._set_state(SessionState.ACTIVE)
            self._session_id = message.session_id
            actual = message.actual_session_duration
            self._renew(self._requested_duration_s if actual is None else actual, now)
            return [
                SessionStarted(
                    session_id=message.session_id,
                    protocol_version=message.actual_protocol_version,
                    session_duration_s=message.actual_session_duration,
                )
            ]
        if isinstance(message, m.ResetApplicationSessionTimerPosResponse):
            actual = message.actual_session_duration
            self._renew(self._duration_s if actual is None else actual, now)
            return []
        if isinstance(message, m.StopApplicationSessionPosResponse):
            self._close()
            return [SessionLost(reason="application session stopped")]
        if isinstance(message, m.MonitorStartResponse) and pending.dn is not None:
            self._dn_by_xref[message.monitor_cross_ref_id] = pending.dn
            self._xref_by_dn[pending.dn] = message.monitor_cross_ref_id
        elif isinstance(request, m.MonitorStop):
            self._dn_by_xref.pop(request.monitor_cross_ref_id, None)
            if pending.dn is not None:
                self._xref_by_dn.pop(pending.dn, None)
        return [
            ResponseReceived(invoke_id=invoke_id, request=request, response=message, dn=pending.dn)
        ]

    def _on_negative(
        self, invoke_id: int, pending: _Pending, error: m.NegativeResponse
    ) -> list[SessionEvent]:
        if isinstance(pending.request, m.StartApplicationSession):
            self._close()
            reason = (
                error.defined_error
                if isinstance(error, m.StartApplicationSessionNegResponse)
                else None
            )
            if isinstance(error, m.CSTAErrorCode):
                reason = f"{error.category}: {error.value}"
            return [SessionRefused(error=reason)]
        if isinstance(pending.request, m.ResetApplicationSessionTimer):
            self._close()
            return [SessionLost(reason="the PBX refused the session heartbeat")]
        return [
            RequestFailed(invoke_id=invoke_id, request=pending.request, error=error, dn=pending.dn)
        ]

    # -- the timer ---------------------------------------------------------------------------

    def _heartbeat_interval_s(self) -> float:
        """The configured heartbeat, never longer than half the negotiated duration."""
        assert self._duration_s
        half = self._duration_s / 2
        return half if self._heartbeat_s is None else min(self._heartbeat_s, half)

    def _renew(self, duration_s: int | None, now: float) -> None:
        self._duration_s = duration_s
        if duration_s:
            self._heartbeat_at = now + self._heartbeat_interval_s()
            self._expires_at = now + duration_s
        else:
            self._heartbeat_at = self._expires_at = None

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next run (``None``: nothing is timed)."""
        deadlines = [p.deadline for p in self._pending.values()]
        if self._heartbeat_at is not None:
            deadlines.append(self._heartbeat_at)
        if self._expires_at is not None:
            deadlines.append(self._expires_at)
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> list[SessionEvent]:
        """Time out invokes, send the heartbeat when due, expire a session left unrenewed."""
        events: list[SessionEvent] = []
        for invoke_id, pending in list(self._pending.items()):
            if pending.deadline > now:
                continue
            del self._pending[invoke_id]
            if isinstance(pending.request, m.StartApplicationSession | m.StopApplicationSession):
                self._close()
                name = type(pending.request).__name__
                return [*events, SessionLost(reason=f"no answer to {name}")]
            if not isinstance(pending.request, m.ResetApplicationSessionTimer):
                events.append(
                    InvokeTimedOut(invoke_id=invoke_id, request=pending.request, dn=pending.dn)
                )
        if self._expires_at is not None and now >= self._expires_at:
            self._close()
            return [*events, SessionLost(reason="the session expired: no heartbeat answered")]
        if self._heartbeat_at is not None and now >= self._heartbeat_at:
            assert self._session_id is not None and self._duration_s
            self._heartbeat_at = now + self._heartbeat_interval_s()
            reset = m.ResetApplicationSessionTimer(
                session_id=self._session_id, requested_session_duration=self._duration_s
            )
            self._invoke(reset, None, now)
        return events
