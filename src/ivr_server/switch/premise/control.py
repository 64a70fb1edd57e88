"""Call control on the premise PBX: the T-Library call-control requests as CSTA services, the
PBX's answers, and the events of the calls they place, as the T-Library events the call side
expects (MODES-AND-HA §2.5; docs/behind.md "Call control").

==========================  =====================================  ===============================
T-Library request           CSTA service                           events published, in order
==========================  =====================================  ===============================
TMakeCall                   MakeCall                               EventDialing (new call); later
                                                                   EventEstablished or
                                                                   EventDestinationBusy
TSingleStepTransfer         SingleStepTransferCall                 EventAttachedDataChanged (with
                                                                   user data), EventReleased (port)
  emulated (G4)             ConsultationCall, then TransferCall    EventHeld, EventDialing,
                            on answer / on alerting                EventEstablished, EventReleased
TInitiateTransfer/-Conf.    ConsultationCall                       EventHeld, EventDialing; later
                                                                   EventEstablished or
                                                                   EventDestinationBusy
TCompleteTransfer           TransferCall                           EventReleased (consultation),
                                                                   EventReleased (original)
TCompleteConference         ConferenceCall                         EventReleased (consultation),
                                                                   EventRetrieved, EventPartyAdded
TSingleStepConference       SingleStepConferenceCall               EventPartyAdded; later
                                                                   EventPartyDeleted
TReconnectCall              ReconnectCall (RetrieveCall when the   EventReleased (consultation),
                            consultation is already gone)          EventRetrieved
==========================  =====================================  ===============================

Events that answer a request carry its ReferenceID and come from the PBX's positive answer (or
from the event that shows the same, whichever is first: a connection's release is published once,
:func:`~ivr_server.switch.premise.calls.release_at`). A refusal, a ``Failed`` other than busy,
or no answer within the invoke timeout is an EventError with the G12 code, after the original
call is back when it had been held: RetrieveCall (or ReconnectCall when a consultation exists),
then EventRetrieved, then the EventError. A busy destination is EventDestinationBusy, not an
error. The consultation or the MakeCall's call is a new premise call id, hence its own ConnID;
the PBX may name it in events before its answer (ServiceInitiated, Originated): the first of
them adopts it (:mod:`~ivr_server.switch.premise.placed` follows those calls).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ivr_server.switch import requests as rq
from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import EventAttachedDataChanged, EventRetrieved
from ivr_server.switch.premise import calls, placed
from ivr_server.switch.premise.core import Flow, PremiseCall, PremiseCore
from ivr_server.switch.userdata import kv_update
from ivr_server.wire.kv import KvList

__all__ = ["CONTROL_ANSWERS", "CONTROL_REQUESTS"]


def _port_call(sw: PremiseCore, req: rq.CallRequest, conn_id: str) -> PremiseCall | None:
    """The premise call of ``conn_id`` at the request's DN; else EventError
    ``TERR_INV_CONNID``."""
    call = sw.call_of(conn_id)
    if call is None or req.dn not in call.at:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_INV_CONNID,
            f"call {conn_id} is not at DN {req.dn} on the PBX",
            conn_id,
        )
        return None
    return call


def _checked(
    sw: PremiseCore, req: rq.CallRequest, *, free: bool = True
) -> tuple[Any, PremiseCall] | None:
    """The link (``TERR_NO_SWITCH``), the call in the view and on the PBX at ``req.dn``
    (``TERR_INV_CONNID``), with no other call-control request in progress on it
    (``TERR_SET_WRONG_STATE``)."""
    session = sw.linked(req, req.dn)
    if session is None or sw.call_at(req) is None:
        return None
    call = _port_call(sw, req, req.conn_id)
    if call is None:
        return None
    if free and call.flow is not None:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_SET_WRONG_STATE,
            f"call {req.conn_id} has a {call.flow.req.name} in progress",
            req.conn_id,
        )
        return None
    return session, call


# -- TMakeCall -----------------------------------------------------------------------------------


def on_make_call(sw: PremiseCore, req: rq.TMakeCall) -> None:
    session = sw.linked(req, req.dn)
    if session is None or sw.address(req, req.dn) is None:
        return
    flow = Flow(req, req.dn, req.dest, None)
    sw.outbound[req.dn] = flow
    request = m.MakeCall(
        calling_device=req.dn,
        called_directory_number=req.dest,
        correlator_data=placed.correlator(sw.settings.mirror_keys, req.user_data),
    )
    sw.send_for(req, session, request, req.dn)


def _make_call_answered(
    sw: PremiseCore, req: rq.TMakeCall, reply: Any, error: Any, invoke_id: int
) -> None:
    flow = sw.outbound.get(req.dn)
    if flow is not None and flow.req is req:
        del sw.outbound[req.dn]
    else:
        flow = None  # a Failed event already ended it
    if reply is None:
        if flow is not None:
            placed.restore(sw, flow, *placed.refusal(error))
        return
    if flow is None:
        return
    if flow.new is None:
        placed.adopt(sw, flow, reply.calling_device)
    placed.dialed(sw, flow)


# -- consultations: TInitiateTransfer / TInitiateConference, emulated TSingleStepTransfer --------


def on_initiate(sw: PremiseCore, req: rq.TInitiateTransfer) -> None:
    checked = _checked(sw, req)
    if checked is None:
        return
    session, call = checked
    _consult(sw, session, req, call, req.dest, req.user_data)


def _consult(
    sw: PremiseCore,
    session: Any,
    req: rq.CallRequest,
    call: PremiseCall,
    dest: str,
    user_data: KvList,
    emulate: str | None = None,
) -> None:
    flow = Flow(req, req.dn, dest, call)
    flow.emulate = emulate
    call.flow = flow
    sw.outbound[req.dn] = flow
    data = kv_update(sw.view.user_data(call.conn_id) or (), user_data)
    request = m.ConsultationCall(
        existing_call=placed.connection(call, req.dn),
        consulted_device=dest,
        correlator_data=placed.correlator(sw.settings.mirror_keys, data),
    )
    sw.send_for(req, session, request, req.dn)


def _own_flow(sw: PremiseCore, req: rq.CallRequest, reply: Any, error: Any) -> Flow | None:
    """The request's flow on its call; ``None`` when it already ended (an event did its work;
    a refusal is then answered here)."""
    orig = sw.call_of(req.conn_id)
    flow = orig.flow if orig is not None else None
    if flow is None or flow.req is not req:
        if reply is None:
            sw.fail(req, req.dn, *placed.refusal(error), req.conn_id)
        return None
    return flow


def _consultation_answered(
    sw: PremiseCore,
    req: rq.TInitiateTransfer | rq.TSingleStepTransfer,
    reply: Any,
    error: Any,
    invoke_id: int,
) -> None:
    flow = _own_flow(sw, req, reply, error)
    if flow is None:
        return
    if sw.outbound.get(req.dn) is flow:
        del sw.outbound[req.dn]
    if reply is None:
        placed.restore(sw, flow, *placed.refusal(error))
        return
    if flow.new is None:
        placed.adopt(sw, flow, reply.initiated_call)
    placed.dialed(sw, flow)


# -- TSingleStepTransfer -------------------------------------------------------------------------


def on_single_step_transfer(sw: PremiseCore, req: rq.TSingleStepTransfer) -> None:
    checked = _checked(sw, req)
    if checked is None:
        return
    session, call = checked
    emulate = sw.settings.emulate_single_step
    if emulate != "off":
        _consult(sw, session, req, call, req.dest, req.user_data, emulate)
        return
    data = sw.view.user_data(call.conn_id) or ()
    if req.user_data:
        data = kv_update(data, req.user_data)
        calls.call_event(
            sw, EventAttachedDataChanged, call, req.dn, req.reference_id, user_data=data
        )
    request = m.SingleStepTransferCall(
        active_call=placed.connection(call, req.dn),
        transferred_to=req.dest,
        correlator_data=placed.correlator(sw.settings.mirror_keys, data),
    )
    sw.send_for(req, session, request, req.dn)
    sw.transfers[(call.premise_id, req.dn)] = req.reference_id
    sw.hand_over(call, req.dest, data)


def _single_step_answered(
    sw: PremiseCore, req: Any, reply: Any, error: Any, invoke_id: int
) -> None:
    call = sw.call_of(req.conn_id)
    if reply is None:
        if call is not None:
            sw.transfers.pop((call.premise_id, req.dn), None)
            sw.handed.pop(call.premise_id, None)
        sw.fail(req, req.dn, *placed.refusal(error), req.conn_id)
    elif call is not None:
        calls.release_at(sw, call, req.dn, req.reference_id)


# -- TCompleteTransfer / TCompleteConference ----------------------------------------------------


def _both(
    sw: PremiseCore, req: rq.TCompleteTransfer
) -> tuple[Any, PremiseCall, PremiseCall] | None:
    checked = _checked(sw, req, free=False)
    if checked is None:
        return None
    session, orig = checked
    consult = _port_call(sw, req, req.consult_conn_id)
    if consult is not None and orig.flow is not None:
        if orig.flow.new is not consult or orig.flow.emulate is not None:
            sw.fail(
                req,
                req.dn,
                TErrorCode.TERR_SET_WRONG_STATE,
                f"call {req.conn_id} has a {orig.flow.req.name} in progress",
                req.conn_id,
            )
            return None
        placed.end(orig.flow)  # completed while the consultation still rings
    return (session, orig, consult) if consult is not None else None


def on_complete_transfer(sw: PremiseCore, req: rq.TCompleteTransfer) -> None:
    both = _both(sw, req)
    if both is not None:
        placed.transfer(sw, *both[:1], req, both[1], both[2])


def _transfer_answered(sw: PremiseCore, req: Any, reply: Any, error: Any, invoke_id: int) -> None:
    orig = sw.call_of(req.conn_id)
    flow = orig.flow if orig is not None else None
    emulated = flow is not None and flow.req is req
    consult = (
        flow.new
        if flow is not None and emulated
        else sw.call_of(getattr(req, "consult_conn_id", ""))
    )
    if reply is None:
        for call in (orig, consult):
            if call is not None:
                sw.transfers.pop((call.premise_id, req.dn), None)
        if flow is not None and emulated:
            placed.restore(sw, flow, *placed.refusal(error))
        else:
            sw.fail(req, req.dn, *placed.refusal(error), req.conn_id)
        return
    if flow is not None and emulated:
        placed.end(flow)
    order = (orig, consult) if emulated else (consult, orig)
    for call in order:
        if call is not None:
            calls.release_at(sw, call, req.dn, req.reference_id)


def on_complete_conference(sw: PremiseCore, req: rq.TCompleteConference) -> None:
    both = _both(sw, req)
    if both is None:
        return
    session, orig, consult = both
    flow = Flow(req, req.dn, consult.dialed or consult.other_dn or "", orig)
    flow.new = consult
    orig.flow = flow
    sw.clearing[(consult.premise_id, req.dn)] = req.reference_id
    request = m.ConferenceCall(
        held_call=placed.connection(orig, req.dn), active_call=placed.connection(consult, req.dn)
    )
    sw.send_for(req, session, request, req.dn)


def _conference_answered(
    sw: PremiseCore,
    req: rq.TCompleteConference | rq.TSingleStepConference,
    reply: Any,
    error: Any,
    invoke_id: int,
) -> None:
    flow = _own_flow(sw, req, reply, error)
    if flow is None:
        return  # done by the Conferenced event
    if reply is not None:
        placed.conferenced(sw, flow)
        return
    placed.end(flow)
    if flow.new is not None:
        sw.clearing.pop((flow.new.premise_id, req.dn), None)
    sw.fail(req, req.dn, *placed.refusal(error), req.conn_id)


# -- TSingleStepConference -----------------------------------------------------------------------


def on_single_step_conference(sw: PremiseCore, req: rq.TSingleStepConference) -> None:
    checked = _checked(sw, req)
    if checked is None:
        return
    session, call = checked
    call.flow = Flow(req, req.dn, req.dest, call)
    request = m.SingleStepConferenceCall(
        active_call=placed.connection(call, req.dn), device_to_join=req.dest
    )
    sw.send_for(req, session, request, req.dn)


# -- TReconnectCall ------------------------------------------------------------------------------


def on_reconnect(sw: PremiseCore, req: rq.TReconnectCall) -> None:
    session = sw.linked(req, req.dn)
    if session is None or sw.address(req, req.dn) is None:
        return
    orig = _port_call(sw, req, req.held_conn_id)
    if orig is None:
        return
    consult = sw.call_of(req.conn_id)
    request: m.CstaRequest
    if consult is not None and req.dn in consult.at:
        sw.clearing[(consult.premise_id, req.dn)] = req.reference_id
        request = m.ReconnectCall(
            active_call=placed.connection(consult, req.dn),
            held_call=placed.connection(orig, req.dn),
        )
    elif orig.at[req.dn] == "held":
        request = m.RetrieveCall(call_to_be_retrieved=placed.connection(orig, req.dn))
    else:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_SET_WRONG_STATE,
            f"call {req.held_conn_id} is not held and has no consultation",
            req.held_conn_id,
        )
        return
    sw.send_for(req, session, request, req.dn)


def _reconnect_answered(sw: PremiseCore, req: Any, reply: Any, error: Any, invoke_id: int) -> None:
    """ReconnectCall / RetrieveCall answered: for a TReconnectCall, or to restore the original
    of a failed request (:attr:`PremiseCore.restoring`; its EventError follows
    EventRetrieved)."""
    flow = sw.restoring.pop(invoke_id, None)
    if flow is None:
        orig, consult = sw.call_of(req.held_conn_id), sw.call_of(req.conn_id)
        failure = None
    else:
        placed.end(flow)
        orig, consult, failure = flow.orig, flow.new, flow.failure
    if reply is None:
        if consult is not None:
            sw.clearing.pop((consult.premise_id, req.dn), None)
        code, text = placed.refusal(error)
        if failure is not None:
            code, text = failure[0], f"{failure[1]}; the original call stays held ({text})"
        sw.fail(req, req.dn, code, text, req.conn_id)
        return
    if consult is not None:
        calls.release_at(sw, consult, req.dn, req.reference_id)
    if orig is not None and req.dn in orig.at:
        orig.at[req.dn] = "connected"
        calls.call_event(sw, EventRetrieved, orig, req.dn, req.reference_id)
    if failure is not None:
        sw.fail(req, req.dn, failure[0], failure[1], req.conn_id)


CONTROL_REQUESTS: Final[Mapping[type[rq.SwitchRequest], Callable[[PremiseCore, Any], None]]] = {
    rq.TMakeCall: on_make_call,
    rq.TSingleStepTransfer: on_single_step_transfer,
    rq.TInitiateTransfer: on_initiate,
    rq.TInitiateConference: on_initiate,
    rq.TCompleteTransfer: on_complete_transfer,
    rq.TCompleteConference: on_complete_conference,
    rq.TSingleStepConference: on_single_step_conference,
    rq.TReconnectCall: on_reconnect,
}
"""Call-control request → handler (merged into the switch's request table)."""

CONTROL_ANSWERS: Final[
    Mapping[type[m.CstaRequest], Callable[[PremiseCore, Any, Any, Any, int], None]]
] = {
    m.MakeCall: _make_call_answered,
    m.ConsultationCall: _consultation_answered,
    m.SingleStepTransferCall: _single_step_answered,
    m.TransferCall: _transfer_answered,
    m.ConferenceCall: _conference_answered,
    m.SingleStepConferenceCall: _conference_answered,
    m.ReconnectCall: _reconnect_answered,
    m.RetrieveCall: _reconnect_answered,
}
"""CSTA service → what its answer (response, negative response ``error``, or neither: no
answer in time) does for the T-Library request waiting for it."""
