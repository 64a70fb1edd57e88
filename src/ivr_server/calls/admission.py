"""How a call starts: ``NewCall`` and ``DialOutInit``, up to ``CallStatus Established``.

Inbound (``NewCall``, PROTOCOL.md §3.3.1) and outbound (``DialOutInit``, §3.10.5) calls, the
switch's answers to the requests they make, and the call's progress (``CallStatus Ringing``,
``Dialing``, ``Established``).

The service admits the request (login, mode, flow control: it owns the configuration) and hands
it here with the resolved port. In-Front the port's DN asks the virtual switch for the call
(``TInboundCall``) or dials out (``TOutboundCall``); the events that answer carry the request's
ReferenceID, find it pending, and give the call its ConnID. Behind, the premise switch reports
the call at the port by itself and the wait-for-ringing timer runs until it does.
"""

from __future__ import annotations

import logging
from typing import Any

from ivr_server.calls.call import Call, Owner, PortTarget, call_key, scope_of
from ivr_server.calls.context import Action, CallContext, Pending
from ivr_server.calls.machine import CallInput, CallState
from ivr_server.calls.replies import Refusal, invalid_request, no_such_call
from ivr_server.calls.userdata import data_problem, kvlist
from ivr_server.switch import (
    EventDialing,
    EventError,
    EventEstablished,
    EventRinging,
    SwitchEvent,
    TAbandonCall,
    TInboundCall,
    TOutboundAnswered,
    TOutboundCall,
)
from ivr_server.wire import KvList
from ivr_server.wire import messages as m

__all__ = ["Admission"]

log = logging.getLogger("ivr_server.calls")


class Admission:
    """New calls, inbound and outbound, up to the established call."""

    def __init__(self, ctx: CallContext) -> None:
        self.ctx = ctx

    def actions(self) -> dict[str, Action]:
        """This family's rows of the table (``CallState`` transitions of a starting call)."""
        return {
            "dialing": self.do_dialing,
            "answered": self.do_answered,
            "dial_failed": self.do_dial_failed,
            "ringing": self.do_ringing,
            "established": self.do_established,
        }

    # ------------------------------------------------------------------ requests

    def _check_port(self, owner: Owner, call_id: str, target: PortTarget, request: str) -> None:
        """Refuse a CallId its IVR already uses or a port that already has a call (another
        IVR's CallIds are none of its business: docs/decisions.md)."""
        if call_key(scope_of(target.ivr, owner), call_id) in self.ctx.calls:
            raise invalid_request(call_id, f"{request}: CallId {call_id!r} is already active")
        if (target.ivr, target.port) in self.ctx.by_port:
            raise Refusal(
                call_id,
                m.EndCall(EndCause="Resources"),
                f"{request}: port {target.port} of {target.ivr} already has a call",
            )

    def _check_data(self, call_id: str, data: KvList, target: PortTarget, request: str) -> None:
        """Refuse user data the call could not carry (:func:`~.userdata.data_problem`)."""
        problem = data_problem(data, target.encoding) if data else None
        if problem is not None:
            raise Refusal(
                call_id, m.EndCall(EndCause="FeatureNotSupported"), f"{request}: {problem}"
            )

    def check_start(
        self, owner: Owner, call_id: str, data: KvList, target: PortTarget, request: str
    ) -> None:
        """Refuse a new call (``MakeCall``...) whose CallId or port is in use, or whose user data
        it could not carry."""
        self._check_port(owner, call_id, target, request)
        self._check_data(call_id, data, target, request)

    def new_call(
        self, owner: Owner, call_id: str, msg: m.NewCall, target: PortTarget, now: float
    ) -> None:
        """Start a call admitted by the service (login, mode, flow control already checked)."""
        self._check_port(owner, call_id, target, "NewCall")
        data = kvlist(msg.UDataEx, msg.UserData)
        self._check_data(call_id, data, target, "NewCall")
        ctx = self.ctx
        call = Call(call_id, owner, target, msg.CalledNum, msg.ANI, msg.DNIS, msg.Version == "1.0")
        ctx.metrics.calls_started += 1
        ctx.add(call, now)
        if call.behind:
            # the premise switch reports the call at the port by itself (calls.behind)
            ctx.timers.ringing.set(call.key, now + ctx.settings.wait_for_ringing)
            return
        call.switch.request(
            TInboundCall(
                reference_id=ctx.pend(call, "inbound"),
                dn=call.dn,
                ani=msg.ANI,
                dnis=msg.DNIS,
                user_data=data,
                extensions=kvlist(msg.ExtnsEx, msg.Extensions),
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
        self._check_port(owner, call_id, target, "DialOutInit")
        self._check_data(call_id, user_data, target, "DialOutInit")
        ctx = self.ctx
        call = Call(call_id, owner, target, msg.CalledNum)
        ctx.metrics.calls_started += 1
        call.state = CallState.DIALING
        call.dial_out = dial_out
        ctx.add(call, now)
        ctx.requester = owner
        call.switch.request(
            TOutboundCall(
                reference_id=ctx.pend(call, "outbound"),
                dn=call.dn,
                dest=dest,
                user_data=user_data,
                extensions=msg.ExtnsEx or (),
            )
        )

    def discard(self, key: str) -> bool:
        """Remove a call whose start could not be completed (handling its ``NewCall`` or
        ``DialOutInit`` failed, or its first documents could not be sent): released on the
        switch (In-Front: a premise call is the PBX's) and forgotten, its port free at once;
        nothing is sent to the IVR (the service answers the request). ``False`` if there is no
        such call."""
        call = self.ctx.calls.get(key)
        if call is None:
            return False
        if not call.behind:  # a premise call is the PBX's: the IVR's failed start leaves it be
            self.ctx.release(call)
        self.ctx.forget(call)
        return True

    def ivr_call_status(
        self, owner: Owner, ivr: str | None, call_id: str | None, msg: m.CallStatus, now: float
    ) -> None:
        """``CallStatus`` from the IVR: only ``Established`` of an outbound call means something
        (the dialled party answered, PROTOCOL.md §3.3.7); anything else is logged and ignored."""
        call = (
            self.ctx.calls.get(call_key(scope_of(ivr, owner), call_id))
            if call_id is not None
            else None
        )
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
        self.ctx.requester = owner
        self.ctx.input(call, CallInput.ANSWERED, now, msg)

    # ------------------------------------------------------------------ switch events

    def answer(self, pending: Pending, event: SwitchEvent, now: float) -> None:
        """An event answering the ``TInboundCall`` or ``TOutboundCall`` of a starting call."""
        ctx = self.ctx
        call = pending.call
        if isinstance(event, EventError):
            what = "call" if pending.kind == "inbound" else "dial-out"
            log.warning(
                "call %s: the switch refused the %s: %s", call.call_id, what, event.error_message
            )
            ctx.send(call.owner, call, m.EndCall(EndCause="FeatureNotSupported"))
            ctx.forget(call)
        elif pending.kind == "inbound":
            if isinstance(event, EventRinging):
                call.conn_id = event.conn_id
                call.switch_call_id = event.call_id
                ctx.by_conn[event.conn_id] = call
                # the Established event that follows carries the same ReferenceID
                ctx.pending[event.reference_id or 0] = pending
                self.on_ringing(call, event, now)
            elif isinstance(event, EventEstablished):
                self.on_established(call, event, now)
        elif isinstance(event, EventDialing):
            call.conn_id = event.conn_id
            call.switch_call_id = event.call_id
            call.last_event = event.name
            ctx.by_conn[event.conn_id] = call
            ctx.input(call, CallInput.DIALED, now, event)

    def on_ringing(self, call: Call, event: EventRinging, now: float) -> None:
        if event.dn != call.dn:
            return
        call.track(event)
        self.ctx.input(call, CallInput.RINGING, now, event)

    def on_established(self, call: Call, event: EventEstablished, now: float) -> None:
        if event.dn != call.dn:
            return
        call.track(event)
        self.ctx.input(call, CallInput.ESTABLISHED, now, event)

    # ------------------------------------------------------------------ actions (table rows)

    def do_dialing(self, call: Call, now: float, event: Any) -> None:
        self.ctx.send(call.owner, call, m.CallStatus(Event="Dialing"))
        self.ctx.report(call, "dialing")

    def do_answered(self, call: Call, now: float, msg: Any) -> None:
        if call.conn_id is not None:
            call.switch.request(
                TOutboundAnswered(reference_id=self.ctx.ref(), conn_id=call.conn_id, dn=call.dn)
            )

    def do_dial_failed(self, call: Call, now: float, msg: m.Failure) -> None:
        if call.conn_id is not None:
            call.switch.request(
                TAbandonCall(reference_id=self.ctx.ref(), conn_id=call.conn_id, dn=call.dn)
            )
        self.ctx.report(call, "failed", msg.FailureCause)
        call.dial_out = None  # reported: forgetting the call must not report again

    def do_ringing(self, call: Call, now: float, event: EventRinging) -> None:
        self.ctx.timers.ringing.cancel(call.key)
        self.ctx.send(call.owner, call, m.CallStatus(Event="Ringing"))

    def do_established(self, call: Call, now: float, event: EventEstablished) -> None:
        self.ctx.send(call.owner, call, m.CallStatus(Event="Established"))
        call.answered = True
        self.ctx.report(call, "established")
