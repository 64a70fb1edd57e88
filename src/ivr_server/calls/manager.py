"""Calls of IVR ports: the per-call state machines, their timers, and the switch requests they make.

Theory of operation. The service admits a ``NewCall`` (login, mode, flow control: it owns the
configuration) and hands it to :meth:`CallManager.new_call` with the resolved port. From then on
every IVR message about the call comes through :meth:`CallManager.handle`, every switch event
through :meth:`CallManager.on_event`, and the clock through :meth:`CallManager.handle_timer`.
Messages to the IVR go out through the ``send`` callback given at construction, addressed to the
call's *owner* (the session that last spoke about the call; ``None`` while no session of the call's
IVR is connected, in which case unsolicited messages are dropped and the orphan timer runs).

Call-control inputs go through the table of :mod:`ivr_server.calls.machine`: a pair the table does
not hold is refused there and then, with the state unchanged; an allowed one runs
``_do_<action>`` and moves the call. Side requests (CallInfoReq, user data) are served directly.

Requests to the switch carry a ReferenceID; the events that answer them come back through
:meth:`on_event` (the service drains the switches after every input) and find the waiting request
in ``_pending``. User data lives on the switch's call: reads ask the switch, writes are switch
requests answered by EventAttachedDataChanged or EventError.

Errors become answers only through :mod:`ivr_server.calls.replies` (``Refusal``).
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final, Literal

from ivr_server.calls.machine import REFUSALS, TRANSITIONS, CallInput, CallState, Refuse
from ivr_server.calls.replies import (
    UNSUP_OPER,
    Refusal,
    blocked,
    invalid_request,
    no_such_call,
)
from ivr_server.logs import fields
from ivr_server.memory import shrink
from ivr_server.metrics import Metrics
from ivr_server.switch import (
    USER_DATA_LIMIT,
    DnType,
    EventAttachedDataChanged,
    EventDialing,
    EventError,
    EventEstablished,
    EventReleased,
    EventRinging,
    RequestApplyTreatment,
    RequestRouteCall,
    SwitchEvent,
    SwitchRequest,
    TAbandonCall,
    TAttachUserData,
    TDeleteAllUserData,
    TDeleteUserData,
    TErrorCode,
    TInboundCall,
    TOutboundAnswered,
    TOutboundCall,
    TReleaseCall,
    TRouteAbort,
    TRouteFailed,
    TRouteRequest,
    TTreatmentStatus,
    TUpdateUserData,
    VirtualSwitch,
    kv_size,
    kv_update,
)
from ivr_server.timers import DeadlineQueue, earliest
from ivr_server.wire import KvList, Message, Node, NVPair
from ivr_server.wire import messages as m
from ivr_server.wire.limits import USER_DATA_WIRE_LIMIT, kv_wire_size

__all__ = ["Call", "CallManager", "CallSettings", "PortTarget"]

_COMPACT_PEAK: Final = 4096
"""Below this many calls in progress, no table is worth compacting (a wind-down that started
above it carries on below it, down to no call: :meth:`CallManager._forget`)."""

log = logging.getLogger("ivr_server.calls")

Owner = Hashable
"""Whoever receives a call's messages (the service passes its ``Session`` objects)."""
SendFn = Callable[[Any, str, Message], None]
"""``send(owner, call_id, message)``."""
DialOutReportFn = Callable[[Any, str, str, str | None], None]
"""``report(dial_out, kind, call_id, cause)``: the progress of an outbound call."""

_FAILURE_CODES: Final = {
    "Busy": TErrorCode.TERR_ORIG_DN_BUSY,
    "NoAnswer": TErrorCode.TERR_DN_NO_ANSWER,
    "ConnectFailed": TErrorCode.TERR_CONN_ATMPT_FAIL,
}
"""``Failure/@FailureCause`` -> AttributeErrorCode of the EventError to the router (§3.3.5)."""

_TREAT_INPUT: Final = {
    "Started": CallInput.TREAT_STARTED,
    "NotStarted": CallInput.TREAT_NOT_STARTED,
    "Completed": CallInput.TREAT_COMPLETED,
}

_TRANSFER_TAGS: Final = frozenset(
    {
        "OneStepXfer",
        "OneStepConf",
        "InitXfer",
        "InitConf",
        "CompleteXfer",
        "CompleteConf",
        "RetrieveCall",
    }
)
"""Behind-only requests: ``CallError FailedReq=<name> TlibErrCode='UNSUP_OPER'`` In-Front."""


@dataclass(frozen=True, slots=True)
class CallSettings:
    """Timer durations in seconds and the release default (PROTOCOL.md §7, §3.3.6)."""

    router_timeout: float = 4.0
    call_timeout: float = 8 * 3600.0
    wait_for_ringing: float = 60.0
    orphan_call_timeout: float = 600.0
    active_release: bool = True


@dataclass(frozen=True, slots=True)
class PortTarget:
    """Where a new call lands: the result of the service's mode procedure (PROTOCOL.md §5.2)."""

    ivr: str
    """The IVR object's name."""
    port: str
    """The IVR port number (NewCall ``CalledNum``)."""
    dn: str
    """The port's DN."""
    switch: VirtualSwitch
    """The switch carrying the DN."""
    mode: Literal["In-Front", "Behind"]
    """The call's mode."""
    encoding: str = "ISO-8859-1"
    """The output encoding of the IVR's sessions: the call's user data must fit one reply
    written in it (``wire.limits.USER_DATA_WIRE_LIMIT``)."""


class Call:
    """One call of an IVR port, as the server's XML side sees it."""

    __slots__ = (
        "ani",
        "answered",
        "call_id",
        "called_num",
        "conn_id",
        "dial_out",
        "dn",
        "dnis",
        "encoding",
        "held_route",
        "ivr",
        "last_event",
        "last_user_data",
        "legacy",
        "owner",
        "port",
        "route_dn",
        "route_started",
        "state",
        "switch",
        "switch_call_id",
        "treatment",
        "uuid",
    )

    def __init__(
        self,
        call_id: str,
        owner: Owner | None,
        target: PortTarget,
        called_num: str,
        ani: str | None = None,
        dnis: str | None = None,
        legacy: bool = False,
    ):
        self.call_id = call_id
        self.owner = owner
        self.ivr = target.ivr
        self.port = target.port
        self.dn = target.dn
        self.switch = target.switch
        self.encoding = target.encoding
        self.called_num = called_num
        self.ani = ani
        self.dnis = dnis
        self.legacy = legacy
        self.state = CallState.AWAIT_RINGING
        self.dial_out: Any = None
        """The predictive-call request an outbound call answers (reported to as it goes)."""
        self.answered = False
        self.conn_id: str | None = None
        self.switch_call_id: int | None = None
        self.last_event: str | None = None
        self.last_user_data: KvList = ()
        self.route_dn: str | None = None
        self.route_started = 0.0
        self.treatment: str | None = None
        self.held_route: m.RouteResponse | None = None
        self.uuid: str | None = None

    def __repr__(self) -> str:
        return f"<Call {self.call_id} {self.ivr}/{self.port} {self.state.value} {self.conn_id}>"

    def log_fields(self) -> dict[str, Any]:
        """The context fields of a log line about this call (docs/operations.md)."""
        return fields(
            call_id=self.call_id, conn_id=self.conn_id, ivr=self.ivr, port=self.port, dn=self.dn
        )


_Kind = Literal["inbound", "outbound", "udata", "route"]


class _Pending:
    """A switch request waiting for its events. Several per call, so a plain class (native in the
    compiled build) rather than a frozen dataclass, whose generated ``__init__`` runs in Python."""

    __slots__ = ("call", "kind", "owner", "request_id")

    def __init__(
        self, call: Call, kind: _Kind, request_id: str = "", owner: Owner | None = None
    ) -> None:
        self.call: Final = call
        self.kind: Final = kind
        self.request_id: Final = request_id
        self.owner: Final = owner
        """Who asked (user-data replies go back to the requester)."""


def _kv(ex: KvList | None, legacy: tuple[NVPair, ...] | None) -> KvList:
    """A kvlist from the ``…Ex`` form or the call-version-1.0 NVPair form."""
    if ex:
        return ex
    if legacy:
        return tuple(Node(Name=p.NVName, Type="Str", Val=p.NVVal) for p in legacy)
    return ()


def _nvpairs(items: KvList) -> tuple[NVPair, ...] | None:
    """Call version 1.0 form of a kvlist (nested lists cannot be expressed and are left out)."""
    pairs = tuple(NVPair(NVName=i.Name, NVVal=i.Val) for i in items if isinstance(i, Node))
    return pairs or None


def _data_problem(data: KvList, encoding: str) -> str | None:
    """Why ``data`` cannot be a call's user data, or ``None``: over the original's 16 KB
    (``switch.kv_size``), or too long as written in ``encoding`` for the ``UDataResp`` that
    reads it all back to fit one document (``wire.limits.USER_DATA_WIRE_LIMIT``)."""
    size = kv_size(data)
    if size > USER_DATA_LIMIT:
        return f"user data of {size} bytes, over 16 KB ({USER_DATA_LIMIT})"
    written = kv_wire_size(data, encoding)
    if written > USER_DATA_WIRE_LIMIT:
        return (
            f"user data taking {written} bytes written ({encoding}), over "
            f"{USER_DATA_WIRE_LIMIT}: it could not be read back in one reply"
        )
    return None


def _active_release(ex: KvList, default: bool) -> bool:
    for item in ex:
        if item.Name == "GCTIActiveRelease" and isinstance(item, Node):
            return item.Val.strip().lower() != "false"
    return default


class CallManager:
    """Every call of the server. See the module docstring."""

    def __init__(
        self,
        settings: CallSettings,
        send: SendFn,
        metrics: Metrics | None = None,
        dial_out_report: DialOutReportFn | None = None,
    ) -> None:
        self.settings = settings
        self._dial_out_report = dial_out_report
        self.metrics = metrics if metrics is not None else Metrics()
        self._send = send
        self.calls: dict[str, Call] = {}
        """CallId -> call."""
        self._by_port: dict[tuple[str, str], Call] = {}
        self._by_conn: dict[str, Call] = {}
        self._pending: dict[int, _Pending] = {}
        self._refs = itertools.count(1_000_000_001)
        self._router_timer: DeadlineQueue[str] = DeadlineQueue()
        self._call_timer: DeadlineQueue[str] = DeadlineQueue()
        self._ringing_timer: DeadlineQueue[str] = DeadlineQueue()
        self._orphan_timer: DeadlineQueue[str] = DeadlineQueue()
        self._actions: dict[str, Callable[[Call, float, Any], None]] = {}
        """Table action name -> bound ``_do_<action>`` method (looked up once)."""
        self._requester: Owner | None = None
        """The session whose request is being handled: direct replies go to it, unsolicited call
        events to the call's owner (PROTOCOL.md §9.4.3)."""
        self.completed = 0
        """Calls that ended since start (for statistics)."""
        self._peak = 0
        """Most calls in progress since the last compaction."""
        self._winding_down = False
        """A compaction after a peak of thousands happened and calls remain: the next eightfold
        drops (down to none) are due too, however few calls that is."""
        self.compact_due = False
        """Calls in progress fell eightfold below a peak of thousands, or further on the way
        down to none: the owner should call :meth:`compact` (and every other per-call
        table's), then give the freed heap back."""
        self._handlers: dict[type[Message], Callable[[Call, Any, float], None]] = {
            m.EndCall: self._on_end_call,
            m.CallInfoReq: self._on_call_info,
            m.UDataSet: self._on_udata_set,
            m.UDataGet: self._on_udata_get,
            m.UDataGetAll: self._on_udata_get_all,
            m.UDataDel: self._on_udata_del,
            m.RouteRequest: self._on_route_request,
            m.TreatStatus: self._on_treat_status,
            m.CancelCompleted: self._on_cancel_completed,
            m.Connected: self._on_connected,
            m.Failure: self._on_failure,
            m.AccessNumGet: self._on_access_num,
            m.AccessNumCancel: self._on_access_num,
        }
        self._event_handlers: dict[type[SwitchEvent], Callable[[Call, Any, float], None]] = {
            EventRinging: self._on_ringing,
            EventEstablished: self._on_established,
            EventReleased: self._on_released,
            RequestRouteCall: self._on_route_call,
            RequestApplyTreatment: self._on_apply_treatment,
        }

    # ------------------------------------------------------------------ queries

    def is_active(self, call_id: str) -> bool:
        """Is ``call_id`` a call of this server?"""
        return call_id in self.calls

    def port_busy(self, ivr: str, port: str) -> bool:
        """Does IVR port ``port`` of ``ivr`` have a call?"""
        return (ivr, port) in self._by_port

    def awaits(self, reference_id: int | None) -> bool:
        """Is a request with this ReferenceID waiting for its events here?"""
        return reference_id is not None and reference_id in self._pending

    def pending_count(self) -> int:
        """Switch requests awaiting their events (0 between inputs; for leak tests)."""
        return len(self._pending)

    def timer_count(self) -> int:
        """Running timers (for leak tests)."""
        return (
            len(self._router_timer)
            + len(self._call_timer)
            + len(self._ringing_timer)
            + len(self._orphan_timer)
        )

    # ------------------------------------------------------------------ ownership

    def owner_gone(self, owner: Owner, successor: Owner | None, now: float) -> None:
        """The session ``owner`` went away: its calls pass to ``successor`` (another session of
        the same IVR) or, without one, wait ``orphan-call-timeout`` for the IVR to come back."""
        for call in list(self.calls.values()):
            if call.owner is owner:
                call.owner = successor
                if successor is None:
                    self._orphan_timer.set(call.call_id, now + self.settings.orphan_call_timeout)

    def adopt(self, ivr: str, owner: Owner) -> int:
        """A session of ``ivr`` logged in: it takes over the IVR's calls that have no owner."""
        adopted = 0
        for call in self.calls.values():
            if call.ivr == ivr and call.owner is None:
                call.owner = owner
                self._orphan_timer.cancel(call.call_id)
                adopted += 1
        return adopted

    # ------------------------------------------------------------------ IVR messages

    def new_call(
        self, owner: Owner, call_id: str, msg: m.NewCall, target: PortTarget, now: float
    ) -> None:
        """Start a call admitted by the service (login, mode, flow control already checked)."""
        if call_id in self.calls:
            raise invalid_request(call_id, f"NewCall: CallId {call_id!r} is already active")
        if (target.ivr, target.port) in self._by_port:
            raise Refusal(
                call_id,
                m.EndCall(EndCause="Resources"),
                f"NewCall: port {target.port} of {target.ivr} already has a call",
            )
        data = _kv(msg.UDataEx, msg.UserData)
        if data:
            problem = _data_problem(data, target.encoding)
            if problem is not None:
                raise Refusal(
                    call_id, m.EndCall(EndCause="FeatureNotSupported"), f"NewCall: {problem}"
                )
        call = Call(call_id, owner, target, msg.CalledNum, msg.ANI, msg.DNIS, msg.Version == "1.0")
        self.metrics.calls_started += 1
        self._add(call, now)
        if target.mode == "Behind":
            # the premise switch reports the call at the port (premise links: a later release)
            self._ringing_timer.set(call_id, now + self.settings.wait_for_ringing)
            return
        call.switch.request(
            TInboundCall(
                reference_id=self._pend(call, "inbound"),
                dn=call.dn,
                ani=msg.ANI,
                dnis=msg.DNIS,
                user_data=data,
                extensions=_kv(msg.ExtnsEx, msg.Extensions),
            ),
        )

    def dial_out_init(
        self,
        owner: Owner,
        call_id: str,
        msg: m.DialOutInit,
        target: PortTarget,
        dial_out: Any,
        dest: str,
        user_data: KvList,
        now: float,
    ) -> None:
        """Start the outbound call a ``DialOutInit`` reports (admitted by the service): the
        port's DN dials ``dest``; ``CallStatus Dialing`` follows (PROTOCOL.md §3.10.5)."""
        if call_id in self.calls:
            raise invalid_request(call_id, f"DialOutInit: CallId {call_id!r} is already active")
        if (target.ivr, target.port) in self._by_port:
            raise Refusal(
                call_id,
                m.EndCall(EndCause="Resources"),
                f"DialOutInit: port {target.port} of {target.ivr} already has a call",
            )
        problem = _data_problem(user_data, target.encoding) if user_data else None
        if problem is not None:
            raise Refusal(
                call_id, m.EndCall(EndCause="FeatureNotSupported"), f"DialOutInit: {problem}"
            )
        call = Call(call_id, owner, target, msg.CalledNum)
        self.metrics.calls_started += 1
        call.state = CallState.DIALING
        call.dial_out = dial_out
        self._add(call, now)
        self._requester = owner
        call.switch.request(
            TOutboundCall(
                reference_id=self._pend(call, "outbound"),
                dn=call.dn,
                dest=dest,
                user_data=user_data,
                extensions=msg.ExtnsEx or (),
            )
        )

    def discard(self, call_id: str) -> bool:
        """Remove a call whose start could not be completed (handling its ``NewCall`` or
        ``DialOutInit`` failed, or its first documents could not be sent): released on the
        switch and forgotten, its port free at once; nothing is sent to the IVR (the service
        answers the request). ``False`` if there is no such call."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        self._release(call)
        self._forget(call)
        return True

    def ivr_call_status(
        self, owner: Owner, ivr: str | None, call_id: str | None, msg: m.CallStatus, now: float
    ) -> None:
        """``CallStatus`` from the IVR: only ``Established`` of an outbound call means something
        (the dialled party answered, PROTOCOL.md §3.3.7); anything else is logged and ignored."""
        call = self.calls.get(call_id) if call_id is not None else None
        if call is None or call.ivr != ivr:
            raise no_such_call(call_id, msg)
        if msg.Event != "Established":
            log.info(
                "call %s: CallStatus %s from the IVR ignored",
                call.call_id,
                msg.Event,
                extra=call.log_fields(),
            )
            return
        self._requester = owner
        self._input(call, CallInput.ANSWERED, now, msg)

    def handle(
        self, owner: Owner, ivr: str | None, call_id: str | None, msg: Message, now: float
    ) -> None:
        """An IVR message about an existing call, from a session logged in as ``ivr``."""
        call = self.calls.get(call_id) if call_id is not None else None
        if call is None or call.ivr != ivr:
            raise no_such_call(call_id, msg)
        if call.owner is None:  # an orphan: the session asking about it takes it over
            call.owner = owner
            self._orphan_timer.cancel(call.call_id)
        self._requester = owner
        handler = self._handlers.get(type(msg))
        if handler is not None:
            handler(call, msg, now)
        elif msg.tag in _TRANSFER_TAGS or msg.tag == "MakeCall":
            raise Refusal(
                call.call_id,
                m.CallError(FailedReq=msg.tag, TlibErrCode=UNSUP_OPER),  # type: ignore[arg-type]
                f"{msg.tag} is not supported In-Front",
            )
        else:
            raise invalid_request(call.call_id, f"{msg.tag} is not a request about a call")

    def _input(self, call: Call, event: CallInput, now: float, arg: Any = None) -> None:
        """Run the table for one call-control input."""
        step = TRANSITIONS.get((call.state, event))
        if step is None:
            refusal = REFUSALS.get((call.state, event), Refuse.BLOCKED_REQ)
            reason = f"{event.value} not allowed in state {call.state.value}"
            if refusal is Refuse.IGNORE:
                log.debug("call %s: %s ignored", call.call_id, reason, extra=call.log_fields())
                return
            if refusal is Refuse.INVALID_REQ:
                raise invalid_request(call.call_id, reason)
            raise blocked(call.call_id, reason)
        before = call.state
        action = self._actions.get(step.action)
        if action is None:
            action = self._actions[step.action] = getattr(self, "_do_" + step.action)
        action(call, now, arg)
        if step.next_state is None:
            self._forget(call)
        else:
            call.state = step.next_state
        if log.isEnabledFor(logging.DEBUG):  # the hot path: no log fields built for nothing
            log.debug(
                "call %s: %s --%s--> %s",
                call.call_id,
                before.value,
                event.value,
                call.state.value,
                extra=call.log_fields(),
            )

    # -- call control

    def _on_end_call(self, call: Call, msg: m.EndCall, now: float) -> None:
        self._input(call, CallInput.END_CALL, now, msg)

    def _on_route_request(self, call: Call, msg: m.RouteRequest, now: float) -> None:
        allowed = TRANSITIONS.get((call.state, CallInput.ROUTE_REQUEST))
        if allowed is not None:
            route_dn = msg.RouteDN
            if not route_dn:
                raise invalid_request(call.call_id, "RouteRequest without RouteDN (In-Front)")
            snapshot = call.switch.dn(route_dn)
            if snapshot is None or snapshot.type is not DnType.ROUTING_POINT:
                raise invalid_request(
                    call.call_id, f"RouteDN {route_dn} is not a routing point of {call.switch.name}"
                )
            data = _kv(msg.UDataEx, msg.UserData)
            problem = self._too_big(call, data) if data else None
            if problem is not None:
                raise invalid_request(call.call_id, f"RouteRequest: {problem}")
        self._input(call, CallInput.ROUTE_REQUEST, now, msg)

    def _on_treat_status(self, call: Call, msg: m.TreatStatus, now: float) -> None:
        self._input(call, _TREAT_INPUT[msg.Status], now, msg)

    def _on_cancel_completed(self, call: Call, msg: m.CancelCompleted, now: float) -> None:
        self._input(call, CallInput.CANCEL_COMPLETED, now, msg)

    def _on_connected(self, call: Call, msg: m.Connected, now: float) -> None:
        self._input(call, CallInput.CONNECTED, now, msg)

    def _on_failure(self, call: Call, msg: m.Failure, now: float) -> None:
        self._input(call, CallInput.FAILURE, now, msg)

    # -- side requests (PROTOCOL.md §6.4)

    def _on_call_info(self, call: Call, msg: m.CallInfoReq, now: float) -> None:
        uuid_value = None
        if msg.ReportUUID == "true" and call.conn_id is not None:
            if call.uuid is None:
                call.uuid = uuid.uuid4().hex.upper()
            uuid_value = call.uuid
        self._send(
            self._requester,
            call.call_id,
            m.CallInfoResp(
                ANI=call.ani or None,
                DNIS=call.dnis or None,
                CalledNum=call.called_num or None,
                ConnId=call.conn_id,
                TSCallId=str(call.switch_call_id) if call.switch_call_id is not None else None,
                PortDN=call.dn,
                LastEvent=call.last_event,
                UUID=uuid_value,
            ),
        )

    def _user_data(self, call: Call) -> KvList:
        if call.conn_id is None or call.state is CallState.DETACHED:
            return call.last_user_data
        data = call.switch.user_data(call.conn_id)
        return data if data is not None else call.last_user_data

    def _too_big(self, call: Call, new: KvList, replace: bool = True) -> str | None:
        """Why the call's data with ``new`` added (``replace``: TUpdateUserData semantics) would be
        too large (:func:`_data_problem`), or ``None``. Written size is never below the 16 KB
        count, and merging never makes data longer than both lists together: the sum of the two
        written sizes, within 16 KB, settles the usual case without a merge."""
        current = self._user_data(call)
        encoding = call.encoding
        if kv_wire_size(current, encoding) + kv_wire_size(new, encoding) <= USER_DATA_LIMIT:
            return None
        return _data_problem(kv_update(current, new) if replace else current + new, encoding)

    def _udata_resp(
        self,
        call: Call,
        request_id: str,
        result: Any,
        data: KvList | None = None,
        to: Owner | None = None,
    ) -> None:
        self._send(
            to if to is not None else self._requester,
            call.call_id,
            m.UDataResp(Result=result, RequestId=request_id, UDataEx=data or None),
        )

    def _on_udata_get(self, call: Call, msg: m.UDataGet, now: float) -> None:
        keys = {key for key in msg.Keys.split(":") if key}
        if not keys:
            self._udata_resp(call, msg.RequestId, "MiscError")
            return
        found = tuple(item for item in self._user_data(call) if item.Name in keys)
        self._udata_resp(call, msg.RequestId, "Success" if found else "NoMatch", found)

    def _on_udata_get_all(self, call: Call, msg: m.UDataGetAll, now: float) -> None:
        data = self._user_data(call)
        self._udata_resp(call, msg.RequestId, "Success" if data else "NoMatch", data)

    def _writable(self, call: Call) -> str | None:
        """The ConnID user data can be written to, or ``None`` (no call on the switch)."""
        return call.conn_id if call.state is not CallState.DETACHED else None

    def _on_udata_set(self, call: Call, msg: m.UDataSet, now: float) -> None:
        conn_id = self._writable(call)
        if conn_id is None:
            self._udata_resp(call, msg.RequestId, "MiscError")
            return
        data = msg.UDataEx or ()
        problem = self._too_big(call, data, replace=msg.Action != "Add")
        if problem is not None:  # refused before the switch stores anything
            log.info(
                "call %s: UDataSet refused: %s", call.call_id, problem, extra=call.log_fields()
            )
            self._udata_resp(call, msg.RequestId, "MiscError")
            return
        ref = self._pend(call, "udata", msg.RequestId)
        cls = TAttachUserData if msg.Action == "Add" else TUpdateUserData
        call.switch.request(cls(reference_id=ref, conn_id=conn_id, dn=call.dn, user_data=data))

    def _on_udata_del(self, call: Call, msg: m.UDataDel, now: float) -> None:
        conn_id = self._writable(call)
        if conn_id is None:
            self._udata_resp(call, msg.RequestId, "MiscError")
            return
        req: SwitchRequest
        if msg.Action == "DeleteAll":
            req = TDeleteAllUserData(
                reference_id=self._pend(call, "udata", msg.RequestId), conn_id=conn_id, dn=call.dn
            )
        elif not msg.Key:
            self._udata_resp(call, msg.RequestId, "MiscError")
            return
        elif not any(item.Name == msg.Key for item in self._user_data(call)):
            self._udata_resp(call, msg.RequestId, "NoMatch")
            return
        else:
            req = TDeleteUserData(
                reference_id=self._pend(call, "udata", msg.RequestId),
                conn_id=conn_id,
                dn=call.dn,
                key=msg.Key,
            )
        call.switch.request(req)

    def _on_access_num(self, call: Call, msg: Message, now: float) -> None:
        # ISCC with remote sites needs a multi-site configuration, which this server does not
        # have: every request for an access number fails (PROTOCOL.md §3.5, docs/decisions.md).
        action: Literal["Get", "Cancel"] = "Get" if msg.tag == "AccessNumGet" else "Cancel"
        self._send(self._requester, call.call_id, m.AccessNumResp(Action=action, Result="Failure"))

    # ------------------------------------------------------------------ actions (table rows)

    def _do_nothing(self, call: Call, now: float, arg: Any) -> None:
        return

    def _report(self, call: Call, kind: str, cause: str | None = None) -> None:
        if call.dial_out is not None and self._dial_out_report is not None:
            self._dial_out_report(call.dial_out, kind, call.call_id, cause)

    def _do_dialing(self, call: Call, now: float, event: Any) -> None:
        self._send(call.owner, call.call_id, m.CallStatus(Event="Dialing"))
        self._report(call, "dialing")

    def _do_answered(self, call: Call, now: float, msg: Any) -> None:
        if call.conn_id is not None:
            call.switch.request(
                TOutboundAnswered(reference_id=self._ref(), conn_id=call.conn_id, dn=call.dn)
            )

    def _do_dial_failed(self, call: Call, now: float, msg: m.Failure) -> None:
        if call.conn_id is not None:
            call.switch.request(
                TAbandonCall(reference_id=self._ref(), conn_id=call.conn_id, dn=call.dn)
            )
        self._report(call, "failed", msg.FailureCause)
        call.dial_out = None  # reported: _forget must not report again

    def _do_ringing(self, call: Call, now: float, event: EventRinging) -> None:
        self._ringing_timer.cancel(call.call_id)
        self._send(call.owner, call.call_id, m.CallStatus(Event="Ringing"))

    def _do_established(self, call: Call, now: float, event: EventEstablished) -> None:
        self._send(call.owner, call.call_id, m.CallStatus(Event="Established"))
        call.answered = True
        self._report(call, "established")

    def _do_route_request(self, call: Call, now: float, msg: m.RouteRequest) -> None:
        conn_id = call.conn_id
        assert conn_id is not None and msg.RouteDN is not None  # checked in _on_route_request
        data = _kv(msg.UDataEx, msg.UserData)
        if data:
            call.switch.request(
                TUpdateUserData(
                    reference_id=self._ref(), conn_id=conn_id, dn=call.dn, user_data=data
                )
            )
        call.route_dn = msg.RouteDN
        call.route_started = now
        call.treatment = None
        call.held_route = None
        self._router_timer.set(call.call_id, now + self.settings.router_timeout)
        call.switch.request(
            TRouteRequest(
                reference_id=self._pend(call, "route"),
                conn_id=conn_id,
                dn=call.dn,
                route_dn=msg.RouteDN,
                collected_digits=msg.CED,
                extensions=_kv(msg.ExtnsEx, msg.Extensions),
            ),
        )

    def _route_response(self, call: Call, event: RequestRouteCall) -> m.RouteResponse:
        ext = event.route_extensions
        if call.legacy:
            return m.RouteResponse(
                RouteType=event.route_type, Dest=event.dest, Extensions=_nvpairs(ext)
            )
        return m.RouteResponse(RouteType=event.route_type, Dest=event.dest, ExtnsEx=ext or None)

    def _routed(self, call: Call, now: float, response: m.RouteResponse) -> None:
        """Send a RouteResponse and count it (type, RouteRequest-to-RouteResponse latency)."""
        metrics = self.metrics
        metrics.routing[response.RouteType] += 1
        metrics.routing_latency.observe(now - call.route_started)
        self._send(call.owner, call.call_id, response)

    def _do_route_response(self, call: Call, now: float, event: RequestRouteCall) -> None:
        self._router_timer.cancel(call.call_id)
        self._routed(call, now, self._route_response(call, event))

    def _do_treat_call(self, call: Call, now: float, event: RequestApplyTreatment) -> None:
        self._router_timer.cancel(call.call_id)
        call.treatment = event.treatment_type
        self._send(
            call.owner,
            call.call_id,
            m.TreatCall(
                Type=event.treatment_type,  # type: ignore[arg-type]
                Parameters=event.parameters or None,
                ExtnsEx=event.treatment_extensions or None,
            ),
        )

    def _do_route_default(self, call: Call, now: float, arg: Any) -> None:
        self._abort_route(call)
        self.metrics.router_timeouts += 1
        self._routed(call, now, m.RouteResponse(RouteType="Default"))

    def _report_treatment(self, call: Call, msg: m.TreatStatus) -> None:
        if call.conn_id is None or call.route_dn is None:
            return
        call.switch.request(
            TTreatmentStatus(
                reference_id=self._ref(),
                conn_id=call.conn_id,
                dn=call.route_dn,
                status=msg.Status,
                treatment_type=call.treatment or "",
                collected_digits=msg.CED,
                extensions=msg.ExtnsEx or (),
            )
        )

    def _attach_replace(self, call: Call, data: KvList) -> None:
        if not data or call.conn_id is None:
            return
        problem = self._too_big(call, data)
        if problem is not None:
            log.warning(
                "call %s: data not attached: %s", call.call_id, problem, extra=call.log_fields()
            )
            return
        call.switch.request(
            TUpdateUserData(
                reference_id=self._ref(), conn_id=call.conn_id, dn=call.dn, user_data=data
            )
        )

    def _do_treatment_started(self, call: Call, now: float, msg: m.TreatStatus) -> None:
        self._report_treatment(call, msg)

    def _do_treatment_not_started(self, call: Call, now: float, msg: m.TreatStatus) -> None:
        self._router_timer.set(call.call_id, now + self.settings.router_timeout)
        self._report_treatment(call, msg)
        call.treatment = None

    def _do_treatment_completed(self, call: Call, now: float, msg: m.TreatStatus) -> None:
        self._router_timer.set(call.call_id, now + self.settings.router_timeout)
        self._attach_replace(call, msg.UDataEx or ())
        self._report_treatment(call, msg)
        call.treatment = None

    def _do_cancel(self, call: Call, now: float, event: RequestRouteCall) -> None:
        call.held_route = self._route_response(call, event)
        self._send(call.owner, call.call_id, m.Cancel())

    def _do_held_route_response(self, call: Call, now: float, msg: Message) -> None:
        if isinstance(msg, m.TreatStatus):
            self._attach_replace(call, msg.UDataEx or ())
        held, call.held_route, call.treatment = call.held_route, None, None
        if held is not None:
            self._routed(call, now, held)

    def _do_route_abort(self, call: Call, now: float, msg: Message) -> None:
        self._abort_route(call)

    def _do_route_failed(self, call: Call, now: float, msg: m.Failure) -> None:
        if call.conn_id is None or call.route_dn is None:
            return
        self._router_timer.set(call.call_id, now + self.settings.router_timeout)
        call.switch.request(
            TRouteFailed(
                reference_id=self._ref(),
                conn_id=call.conn_id,
                dn=call.route_dn,
                error_code=int(_FAILURE_CODES[msg.FailureCause]),
            )
        )

    def _do_end_call(self, call: Call, now: float, msg: m.EndCall) -> None:
        data = _kv(msg.UDataEx, msg.UserData)
        if data and call.state is not CallState.DETACHED:
            self._attach_replace(call, data)
        active = _active_release(_kv(msg.ExtnsEx, msg.Extensions), self.settings.active_release)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "call %s: EndCall %s, active release %s",
                call.call_id,
                msg.EndCause,
                active,
                extra=call.log_fields(),
            )
        # In-Front the call exists on the virtual switch only at the port: whether the IVR asks
        # for an active release or has moved the caller itself, the port's call is cleared.
        self._release(call)

    def _do_released(self, call: Call, now: float, event: EventReleased) -> None:
        self._router_timer.cancel(call.call_id)
        call.held_route = None
        call.last_user_data = event.user_data
        call.last_event = event.name
        if call.conn_id is not None:
            self._by_conn.pop(call.conn_id, None)  # the switch's call is gone; the ConnID stays
        self._send(call.owner, call.call_id, m.CallStatus(Event="Released"))

    def _do_end_timeout(self, call: Call, now: float, arg: Any) -> None:
        self._send(call.owner, call.call_id, m.EndCall(EndCause="Timeout"))
        self._release(call)

    def _do_abandon(self, call: Call, now: float, arg: Any) -> None:
        log.info(
            "call %s of %s: no session came back, released as abandoned",
            call.call_id,
            call.ivr,
            extra=call.log_fields(),
        )
        self._release(call)

    # ------------------------------------------------------------------ switch side

    def _pend(self, call: Call, kind: _Kind, request_id: str = "") -> int:
        """A ReferenceID for a request whose events must come back to ``call``."""
        ref = next(self._refs)
        self._pending[ref] = _Pending(call, kind, request_id, self._requester)
        return ref

    def _ref(self) -> int:
        """A ReferenceID for a request whose answer nobody waits for."""
        return next(self._refs)

    def _abort_route(self, call: Call) -> None:
        self._router_timer.cancel(call.call_id)
        call.held_route = None
        call.treatment = None
        if call.conn_id is not None and call.route_dn is not None:
            waiting = call.switch.call(call.conn_id)
            if waiting is not None and waiting.routing_point == call.route_dn:
                call.switch.request(
                    TRouteAbort(reference_id=self._ref(), conn_id=call.conn_id, dn=call.route_dn)
                )

    def _release(self, call: Call) -> None:
        conn_id = call.conn_id
        if conn_id is not None and call.state is not CallState.DETACHED:
            call.switch.request(TReleaseCall(reference_id=self._ref(), conn_id=conn_id, dn=call.dn))

    def _add(self, call: Call, now: float) -> None:
        """Index a new call and start its call timeout."""
        calls = self.calls
        calls[call.call_id] = call
        if len(calls) > self._peak:
            self._peak = len(calls)
        self._by_port[(call.ivr, call.port)] = call
        self._call_timer.set(call.call_id, now + self.settings.call_timeout)

    def _forget(self, call: Call) -> None:
        call_id = call.call_id
        del self.calls[call_id]
        if self._by_port.get((call.ivr, call.port)) is call:
            del self._by_port[(call.ivr, call.port)]
        conn_id = call.conn_id
        if conn_id is not None:
            self._by_conn.pop(conn_id, None)
            if call.state is not CallState.DETACHED and call.switch.user_data(conn_id) is not None:
                # the release was refused (e.g. the T-Server link is down): the port's call must
                # not outlive the IVR's call, so the switch clears it as if the caller hung up
                call.switch.hang_up(conn_id)
        self._router_timer.cancel(call_id)
        self._call_timer.cancel(call_id)
        self._ringing_timer.cancel(call_id)
        self._orphan_timer.cancel(call_id)
        for ref in [ref for ref, p in self._pending.items() if p.call is call]:
            del self._pending[ref]
        if call.dial_out is not None:
            self._report(call, "ended" if call.answered else "abandoned")
            call.dial_out = None
        call.state = CallState.DETACHED
        self.completed += 1
        left = len(self.calls)
        if left * 8 < self._peak and (self._peak >= _COMPACT_PEAK or self._winding_down):
            # after a peak of 50,000: at 6,249 calls, 780, 97, 12, 1 and none. The last steps
            # rebuild nothing, but the heap is only given back once the calls' objects are gone
            self._peak = left
            self._winding_down = left > 0
            self.compact_due = True

    def on_event(self, event: SwitchEvent, now: float) -> None:
        """A switch event: the answer to one of our requests, or news about one of our calls."""
        ref = event.reference_id
        pending = self._pending.pop(ref, None) if ref is not None else None
        if pending is not None:
            self._answer(pending, event, now)
            if pending.kind in ("inbound", "outbound"):
                return  # _answer fed the first event to the machine
        conn_id = getattr(event, "conn_id", None)
        if conn_id is None:
            return
        call = self._by_conn.get(conn_id)
        if call is None:
            return
        handler = self._event_handlers.get(type(event))
        if handler is not None:
            handler(call, event, now)

    def _answer(self, pending: _Pending, event: SwitchEvent, now: float) -> None:
        call = pending.call
        if call.call_id not in self.calls:
            return
        if pending.kind == "inbound":
            if isinstance(event, EventError):
                log.warning(
                    "call %s: the switch refused the call: %s", call.call_id, event.error_message
                )
                self._send(call.owner, call.call_id, m.EndCall(EndCause="FeatureNotSupported"))
                self._forget(call)
                return
            if isinstance(event, EventRinging):
                call.conn_id = event.conn_id
                call.switch_call_id = event.call_id
                self._by_conn[event.conn_id] = call
                # the Established event that follows carries the same ReferenceID
                self._pending[event.reference_id or 0] = pending
                self._on_ringing(call, event, now)
            elif isinstance(event, EventEstablished):
                self._on_established(call, event, now)
            return
        if pending.kind == "outbound":
            if isinstance(event, EventError):
                log.warning(
                    "call %s: the switch refused the dial-out: %s",
                    call.call_id,
                    event.error_message,
                )
                self._send(call.owner, call.call_id, m.EndCall(EndCause="FeatureNotSupported"))
                self._forget(call)
            elif isinstance(event, EventDialing):
                call.conn_id = event.conn_id
                call.switch_call_id = event.call_id
                call.last_event = event.name
                self._by_conn[event.conn_id] = call
                self._input(call, CallInput.DIALED, now, event)
            return
        if pending.kind == "udata":
            if isinstance(event, EventAttachedDataChanged):
                self._udata_resp(call, pending.request_id, "Success", to=pending.owner)
            elif isinstance(event, EventError):
                log.info("call %s: user data refused: %s", call.call_id, event.error_message)
                self._udata_resp(call, pending.request_id, "MiscError", to=pending.owner)
            return
        # "route": EventRouteRequest confirms; EventError means the routing point refused it
        if isinstance(event, EventError) and call.state is CallState.ROUTING:
            self._router_timer.cancel(call.call_id)
            call.state = CallState.STARTED
            self._send(
                pending.owner,
                call.call_id,
                m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ"),
            )

    def _track(self, call: Call, event: EventRinging | EventEstablished | EventReleased) -> None:
        call.last_event = event.name
        if event.ani:
            call.ani = event.ani
        if event.dnis:
            call.dnis = event.dnis

    def _on_ringing(self, call: Call, event: EventRinging, now: float) -> None:
        if event.dn != call.dn:
            return
        self._track(call, event)
        self._input(call, CallInput.RINGING, now, event)

    def _on_established(self, call: Call, event: EventEstablished, now: float) -> None:
        if event.dn != call.dn:
            return
        self._track(call, event)
        self._input(call, CallInput.ESTABLISHED, now, event)

    def _on_released(self, call: Call, event: EventReleased, now: float) -> None:
        if event.dn != call.dn:
            return
        self._track(call, event)
        self._input(call, CallInput.RELEASED, now, event)

    def _on_route_call(self, call: Call, event: RequestRouteCall, now: float) -> None:
        self._input(call, CallInput.ROUTE_CALL, now, event)

    def _on_apply_treatment(self, call: Call, event: RequestApplyTreatment, now: float) -> None:
        self._input(call, CallInput.APPLY_TREATMENT, now, event)

    # ------------------------------------------------------------------ timers

    def compact(self) -> int:
        """Rebuild the per-call tables that are mostly empty; how many were rebuilt."""
        self.compact_due = False
        tables: list[dict[Any, Any]] = [self.calls, self._by_port, self._by_conn, self._pending]
        rebuilt = sum(shrink(table) for table in tables)
        for queue in (
            self._router_timer,
            self._call_timer,
            self._ringing_timer,
            self._orphan_timer,
        ):
            rebuilt += queue.compact()
        return rebuilt

    def next_deadline(self) -> float | None:
        """The earliest timer deadline, or ``None``."""
        return earliest(
            self._router_timer.first(),
            self._call_timer.first(),
            self._ringing_timer.first(),
            self._orphan_timer.first(),
        )

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        for queue, event in (
            (self._router_timer, CallInput.ROUTER_TIMEOUT),
            (self._ringing_timer, CallInput.WAIT_RINGING_TIMEOUT),
            (self._orphan_timer, CallInput.ORPHAN_TIMEOUT),
            (self._call_timer, CallInput.CALL_TIMEOUT),
        ):
            for call_id in list(queue.pop_due(now)):
                call = self.calls.get(call_id)
                if call is not None:
                    log.info(
                        "call %s: %s expired in state %s",
                        call_id,
                        event.value,
                        call.state.value,
                        extra=call.log_fields(),
                    )
                    try:
                        self._input(call, event, now)
                    except Refusal:  # pragma: no cover - timers are never refused
                        log.exception(
                            "call %s: timer %s refused",
                            call_id,
                            event.value,
                            extra=call.log_fields(),
                        )

    def reconfigure(self, settings: CallSettings) -> None:
        """New timer durations apply to timers started from now on."""
        self.settings = settings

    # ------------------------------------------------------------------ operator actions

    def call_on_port(self, ivr: str, port: str) -> Call | None:
        """The call of IVR port ``port`` of ``ivr``, if it has one."""
        return self._by_port.get((ivr, port))

    def end_by_operator(self, call_id: str, now: float) -> bool:
        """End ``call_id`` on the server's side exactly as its Call Timeout does (``EndCall
        EndCause='Timeout'`` to its IVR, the port's call released, the call forgotten: the port
        is free at once), for an operator freeing a stuck port; ``False`` if there is no such
        call."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        self._input(call, CallInput.CALL_TIMEOUT, now)
        return True
