"""Network-mode calls (PROTOCOL.md §6.3, MODES-AND-HA §1.3): a network IVR's call waiting at a
routing DN of the server's own virtual switch until the router says where the network delivers it.

The call starts here (:meth:`Network.new_call`, rows N1-N2: ``TNetworkCall``, EventQueued or at
once EventRouteRequest) and then runs the table of :mod:`ivr_server.calls.network_table`. Its
treatments, ``Cancel``, held route, ``Failure`` and the router's ``RequestRouteCall`` reuse the
In-Front routing dialog's steps (:mod:`ivr_server.calls.routing`): the call's ``route_dn`` is its
own routing DN. What differs is here: the one ``RouteRequest`` of a call, ``Connected``
(EventDiverted + EventRouteUsed), the router's unsolicited reroute, the Router Timeout
(``EndCall EndCause='Timeout'``) and how the call leaves the switch.

How a Network call leaves the switch (docs/network.md): the IVR's ``EndCall`` of a call never
connected → EventAbandoned (N6); of a connected one → EventReleased; the server's end (Router
Timeout, Call Timeout, an operator) → EventRouteUsed if the call still waited, then
EventReleased; a session that never came back (orphan-call-timeout) → as the IVR's EndCall. The
server's ``EndCall`` carries the call's user data as ``UDataEx`` (N-l, the only mode where it
may): the IVR applying its default routing still has what the call collected.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from ivr_server.calls.call import Call, Owner, PortTarget, call_key, scope_of
from ivr_server.calls.context import Action, CallContext, Pending
from ivr_server.calls.machine import CallInput, CallState
from ivr_server.calls.network_table import NETWORK_TRANSITIONS
from ivr_server.calls.replies import Refusal, invalid_request
from ivr_server.calls.routing import Routing
from ivr_server.calls.userdata import (
    UserData,
    data_problem,
    kvlist,
    nvpairs,
    too_big,
    user_data,
)
from ivr_server.switch import (
    EventError,
    EventReleased,
    RequestRouteCall,
    RoutingEvent,
    SwitchEvent,
    TAbandonCall,
    TNetworkCall,
    TNetworkConnected,
    TReleaseCall,
    TRouteRequest,
    TUpdateUserData,
)
from ivr_server.wire import messages as m

__all__ = ["Network"]

log = logging.getLogger("ivr_server.calls")


class Network:
    """Network-mode calls: their start, and the rows of their table that are their own."""

    def __init__(self, ctx: CallContext, routing: Routing, user_data: UserData) -> None:
        self.ctx = ctx
        self.routing = routing
        """The routing dialog's steps, shared with In-Front calls."""
        self.user_data = user_data
        """Attaches the data an ``EndCall`` or ``RouteRequest`` carries."""

    def actions(self) -> dict[str, Action]:
        """This family's rows of the Network table."""
        return {
            "net_route_request": self.do_route_request,
            "net_router_timeout": self.do_router_timeout,
            "net_reroute": self.do_reroute,
            "net_connected": self.do_connected,
            "net_end_call": self.do_end_call,
            "net_released": self.do_released,
            "net_end_timeout": self.do_end_timeout,
            "net_abandon": self.do_abandon,
        }

    # ------------------------------------------------------------------ the call's start

    def new_call(
        self, owner: Owner, call_id: str, msg: m.NewCall, target: PortTarget, now: float
    ) -> None:
        """Start a Network call admitted by the service (mode procedure: ``target.dn`` is a
        routing DN with a router): it waits there, queued (``CallControlMode='Network'``,
        ``STARTED``) or presented to the router at once (``'Genesys'``, ``WAITING``, the Router
        Timeout runs). Many calls may wait at one routing DN: no port is taken."""
        ctx = self.ctx
        if call_key(scope_of(target.ivr, owner), call_id) in ctx.calls:
            raise invalid_request(call_id, f"NewCall: CallId {call_id!r} is already active")
        data = kvlist(msg.UDataEx, msg.UserData)
        problem = data_problem(data, target.encoding) if data else None
        if problem is not None:
            raise Refusal(call_id, m.EndCall(EndCause="FeatureNotSupported"), f"NewCall: {problem}")
        call = Call(call_id, owner, target, msg.CalledNum, msg.ANI, msg.DNIS, msg.Version == "1.0")
        call.version = msg.Version
        call.route_dn = call.dn
        genesys = msg.CallControlMode == "Genesys"
        call.state = CallState.WAITING if genesys else CallState.STARTED
        ctx.metrics.calls_started += 1
        ctx.add(call, now)
        if genesys:
            call.route_started = now
            ctx.timers.router.set(call.key, now + ctx.settings.router_timeout)
        call.switch.request(
            TNetworkCall(
                reference_id=ctx.pend(call, "network"),
                dn=call.dn,
                ani=msg.ANI,
                dnis=msg.DNIS,
                user_data=data,
                extensions=kvlist(msg.ExtnsEx, msg.Extensions),
                route_now=genesys,
            )
        )

    def answer(self, pending: Pending, event: SwitchEvent, now: float) -> None:
        """The switch's answer to ``TNetworkCall``: the call's first event gives it its ConnID;
        an EventError (the routing DN went away) ends it, ``EndCall FeatureNotSupported``."""
        ctx = self.ctx
        call = pending.call
        if isinstance(event, EventError):
            log.warning(
                "call %s: the switch refused the Network call: %s",
                call.call_id,
                event.error_message,
                extra=call.log_fields(),
            )
            ctx.send(call.owner, call, m.EndCall(EndCause="FeatureNotSupported"))
            ctx.forget(call)
        elif isinstance(event, RoutingEvent):  # EventQueued, or EventRouteRequest (Genesys)
            call.conn_id = event.conn_id
            call.switch_call_id = event.call_id
            call.last_event = event.name
            ctx.by_conn[event.conn_id] = call

    def on_route_request(self, call: Call, msg: m.RouteRequest, now: float) -> None:
        """Its ``RouteDN`` is ignored (PROTOCOL.md §3.3.2); where the table allows it, its data
        must fit the call."""
        if (call.state, CallInput.ROUTE_REQUEST) in NETWORK_TRANSITIONS:
            data = kvlist(msg.UDataEx, msg.UserData)
            problem = too_big(call, data) if data else None
            if problem is not None:
                raise invalid_request(call.call_id, f"RouteRequest: {problem}")
        self.ctx.input(call, CallInput.ROUTE_REQUEST, now, msg)

    # ------------------------------------------------------------------ steps

    def _end(self, call: Call, cause: Literal["Timeout", "Abandoned"]) -> None:
        """The server's ``EndCall`` with the call's user data (N-l)."""
        data = user_data(call)
        if call.legacy:
            msg = m.EndCall(EndCause=cause, UserData=nvpairs(data))
        else:
            msg = m.EndCall(EndCause=cause, UDataEx=data or None)
        self.ctx.send(call.owner, call, msg)

    def _leave(self, call: Call, abandoned: bool) -> None:
        """The call leaves the switch: EventAbandoned (``abandoned``: never connected, ended by
        the IVR) or EventReleased (after EventRouteUsed if it still waited)."""
        conn_id = call.conn_id
        if conn_id is None or call.switch.view.user_data(conn_id) is None:
            return
        ref = self.ctx.ref()
        if abandoned:
            call.switch.request(TAbandonCall(reference_id=ref, conn_id=conn_id, dn=call.dn))
        else:
            call.switch.request(TReleaseCall(reference_id=ref, conn_id=conn_id, dn=call.dn))

    # ------------------------------------------------------------------ actions (table rows)

    def do_route_request(self, call: Call, now: float, msg: m.RouteRequest) -> None:
        """N3: the call's data updated, then EventRouteRequest on its own routing DN."""
        ctx = self.ctx
        conn_id = call.conn_id
        assert conn_id is not None  # given by the TNetworkCall's first event
        data = kvlist(msg.UDataEx, msg.UserData)
        if data:
            call.switch.request(
                TUpdateUserData(reference_id=ctx.ref(), conn_id=conn_id, dn=call.dn, user_data=data)
            )
        call.route_started = now
        ctx.timers.router.set(call.key, now + ctx.settings.router_timeout)
        call.switch.request(
            TRouteRequest(
                reference_id=ctx.ref(),
                conn_id=conn_id,
                dn=call.dn,
                route_dn=call.dn,
                collected_digits=msg.CED,
                extensions=kvlist(msg.ExtnsEx, msg.Extensions),
            )
        )

    def do_router_timeout(self, call: Call, now: float, arg: Any) -> None:
        """N5: ``EndCall EndCause='Timeout'``; the router gets EventRouteUsed (then the call
        leaves the switch)."""
        self.ctx.metrics.router_timeouts += 1
        self._end(call, "Timeout")
        self._leave(call, abandoned=False)

    def do_reroute(self, call: Call, now: float, event: RequestRouteCall) -> None:
        """N9: the router reroutes the connected call: an unsolicited ``RouteResponse``."""
        response = self.routing.route_response(call, event)
        self.ctx.metrics.routing[response.RouteType] += 1
        self.ctx.send(call.owner, call, response)

    def do_connected(self, call: Call, now: float, msg: m.Connected) -> None:
        """N8: EventDiverted (a queued call) and EventRouteUsed end the router's strategy."""
        call.answered = True
        conn_id = call.conn_id
        assert conn_id is not None
        call.switch.request(
            TNetworkConnected(
                reference_id=self.ctx.ref(),
                conn_id=conn_id,
                dn=call.dn,
                extensions=kvlist(msg.ExtnsEx, msg.Extensions),
            )
        )

    def do_end_call(self, call: Call, now: float, msg: m.EndCall) -> None:
        """N6: the IVR's ``EndCall``; its data attached first."""
        self.user_data.attach_replace(call, kvlist(msg.UDataEx, msg.UserData))
        self._leave(call, abandoned=not call.answered)

    def do_released(self, call: Call, now: float, event: EventReleased) -> None:
        """The call was cleared on the switch's side (an operator, the caller): ``EndCall
        EndCause='Abandoned'`` with its last data (PROTOCOL.md §3.3.6)."""
        call.last_user_data = event.user_data
        if call.conn_id is not None:
            self.ctx.by_conn.pop(call.conn_id, None)
        call.conn_id = None
        self._end(call, "Abandoned")

    def do_end_timeout(self, call: Call, now: float, arg: Any) -> None:
        """Call Timeout, or an operator ending the call: ``EndCall EndCause='Timeout'``."""
        self._end(call, "Timeout")
        self._leave(call, abandoned=False)

    def do_abandon(self, call: Call, now: float, arg: Any) -> None:
        """No session came back (G23: a login-less session's calls are never adopted)."""
        log.info(
            "call %s: no session came back, the Network call is ended",
            call.call_id,
            extra=call.log_fields(),
        )
        self._leave(call, abandoned=not call.answered)
