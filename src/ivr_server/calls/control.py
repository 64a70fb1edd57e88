"""Call control from the IVR: transfers, conferences, ``RetrieveCall`` and ``MakeCall``
(MODES-AND-HA §1.2 B4-B11, §1.5, G2-G11; docs/calls.md "Call control").

Theory of operation. Each IVR request is one T-Library request to the call's switch (the premise
switch Behind, the virtual switch In-Front: both keep the same contract, docs/calls.md), carrying
a ReferenceID pending as ``control`` with the request's name. The events answering it come back
through :meth:`CallControl.answer` (the same ReferenceID; several per request: the pending entry
is put back until the request's last one), the later ones (the far party answering, busy, hanging
up, leaving a conference) through :meth:`CallControl.on_event` by ConnID: the port's call, or
the consultation call (``CallContext.consults``). Each event becomes a table input
(:mod:`ivr_server.calls.machine`), whose actions here send the ``CallStatus`` values.

- A request the call's state does not allow: ``CallError FailedReq=<name> BLOCKED_REQ``
  (before the call is established at the port ``FailedReq='Unknown'``, as the real server
  answered); the switch's link down: ``CallError <name> LINK_DOWN`` (G13); a ``Location``:
  ``UNSUP_OPER`` (no remote-site model, G11).
- A refusal (EventError): ``CallError FailedReq=<name> TlibErrCode=<its code>`` (TERR_NO_SWITCH
  is ``LINK_DOWN``, TERR_UNSUP_OPER ``UNSUP_OPER``: the symbols the server answered before); the
  switch's own message is kept on the call and logged (G12). If the original call is still
  held, the server reconnects it itself (TReconnectCall, then ``Retrieved``: G2); so it does when
  the consulted party hangs up (G5).
- A refusal that crosses the call's end or a hang-up still answers the request: the IVR's pending
  request never hangs.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from ivr_server.calls.admission import Admission
from ivr_server.calls.call import Call, Owner, PortTarget
from ivr_server.calls.context import Action, CallContext, Pending
from ivr_server.calls.machine import TRANSITIONS, CallInput, CallState
from ivr_server.calls.replies import (
    LINK_DOWN,
    UNSUP_OPER,
    Refusal,
    blocked,
    invalid_request,
    unsupported,
)
from ivr_server.calls.userdata import kvlist
from ivr_server.switch import (
    EventDestinationBusy,
    EventDialing,
    EventError,
    EventEstablished,
    EventHeld,
    EventPartyAdded,
    EventPartyDeleted,
    EventReleased,
    EventRetrieved,
    SwitchEvent,
    TCompleteConference,
    TCompleteTransfer,
    TInitiateConference,
    TInitiateTransfer,
    TMakeCall,
    TReconnectCall,
    TSingleStepConference,
    TSingleStepTransfer,
)
from ivr_server.switch.errors import TErrorCode
from ivr_server.wire import Message
from ivr_server.wire import messages as m

__all__ = ["REQUESTS", "CallControl", "tlib_error_code"]

log = logging.getLogger("ivr_server.calls")

_I = CallInput

REQUESTS: Final[dict[type[Message], CallInput]] = {
    m.OneStepXfer: _I.ONE_STEP_XFER,
    m.InitXfer: _I.INIT_XFER,
    m.InitConf: _I.INIT_CONF,
    m.CompleteXfer: _I.COMPLETE_XFER,
    m.CompleteConf: _I.COMPLETE_CONF,
    m.OneStepConf: _I.ONE_STEP_CONF,
    m.RetrieveCall: _I.RETRIEVE,
}
"""The IVR's call-control requests about an existing call, and their table inputs."""

RECONNECT: Final = "reconnect"
"""The pending name of the server's own TReconnectCall (G2, G5): no IVR request waits for it."""

_SYMBOLS: Final[dict[int, str]] = {
    TErrorCode.TERR_NO_SWITCH: LINK_DOWN,
    TErrorCode.TERR_UNSUP_OPER: UNSUP_OPER,
}
"""T-Library codes answered by the symbols the server used before the switches carried call
control out (G13; the mode's ``UNSUP_OPER``)."""

NO_ANSWER: Final = str(int(TErrorCode.TERR_DN_NO_ANSWER))
"""``TlibErrCode`` of a MakeCall nobody answered within ``make-call-timeout`` (G10)."""


def tlib_error_code(code: int) -> str:
    """The ``TlibErrCode`` of a switch's refusal: its T-Library decimal, or our symbol."""
    return _SYMBOLS.get(code) or str(code)


def _failed(tag: str, code: str) -> m.CallError:
    return m.CallError(FailedReq=tag, TlibErrCode=code)  # type: ignore[arg-type]


class CallControl:
    """Transfers, conferences, RetrieveCall and MakeCall of the calls."""

    def __init__(self, ctx: CallContext, admission: Admission) -> None:
        self.ctx = ctx
        self.admission = admission
        """Checks a MakeCall's CallId, port and data as a NewCall's."""

    def actions(self) -> dict[str, Action]:
        """This family's rows of the table."""
        return {
            "one_step_xfer": self.do_one_step_xfer,
            "one_step_conf": self.do_one_step_conf,
            "init_consult": self.do_init_consult,
            "complete": self.do_complete,
            "retrieve": self.do_retrieve,
            "reconnect": self.do_reconnect,
            "held": self.do_held,
            "retrieved": self.do_retrieved,
            "established_far": self.do_established_far,
            "busy": self.do_busy,
            "xfer_complete": self.do_xfer_complete,
            "party_added": self.do_party_added,
            "party_deleted": self.do_party_deleted,
            "refused": self.do_refused,
            "refused_reconnect": self.do_refused_reconnect,
            "made": self.do_made,
            "make_call_refused": self.do_make_call_refused,
            "make_call_no_answer": self.do_make_call_no_answer,
        }

    # ------------------------------------------------------------------ IVR requests

    def on_request(self, call: Call, msg: Any, now: float) -> None:
        """A transfer, conference or RetrieveCall on ``call``: checked, then the table's."""
        tag: str = msg.tag
        event = REQUESTS[type(msg)]
        if call.network:  # not in Network mode, where only Unknown may be the FailedReq (G20)
            raise unsupported(call.call_id, f"{tag}: not in Network mode")
        state = call.state
        if (state, event) not in TRANSITIONS:
            if state is CallState.AWAIT_RINGING or state is CallState.ALERTING:
                raise blocked(call.call_id, f"{tag} before the call is established at the port")
            raise blocked(call.call_id, f"{tag} not allowed in state {state.value}", tag)
        if not call.switch.view.link_up:
            raise Refusal(
                call.call_id,
                _failed(tag, LINK_DOWN),
                f"{tag}: the link to {call.switch.name} is down",
            )
        if getattr(msg, "Location", None):
            raise Refusal(
                call.call_id, _failed(tag, UNSUP_OPER), f"{tag}: no remote site (Location)"
            )
        dest = getattr(msg, "DestDN", None)
        if dest is not None and not dest.strip():
            raise invalid_request(call.call_id, f"{tag} with an empty DestDN")
        self.ctx.input(call, event, now, msg)

    def make_call(
        self, owner: Owner, call_id: str, msg: m.MakeCall, target: PortTarget, now: float
    ) -> None:
        """Start the call a ``MakeCall`` asks for (admitted by the service): a new call at the
        port of ``OrigNum`` dials ``DestNum``; ``Dialing``, then ``Established`` or ``Busy``."""
        ctx = self.ctx
        data = kvlist(msg.UDataEx, None)
        self.admission.check_start(owner, call_id, data, target, "MakeCall")
        if not msg.DestNum.strip():
            raise invalid_request(call_id, "MakeCall with an empty DestNum")
        call = Call(call_id, owner, target, msg.OrigNum)
        call.state = CallState.MAKING
        call.control = "MakeCall"
        call.other_dn = msg.DestNum
        ctx.metrics.calls_started += 1
        ctx.add(call, now)
        ctx.requester = owner
        ctx.timers.make_call.set(call.key, now + ctx.settings.make_call_timeout)
        call.switch.request(
            TMakeCall(
                reference_id=ctx.pend(call, "control", "MakeCall"),
                dn=call.dn,
                dest=msg.DestNum,
                user_data=data,
                extensions=msg.ExtnsEx or (),
            )
        )

    # ------------------------------------------------------------------ switch events

    def answer(self, pending: Pending, event: SwitchEvent, now: float) -> None:
        """An event answering a call-control request (several may; the pending entry stays
        until the last)."""
        call = pending.call
        request = pending.request_id
        if isinstance(event, EventError):
            self._refused(call, request, event, now)
            return
        if self._feed(call, event, now, request) and call.key in self.ctx.calls:
            assert event.reference_id is not None
            self.ctx.pending[event.reference_id] = pending

    def on_event(self, call: Call, event: Any, now: float) -> None:
        """An unsolicited event about the port's call or its consultation call."""
        self._feed(call, event, now, None)

    def _feed(self, call: Call, event: Any, now: float, request: str | None) -> bool:
        """The table input of ``event``; whether more events answer ``request``."""
        ctx = self.ctx
        consult = event.conn_id != call.conn_id
        more = False
        if isinstance(event, EventReleased):
            if not consult:
                if request is None:  # the caller hung up: the ending family's (not a consult)
                    return False
                ctx.input(call, _I.XFER_DONE, now, event)
                return False
            ctx.input(call, _I.CONSULT_RELEASED, now, event)
            if call.consult_conn_id == event.conn_id:
                ctx.consults.pop(event.conn_id, None)
                call.consult_conn_id = None
            return request is not None
        if isinstance(event, EventDialing):
            if call.state is CallState.MAKING and call.conn_id is None:
                call.conn_id = event.conn_id
                call.switch_call_id = event.call_id
                ctx.by_conn[event.conn_id] = call
            elif consult and call.consult_conn_id is None:
                call.consult_conn_id = event.conn_id
                ctx.consults[event.conn_id] = call
            more = request == "OneStepXfer"  # an emulated single-step transfer goes on
            ctx.input(call, _I.CONTROL_DIALED, now, event)
        elif isinstance(event, EventHeld):
            more = True
            ctx.input(call, _I.HELD, now, event)
        elif isinstance(event, EventRetrieved):
            more = request not in ("RetrieveCall", RECONNECT)
            ctx.input(call, _I.RETRIEVED, now, event)
        elif isinstance(event, EventEstablished):
            more = True
            if consult:
                ctx.input(call, _I.CONSULT_ANSWERED, now, event)
        elif isinstance(event, EventDestinationBusy):
            ctx.input(call, _I.DEST_BUSY, now, event)
        elif isinstance(event, EventPartyAdded):
            ctx.input(call, _I.PARTY_ADDED, now, event)
        elif isinstance(event, EventPartyDeleted):
            last = call.parties == (event.other_dn,) or not call.parties
            ctx.input(call, _I.LAST_PARTY_LEFT if last else _I.PARTY_DELETED, now, event)
        else:  # EventAttachedDataChanged (the request's data attached first), ...
            more = True
        return more

    def _refused(self, call: Call, request: str, event: EventError, now: float) -> None:
        """The switch refused ``request``: the table's refusal row, or (the call moved on: a
        hang-up crossed the request) the answer alone, so that the IVR's request never hangs."""
        call.control_error = (event.request, event.error_code, event.error_message)
        log.info(
            "call %s: the switch refused %s: %s (error %d)",
            call.call_id,
            event.request,
            event.error_message,
            event.error_code,
            extra=call.log_fields(),
        )
        call.control = request if request != RECONNECT else None
        held = _I.REFUSED_HELD if call.held else _I.REFUSED
        if (call.state, held) in TRANSITIONS:
            self.ctx.input(call, held, now, event)
        elif request != RECONNECT:
            call.control = None
            self.ctx.send(call.owner, call, _failed(request, _code(event)))

    # ------------------------------------------------------------------ actions (table rows)

    def _start(self, call: Call, msg: Message) -> int:
        """Note the request outstanding and the state it goes back to; its ReferenceID."""
        call.control = msg.tag
        if call.state is not CallState.CONSULTING and call.state is not CallState.CONSULT_DIALING:
            call.resume = call.state
        return self.ctx.pend(call, "control", msg.tag)

    def _conn(self, call: Call) -> str:
        conn_id = call.conn_id
        assert conn_id is not None  # a connected call has its ConnID
        return conn_id

    def do_one_step_xfer(self, call: Call, now: float, msg: m.OneStepXfer) -> None:
        self._to_dest(call, msg, TSingleStepTransfer)

    def do_one_step_conf(self, call: Call, now: float, msg: m.OneStepConf) -> None:
        self._to_dest(call, msg, TSingleStepConference)

    def do_init_consult(self, call: Call, now: float, msg: m.InitXfer | m.InitConf) -> None:
        conference = isinstance(msg, m.InitConf)
        self._to_dest(call, msg, TInitiateConference if conference else TInitiateTransfer)

    def _to_dest(
        self,
        call: Call,
        msg: m.OneStepXfer | m.OneStepConf | m.InitXfer | m.InitConf,
        cls: type[TSingleStepTransfer | TSingleStepConference | TInitiateTransfer],
    ) -> None:
        """The request ``cls`` for ``msg``'s ``DestDN``, its ``UDataEx`` the data the switch
        attaches to the call first."""
        call.switch.request(
            cls(
                reference_id=self._start(call, msg),
                conn_id=self._conn(call),
                dn=call.dn,
                dest=msg.DestDN,
                user_data=kvlist(msg.UDataEx, None),
                extensions=msg.ExtnsEx or (),
            )
        )

    def do_complete(self, call: Call, now: float, msg: m.CompleteXfer | m.CompleteConf) -> None:
        consult = call.consult_conn_id
        if consult is None:  # pragma: no cover - the consultation states keep its ConnID
            raise blocked(call.call_id, f"{msg.tag} without a consultation call", msg.tag)
        cls = TCompleteConference if isinstance(msg, m.CompleteConf) else TCompleteTransfer
        call.switch.request(
            cls(
                reference_id=self._start(call, msg),
                conn_id=self._conn(call),
                dn=call.dn,
                consult_conn_id=consult,
                extensions=msg.ExtnsEx or (),
            )
        )

    def do_retrieve(self, call: Call, now: float, msg: m.RetrieveCall) -> None:
        self._reconnect(call, self._start(call, msg), call.consult_conn_id, msg.ExtnsEx or ())

    def do_reconnect(self, call: Call, now: float, event: EventReleased) -> None:
        """G5: the consulted party hung up; the server takes the held call back itself."""
        call.control = None
        self._reconnect(call, self.ctx.pend(call, "control", RECONNECT), event.conn_id)

    def _reconnect(self, call: Call, ref: int, consult: str | None, extensions: Any = ()) -> None:
        orig = self._conn(call)
        call.switch.request(
            TReconnectCall(
                reference_id=ref,
                conn_id=consult if consult is not None else orig,
                dn=call.dn,
                held_conn_id=orig,
                extensions=extensions,
            )
        )

    def do_held(self, call: Call, now: float, event: EventHeld) -> None:
        call.held = True
        self.ctx.send(call.owner, call, m.CallStatus(Event="Held"))

    def do_retrieved(self, call: Call, now: float, event: EventRetrieved) -> None:
        call.held = False
        if call.state is CallState.RETRIEVING:
            call.control = None
        self.ctx.send(call.owner, call, m.CallStatus(Event="Retrieved"))

    def do_established_far(self, call: Call, now: float, event: EventEstablished) -> None:
        self.ctx.send(call.owner, call, m.CallStatus(Event="Established"))

    def do_busy(self, call: Call, now: float, event: EventDestinationBusy) -> None:
        self.ctx.timers.make_call.cancel(call.key)
        self.ctx.send(call.owner, call, m.CallStatus(Event="Busy"))

    def do_xfer_complete(self, call: Call, now: float, event: EventReleased) -> None:
        """The port left the call (and the consultation): the IVR's ``EndCall`` follows."""
        ctx = self.ctx
        call.control = None
        call.held = False
        call.last_event = event.name
        if call.conn_id is not None:
            ctx.by_conn.pop(call.conn_id, None)
        if call.consult_conn_id is not None:
            ctx.consults.pop(call.consult_conn_id, None)
            call.consult_conn_id = None
        ctx.send(call.owner, call, m.CallStatus(Event="XferComplete"))

    def do_party_added(self, call: Call, now: float, event: EventPartyAdded) -> None:
        ctx = self.ctx
        call.control = None
        if event.other_dn:
            call.parties += (event.other_dn,)
        if call.consult_conn_id is not None:  # CompleteConf: the consultation merged
            ctx.consults.pop(call.consult_conn_id, None)
            call.consult_conn_id = None
        ctx.send(call.owner, call, m.CallStatus(Event="ConfPartyAdd"))

    def do_party_deleted(self, call: Call, now: float, event: EventPartyDeleted) -> None:
        parties = list(call.parties)
        if event.other_dn in parties:
            parties.remove(event.other_dn)
        call.parties = tuple(parties)
        self.ctx.send(call.owner, call, m.CallStatus(Event="ConfPartyDel"))

    def do_refused(self, call: Call, now: float, event: EventError) -> None:
        """``CallError FailedReq=<request> TlibErrCode=<code>``; the call as it was."""
        request = call.control
        call.control = None
        if request is not None:
            self.ctx.send(call.owner, call, _failed(request, _code(event)))

    def do_refused_reconnect(self, call: Call, now: float, event: EventError) -> None:
        """Refused with the original still held: answered, then reconnected by the server (G2)."""
        self.do_refused(call, now, event)
        self._reconnect(call, self.ctx.pend(call, "control", RECONNECT), call.consult_conn_id)

    def do_made(self, call: Call, now: float, event: EventEstablished) -> None:
        self.ctx.timers.make_call.cancel(call.key)
        call.control = None
        call.answered = True
        self.ctx.send(call.owner, call, m.CallStatus(Event="Established"))

    def do_make_call_refused(self, call: Call, now: float, event: EventError) -> None:
        self.ctx.send(call.owner, call, _failed("MakeCall", _code(event)))

    def do_make_call_no_answer(self, call: Call, now: float, arg: Any) -> None:
        """G10: nobody answered within ``make-call-timeout``: the call is released."""
        self.ctx.send(call.owner, call, _failed("MakeCall", NO_ANSWER))
        self.ctx.release(call)


def _code(event: EventError) -> str:
    return tlib_error_code(event.error_code)
