"""The virtual switch as the Network T-Server of its routing DNs (Network mode, PROTOCOL.md §6.3).

A network IVR's call does not reach a port: it waits at the routing DN it arrived on, which is
the call's one party, until a router tells the IVR where the network should deliver it.

================================  ==========================================================
Request                           Events (the router sees them on the routing DN)
================================  ==========================================================
TNetworkCall                      EventQueued (Network control), or at once EventRouteRequest
                                  (Genesys control, ``route_now``)
TRouteRequest (route_dn = dn)     EventRouteRequest: a queued call is presented once
TRouteCall                        RequestRouteCall only: the route is used only when the IVR
                                  reports ``Connected``. Also on a connected call: the
                                  router's unsolicited reroute (PROTOCOL.md §6.3 N9)
TNetworkConnected                 EventDiverted (a queued call, first connection only), then
                                  EventRouteUsed with the destination
TRouteFailed                      EventError 83/232/234 (request ``TRouteCall``) to the router;
                                  the call waits at the routing DN again
TRouteAbort                       EventRouteUsed (the router stayed silent: Router Timeout)
TAbandonCall                      EventAbandoned (the IVR ended a call never connected)
TReleaseCall                      EventReleased (the IVR ended a connected call, or the server
                                  ended it), after EventRouteUsed if the call still waited
================================  ==========================================================

Treatments (TApplyTreatment, TTreatmentStatus) run as on any routing point
(:mod:`.routing`): the call waits at the routing DN while the router owes instructions.
:func:`on_route_call` and :func:`on_route_failed` take these requests for every call and hand
those of other calls (In-Front: a port's call presented on a routing point) to :mod:`.routing`.
"""

from __future__ import annotations

from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    EventDiverted,
    EventError,
    EventQueued,
    EventRouteRequest,
    EventRouteUsed,
    RequestRouteCall,
)
from ivr_server.switch.requests import (
    CallRequest,
    TNetworkCall,
    TNetworkConnected,
    TRouteCall,
    TRouteFailed,
)
from ivr_server.switch.userdata import USER_DATA_LIMIT, kv_size
from ivr_server.switch.view import CallRecord
from ivr_server.switch.virtual import routing
from ivr_server.switch.virtual.core import SwitchCore

__all__ = ["on_network_call", "on_network_connected", "on_route_call", "on_route_failed"]


def on_network_call(sw: SwitchCore, req: TNetworkCall) -> None:
    record = sw.address(req, req.dn)
    if record is None:
        return
    if record.type not in sw.routing_point_types:
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, f"DN {req.dn} is not a routing point")
        return
    if kv_size(req.user_data) > USER_DATA_LIMIT:
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, "user data larger than 16 KB")
        return
    conn_id, call_id = sw.new_call_ids()
    first = EventRouteRequest if req.route_now else EventQueued
    sw.emit(
        first(
            switch=sw.name,
            reference_id=req.reference_id,
            dn=req.dn,
            conn_id=conn_id,
            call_id=call_id,
            ani=req.ani,
            dnis=req.dnis,
            user_data=req.user_data,
            extensions=req.extensions,
        )
    )


def _network_call(sw: SwitchCore, req: CallRequest) -> CallRecord | None:
    """The Network call of ``req``, at its routing DN ``req.dn``; else EventError."""
    call = sw.call_at(req)
    if call is not None and not call.network:
        sw.fail(
            req, req.dn, TErrorCode.TERR_INVALID_ATTR, f"call {req.conn_id} is not a Network call"
        )
        return None
    return call


def on_route_call(sw: SwitchCore, req: TRouteCall) -> None:
    """The router routes a Network call waiting at its routing DN, or reroutes a connected one
    (RequestRouteCall; EventRouteUsed follows the IVR's ``Connected``); any other call's route is
    :func:`.routing.on_route_call`'s."""
    found = sw.view.call_record(req.conn_id)
    if found is None or not found.network:
        routing.on_route_call(sw, req)
        return
    call = _network_call(sw, req)
    if call is None:
        return
    waiting = call.routing_point == req.dn
    if not (waiting or (call.connected and call.routing_point is None and not call.routed)):
        state = "was routed already" if call.routed else "does not wait for a route"
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, f"call {call.conn_id} {state}")
        return
    sw.call_event(
        RequestRouteCall,
        req,
        call,
        req.dn,
        route_type=req.route_type,
        dest=req.dest,
        route_extensions=req.extensions,
    )


def on_network_connected(sw: SwitchCore, req: TNetworkConnected) -> None:
    call = _network_call(sw, req)
    if call is None:
        return
    if not call.routed:
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, f"call {call.conn_id} was not routed")
        return
    dest = call.routed_to
    if call.queued:
        sw.call_event(EventDiverted, req, call, req.dn, other_dn=dest)
    sw.call_event(EventRouteUsed, req, call, req.dn, dest=dest, extensions=req.extensions)


def on_route_failed(sw: SwitchCore, req: TRouteFailed) -> None:
    """Connecting a routed Network call failed: EventError to the router, the call waits at its
    routing DN again (the view applies the error); other calls: :func:`.routing.on_route_failed`."""
    found = sw.view.call_record(req.conn_id)
    if found is None or not found.network:
        routing.on_route_failed(sw, req)
        return
    call = _network_call(sw, req)
    if call is None:
        return
    if not call.routed:
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, f"call {call.conn_id} was not routed")
        return
    sw.emit(
        EventError(
            switch=sw.name,
            reference_id=req.reference_id,
            dn=req.dn,
            error_code=req.error_code,
            error_message=f"connecting call {call.conn_id} to {call.routed_to} failed",
            request="TRouteCall",
            conn_id=call.conn_id,
        )
    )
