"""The routing dialog of a call: ``RouteRequest``, ``RouteResponse``, treatments, Router Timeout.

PROTOCOL.md §3.3.2-§3.3.5, §6.2 rows 12-24: ``RouteRequest`` to the switch's routing point, the
router's answer as ``RouteResponse`` or ``TreatCall`` (with ``Cancel`` when a route comes during
a treatment), the IVR's ``TreatStatus``, ``CancelCompleted``, ``Connected`` and ``Failure``, and
the Router Timeout's default route.

The call's port DN asks the routing point with ``TRouteRequest``; the router (a T-Library client
of the same switch, :mod:`ivr_server.routing`) answers with ``RequestRouteCall`` or
``RequestApplyTreatment`` events at the port, which come here through the manager. The Router
Timeout runs while the router owes an instruction.
"""

from __future__ import annotations

from typing import Any, Final

from ivr_server.calls.call import Call
from ivr_server.calls.context import Action, CallContext, Pending
from ivr_server.calls.machine import TRANSITIONS, CallInput, CallState
from ivr_server.calls.replies import invalid_request
from ivr_server.calls.userdata import UserData, kvlist, nvpairs, too_big
from ivr_server.switch import (
    DnType,
    EventError,
    RequestApplyTreatment,
    RequestRouteCall,
    SwitchEvent,
    TErrorCode,
    TRouteAbort,
    TRouteFailed,
    TRouteRequest,
    TTreatmentStatus,
    TUpdateUserData,
)
from ivr_server.wire import Message
from ivr_server.wire import messages as m

__all__ = ["Routing"]

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


class Routing:
    """A call's routing dialogs and treatments."""

    def __init__(self, ctx: CallContext, user_data: UserData) -> None:
        self.ctx = ctx
        self.user_data = user_data
        """Attaches the data a ``TreatStatus Completed`` carries."""

    def actions(self) -> dict[str, Action]:
        """This family's rows of the table."""
        return {
            "route_request": self.do_route_request,
            "route_response": self.do_route_response,
            "treat_call": self.do_treat_call,
            "route_default": self.do_route_default,
            "treatment_started": self.do_treatment_started,
            "treatment_not_started": self.do_treatment_not_started,
            "treatment_completed": self.do_treatment_completed,
            "cancel": self.do_cancel,
            "held_route_response": self.do_held_route_response,
            "route_abort": self.do_route_abort,
            "route_failed": self.do_route_failed,
            "nothing": self.do_nothing,
        }

    # ------------------------------------------------------------------ IVR messages

    def on_route_request(self, call: Call, msg: m.RouteRequest, now: float) -> None:
        """Checked here only where the table allows it (elsewhere the table answers). The
        RouteDN is a routing point of the call's switch, or of a Behind call a Virtual Routing
        Point: the server's own routing point on the premise switch's router plane, where the
        routers work as In-Front (MODES-AND-HA G1)."""
        allowed = TRANSITIONS.get((call.state, CallInput.ROUTE_REQUEST))
        if allowed is not None:
            route_dn = msg.RouteDN
            if not route_dn:
                raise invalid_request(call.call_id, "RouteRequest without RouteDN (In-Front)")
            snapshot = call.switch.view.dn(route_dn)
            if snapshot is None or not (
                snapshot.type is DnType.ROUTING_POINT
                or (call.behind and snapshot.type is DnType.VIRTUAL_ROUTING_POINT)
            ):
                raise invalid_request(
                    call.call_id, f"RouteDN {route_dn} is not a routing point of {call.switch.name}"
                )
            data = kvlist(msg.UDataEx, msg.UserData)
            problem = too_big(call, data) if data else None
            if problem is not None:
                raise invalid_request(call.call_id, f"RouteRequest: {problem}")
        self.ctx.input(call, CallInput.ROUTE_REQUEST, now, msg)

    def on_treat_status(self, call: Call, msg: m.TreatStatus, now: float) -> None:
        self.ctx.input(call, _TREAT_INPUT[msg.Status], now, msg)

    def on_cancel_completed(self, call: Call, msg: m.CancelCompleted, now: float) -> None:
        self.ctx.input(call, CallInput.CANCEL_COMPLETED, now, msg)

    def on_connected(self, call: Call, msg: m.Connected, now: float) -> None:
        self.ctx.input(call, CallInput.CONNECTED, now, msg)

    def on_failure(self, call: Call, msg: m.Failure, now: float) -> None:
        """A routed call could not reach its destination; while an outbound call dials, the
        dialled party could not be reached (the table's ``dial_failed``)."""
        self.ctx.input(call, CallInput.FAILURE, now, msg)

    # ------------------------------------------------------------------ switch events

    def on_route_call(self, call: Call, event: RequestRouteCall, now: float) -> None:
        self.ctx.input(call, CallInput.ROUTE_CALL, now, event)

    def on_apply_treatment(self, call: Call, event: RequestApplyTreatment, now: float) -> None:
        self.ctx.input(call, CallInput.APPLY_TREATMENT, now, event)

    def answer(self, pending: Pending, event: SwitchEvent, now: float) -> None:
        """An event answering a ``TRouteRequest``: ``EventRouteRequest`` confirms it;
        ``EventError`` means the routing point refused it (``CallError INVALID_REQ``)."""
        call = pending.call
        if isinstance(event, EventError) and call.state is CallState.ROUTING:
            self.ctx.timers.router.cancel(call.key)
            call.state = CallState.STARTED
            self.ctx.send(
                pending.owner,
                call,
                m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ"),
            )

    # ------------------------------------------------------------------ steps

    def route_response(self, call: Call, event: RequestRouteCall) -> m.RouteResponse:
        """The ``RouteResponse`` of the router's ``RequestRouteCall`` (``Extensions`` for a
        version 1.0 call)."""
        ext = event.route_extensions
        if call.legacy:
            return m.RouteResponse(
                RouteType=event.route_type, Dest=event.dest, Extensions=nvpairs(ext)
            )
        return m.RouteResponse(RouteType=event.route_type, Dest=event.dest, ExtnsEx=ext or None)

    def _routed(self, call: Call, now: float, response: m.RouteResponse) -> None:
        """Send a RouteResponse and count it (type, RouteRequest-to-RouteResponse latency)."""
        metrics = self.ctx.metrics
        metrics.routing[response.RouteType] += 1
        metrics.routing_latency.observe(now - call.route_started)
        self.ctx.send(call.owner, call, response)

    def _abort_route(self, call: Call) -> None:
        """Close the routing dialog; the routing point is told if the call still waits there."""
        self.ctx.timers.router.cancel(call.key)
        call.held_route = None
        call.treatment = None
        if call.conn_id is not None and call.route_dn is not None:
            waiting = call.switch.view.call(call.conn_id)
            if waiting is not None and waiting.routing_point == call.route_dn:
                call.switch.request(
                    TRouteAbort(reference_id=self.ctx.ref(), conn_id=call.conn_id, dn=call.route_dn)
                )

    def _report_treatment(self, call: Call, msg: m.TreatStatus) -> None:
        """Pass the IVR's ``TreatStatus`` on to the routing point (``TTreatmentStatus``)."""
        if call.conn_id is None or call.route_dn is None:
            return
        call.switch.request(
            TTreatmentStatus(
                reference_id=self.ctx.ref(),
                conn_id=call.conn_id,
                dn=call.route_dn,
                status=msg.Status,
                treatment_type=call.treatment or "",
                collected_digits=msg.CED,
                extensions=msg.ExtnsEx or (),
            )
        )

    # ------------------------------------------------------------------ actions (table rows)

    def do_nothing(self, call: Call, now: float, arg: Any) -> None:
        """``Connected`` after a ``RouteResponse``: only the state changes."""
        return

    def do_route_request(self, call: Call, now: float, msg: m.RouteRequest) -> None:
        ctx = self.ctx
        conn_id = call.conn_id
        assert conn_id is not None and msg.RouteDN is not None  # checked in on_route_request
        data = kvlist(msg.UDataEx, msg.UserData)
        if data:
            call.switch.request(
                TUpdateUserData(reference_id=ctx.ref(), conn_id=conn_id, dn=call.dn, user_data=data)
            )
        call.route_dn = msg.RouteDN
        call.route_started = now
        call.treatment = None
        call.held_route = None
        ctx.timers.router.set(call.key, now + ctx.settings.router_timeout)
        call.switch.request(
            TRouteRequest(
                reference_id=ctx.pend(call, "route"),
                conn_id=conn_id,
                dn=call.dn,
                route_dn=msg.RouteDN,
                collected_digits=msg.CED,
                extensions=kvlist(msg.ExtnsEx, msg.Extensions),
            ),
        )

    def do_route_response(self, call: Call, now: float, event: RequestRouteCall) -> None:
        self.ctx.timers.router.cancel(call.key)
        self._routed(call, now, self.route_response(call, event))

    def do_treat_call(self, call: Call, now: float, event: RequestApplyTreatment) -> None:
        self.ctx.timers.router.cancel(call.key)
        call.treatment = event.treatment_type
        self.ctx.send(
            call.owner,
            call,
            m.TreatCall(
                Type=event.treatment_type,  # type: ignore[arg-type]
                Parameters=event.parameters or None,
                ExtnsEx=event.treatment_extensions or None,
            ),
        )

    def do_route_default(self, call: Call, now: float, arg: Any) -> None:
        self._abort_route(call)
        self.ctx.metrics.router_timeouts += 1
        self._routed(call, now, m.RouteResponse(RouteType="Default"))

    def do_treatment_started(self, call: Call, now: float, msg: m.TreatStatus) -> None:
        self._report_treatment(call, msg)

    def do_treatment_not_started(self, call: Call, now: float, msg: m.TreatStatus) -> None:
        self.ctx.timers.router.set(call.key, now + self.ctx.settings.router_timeout)
        self._report_treatment(call, msg)
        call.treatment = None

    def do_treatment_completed(self, call: Call, now: float, msg: m.TreatStatus) -> None:
        self.ctx.timers.router.set(call.key, now + self.ctx.settings.router_timeout)
        self.user_data.attach_replace(call, msg.UDataEx or ())
        self._report_treatment(call, msg)
        call.treatment = None

    def do_cancel(self, call: Call, now: float, event: RequestRouteCall) -> None:
        call.held_route = self.route_response(call, event)
        self.ctx.send(call.owner, call, m.Cancel())

    def do_held_route_response(self, call: Call, now: float, msg: Message) -> None:
        if isinstance(msg, m.TreatStatus):
            self.user_data.attach_replace(call, msg.UDataEx or ())
        held, call.held_route, call.treatment = call.held_route, None, None
        if held is not None:
            self._routed(call, now, held)

    def do_route_abort(self, call: Call, now: float, msg: Message) -> None:
        self._abort_route(call)

    def do_route_failed(self, call: Call, now: float, msg: m.Failure) -> None:
        if call.conn_id is None or call.route_dn is None:
            return
        self.ctx.timers.router.set(call.key, now + self.ctx.settings.router_timeout)
        call.switch.request(
            TRouteFailed(
                reference_id=self.ctx.ref(),
                conn_id=call.conn_id,
                dn=call.route_dn,
                error_code=int(_FAILURE_CODES[msg.FailureCause]),
            )
        )
