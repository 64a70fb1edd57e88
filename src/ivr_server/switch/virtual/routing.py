"""The virtual switch's routing points: the routing dialog of PROTOCOL.md §6.2.

The IVR side presents a call on a routing point (TRouteRequest: EventRouteRequest) and reports
the treatments it plays (TTreatmentStatus); the router answers with TApplyTreatment (published as
RequestApplyTreatment for the call's owner) or TRouteCall (RequestRouteCall, then EventRouteUsed);
the dialog also ends without a route (TRouteAbort: EventRouteUsed). When connecting to the routed
destination fails (TRouteFailed), the router gets an EventError and the call waits at the routing
point again.
"""

from __future__ import annotations

from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    EventError,
    EventRouteRequest,
    EventRouteUsed,
    EventTreatmentApplied,
    EventTreatmentEnd,
    EventTreatmentNotApplied,
    RequestApplyTreatment,
    RequestRouteCall,
)
from ivr_server.switch.requests import (
    CallRequest,
    SwitchRequest,
    TApplyTreatment,
    TRouteAbort,
    TRouteCall,
    TRouteFailed,
    TRouteRequest,
    TTreatmentStatus,
)
from ivr_server.switch.view import CallRecord
from ivr_server.switch.virtual.core import SwitchCore

__all__ = [
    "on_apply_treatment",
    "on_route_abort",
    "on_route_call",
    "on_route_failed",
    "on_route_request",
    "on_treatment_status",
]


def _routing_point(sw: SwitchCore, req: SwitchRequest, number: str) -> bool:
    """``number`` is a routing point of the switch; else EventError."""
    record = sw.address(req, number)
    if record is None:
        return False
    if record.type not in sw.routing_point_types:
        sw.fail(req, number, TErrorCode.TERR_INVALID_ATTR, f"DN {number} is not a routing point")
        return False
    return True


def _waiting(sw: SwitchCore, req: CallRequest) -> CallRecord | None:
    """The call of a routing-point request, which must wait at ``req.dn``; else EventError."""
    if sw.address(req, req.dn) is None:
        return None
    call = sw.view.call_record(req.conn_id)
    if call is None or call.routing_point != req.dn:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_INVALID_ATTR,
            f"call {req.conn_id} does not wait at routing point {req.dn}",
        )
        return None
    return call


def on_route_request(sw: SwitchCore, req: TRouteRequest) -> None:
    call = sw.call_at(req)
    if call is None or not _routing_point(sw, req, req.route_dn):
        return
    if call.routing_point is not None:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_INVALID_ATTR,
            f"call {call.conn_id} already waits at routing point {call.routing_point}",
        )
        return
    if call.network and not (call.queued and not call.routed and req.route_dn == req.dn):
        # a Network call is presented once, on the routing DN it waits at (network.py)
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_INVALID_ATTR,
            f"Network call {call.conn_id} cannot be presented again",
        )
        return
    sw.call_event(
        EventRouteRequest,
        req,
        call,
        req.route_dn,
        other_dn=None if call.network else call.parties[0],
        collected_digits=req.collected_digits,
        extensions=req.extensions,
    )


def on_route_call(sw: SwitchCore, req: TRouteCall) -> None:
    call = _waiting(sw, req)
    if call is None:
        return
    sw.call_event(
        RequestRouteCall,
        req,
        call,
        req.dn,
        other_dn=call.parties[0],
        route_type=req.route_type,
        dest=req.dest,
        route_extensions=req.extensions,
    )
    sw.call_event(EventRouteUsed, req, call, req.dn, dest=req.dest)


def on_apply_treatment(sw: SwitchCore, req: TApplyTreatment) -> None:
    call = _waiting(sw, req)
    if call is None:
        return
    sw.call_event(
        RequestApplyTreatment,
        req,
        call,
        req.dn,
        other_dn=call.parties[0],
        treatment_type=req.treatment_type,
        parameters=req.parameters,
        treatment_extensions=req.extensions,
    )


def on_treatment_status(sw: SwitchCore, req: TTreatmentStatus) -> None:
    call = _waiting(sw, req)
    if call is None:
        return
    other = call.parties[0] if call.parties else None
    if req.status == "Started":
        sw.call_event(
            EventTreatmentApplied,
            req,
            call,
            req.dn,
            other_dn=other,
            treatment_type=req.treatment_type,
            extensions=req.extensions,
        )
    elif req.status == "NotStarted":
        sw.call_event(
            EventTreatmentNotApplied,
            req,
            call,
            req.dn,
            other_dn=other,
            treatment_type=req.treatment_type,
            extensions=req.extensions,
        )
    else:
        sw.call_event(
            EventTreatmentEnd,
            req,
            call,
            req.dn,
            other_dn=other,
            treatment_type=req.treatment_type,
            collected_digits=req.collected_digits,
            extensions=req.extensions,
        )


def on_route_abort(sw: SwitchCore, req: TRouteAbort) -> None:
    call = _waiting(sw, req)
    if call is not None:
        sw.call_event(EventRouteUsed, req, call, req.dn)


def on_route_failed(sw: SwitchCore, req: TRouteFailed) -> None:
    if not _routing_point(sw, req, req.dn):
        return
    call = sw.view.call_record(req.conn_id)
    if call is None or call.routing_point is not None:
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, f"call {req.conn_id} was not routed")
        return
    # the view puts the call back at the routing point on this error (it names the call)
    sw.emit(
        EventError(
            switch=sw.name,
            reference_id=req.reference_id,
            dn=req.dn,
            error_code=req.error_code,
            error_message=f"connecting call {call.conn_id} to its destination failed",
            request="TRouteCall",
            conn_id=call.conn_id,
        )
    )
