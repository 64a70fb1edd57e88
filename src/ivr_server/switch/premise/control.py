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
them adopts it (:attr:`PremiseCore.outbound`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from ivr_server.switch import requests as rq
from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    CallEvent,
    EventAttachedDataChanged,
    EventDestinationBusy,
    EventDialing,
    EventEstablished,
    EventHeld,
    EventPartyAdded,
    EventPartyDeleted,
    EventRetrieved,
)
from ivr_server.switch.premise import calls
from ivr_server.switch.premise.core import LOG, Flow, PremiseCall, PremiseCore
from ivr_server.switch.premise.errors import (
    BUSY_CAUSES,
    INVOKE_TIMEOUT_ERROR,
    describe,
    failed_cause_error,
    tlib_error,
)
from ivr_server.switch.userdata import kv_update
from ivr_server.wire.kv import KvList, Node

__all__ = ["CONTROL_ANSWERS", "CONTROL_EVENTS", "CONTROL_REQUESTS", "correlator"]

_CONFERENCES: Final = (rq.TCompleteConference, rq.TSingleStepConference)

CORRELATOR_LIMIT: Final = 32
"""Octets of CSTA ``correlatorData`` (ECMA-269 §12.3.18: at most 32)."""


# -- helpers -------------------------------------------------------------------------------------


def _conn(call: PremiseCall, dn: str) -> m.ConnectionID:
    """The CSTA connection of ``call`` at ``dn``."""
    call_id = None if call.premise_id.startswith("?") else call.premise_id
    return m.ConnectionID(call_id=call_id, device_id=dn)


def _publish(
    sw: PremiseCore,
    cls: type[CallEvent],
    call: PremiseCall,
    dn: str,
    ref: int | None,
    other: str | None = None,
    user_data: KvList | None = None,
) -> None:
    if user_data is None:
        user_data = sw.view.user_data(call.conn_id) or ()
    sw.emit(
        cls(
            switch=sw.name,
            reference_id=ref,
            dn=dn,
            conn_id=call.conn_id,
            call_id=call.call_id,
            ani=call.ani,
            dnis=call.dnis,
            this_queue=call.this_queue,
            other_dn=other if other is not None else call.other_dn,
            user_data=user_data,
        )
    )


def correlator(keys: tuple[str, ...], user_data: KvList) -> str | None:
    """The mirrored keys' ``key=value`` pairs joined by ``;`` within :data:`CORRELATOR_LIMIT`
    octets (a pair that does not fit is left out); ``None`` when none is set (G17)."""
    if not keys:
        return None
    values = {item.Name: item.Val for item in user_data if isinstance(item, Node)}
    pairs: list[str] = []
    size = 0
    for key in keys:
        value = values.get(key)
        if value is None:
            continue
        pair = f"{key}={value}"
        cost = len(pair.encode()) + (1 if pairs else 0)
        if size + cost > CORRELATOR_LIMIT:
            LOG.debug("correlatorData full: %s left out", key)
            continue
        pairs.append(pair)
        size += cost
    return ";".join(pairs) or None


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


def _checked(sw: PremiseCore, req: rq.CallRequest) -> tuple[Any, PremiseCall] | None:
    """The link (``TERR_NO_SWITCH``), the call in the view and on the PBX at ``req.dn``."""
    session = sw.linked(req, req.dn)
    if session is None or sw.call_at(req) is None:
        return None
    call = _port_call(sw, req, req.conn_id)
    return (session, call) if call is not None else None


def _busy_elsewhere(sw: PremiseCore, req: rq.CallRequest, call: PremiseCall) -> bool:
    if call.flow is None:
        return False
    sw.fail(
        req,
        req.dn,
        TErrorCode.TERR_SET_WRONG_STATE,
        f"call {req.conn_id} has a {call.flow.req.name} in progress",
        req.conn_id,
    )
    return True


def _refusal(error: m.NegativeResponse | None) -> tuple[TErrorCode, str]:
    if error is None:
        return INVOKE_TIMEOUT_ERROR, "no answer from the PBX in time"
    return tlib_error(error), describe(error)


def _clear(session: Any, call: PremiseCall, dn: str) -> None:
    """Clear the port's connection in a call a failed request placed (its release comes with
    the PBX's ConnectionCleared)."""
    session.send_request(
        m.ClearConnection(connection_to_be_cleared=_conn(call, dn)), math.inf, dn=dn
    )


def _end(flow: Flow) -> None:
    """The request is done: its calls no longer point to it."""
    for call in (flow.orig, flow.new):
        if call is not None and call.flow is flow:
            call.flow = None


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
        correlator_data=correlator(sw.settings.mirror_keys, req.user_data),
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
            _restore(sw, flow, *_refusal(error))
        return
    if flow is None:
        return
    if flow.new is None:
        _adopt(sw, flow, reply.calling_device)
    _dialed(sw, flow)


# -- consultations: TInitiateTransfer / TInitiateConference, emulated TSingleStepTransfer --------


def on_initiate(sw: PremiseCore, req: rq.TInitiateTransfer) -> None:
    checked = _checked(sw, req)
    if checked is None:
        return
    session, call = checked
    if _busy_elsewhere(sw, req, call):
        return
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
        existing_call=_conn(call, req.dn),
        consulted_device=dest,
        correlator_data=correlator(sw.settings.mirror_keys, data),
    )
    sw.send_for(req, session, request, req.dn)


def _consultation_answered(
    sw: PremiseCore,
    req: rq.TInitiateTransfer | rq.TSingleStepTransfer,
    reply: Any,
    error: Any,
    invoke_id: int,
) -> None:
    orig = sw.call_of(req.conn_id)
    flow = orig.flow if orig is not None else None
    if flow is None or flow.req is not req:
        if reply is None:
            sw.fail(req, req.dn, *_refusal(error), req.conn_id)
        return
    if sw.outbound.get(req.dn) is flow:
        del sw.outbound[req.dn]
    if reply is None:
        _restore(sw, flow, *_refusal(error))
        return
    if flow.new is None:
        _adopt(sw, flow, reply.initiated_call)
    _dialed(sw, flow)


def _adopt(sw: PremiseCore, flow: Flow, conn: m.ConnectionID) -> PremiseCall:
    """The PBX named the call ``flow`` places: it gets its ConnID, dialling at the port."""
    call = sw.calls.get(conn.call_id) if conn.call_id is not None else None
    if call is None:
        if conn.call_id is not None:
            call = sw.new_call(conn.call_id)
        else:
            sw.anonymous += 1
            call = sw.new_call(f"?{flow.dn}#{sw.anonymous}")
    call.at[flow.dn] = "dialing"
    call.other_dn = flow.dest
    call.devices.add(flow.dest)
    if flow.orig is not None:
        call.ani, call.dnis = flow.orig.ani, flow.orig.dnis
    call.flow = flow
    flow.new = call
    return call


def _dialed(sw: PremiseCore, flow: Flow) -> None:
    """The PBX took the request: EventHeld (a consultation), EventDialing, then what the new
    call already did (answered, busy) before the answer came."""
    new = flow.new
    if new is None or flow.dialed:
        return
    flow.dialed = True
    ref = flow.req.reference_id
    orig = flow.orig
    if orig is not None:
        orig.at[flow.dn] = "held"
        _publish(sw, EventHeld, orig, flow.dn, ref)
        data = kv_update(sw.view.user_data(orig.conn_id) or (), getattr(flow.req, "user_data", ()))
    else:
        data = getattr(flow.req, "user_data", ())
    _publish(sw, EventDialing, new, flow.dn, ref, user_data=data)
    if new.at.get(flow.dn) == "connected":
        _answered(sw, flow, new)
    elif flow.busy:
        _busy(sw, flow, new)


def _answered(sw: PremiseCore, flow: Flow, new: PremiseCall) -> None:
    """The far party of the new call answered (or, ``on-alerting``, rings)."""
    new.at[flow.dn] = "connected"
    _publish(sw, EventEstablished, new, flow.dn, None)
    if flow.emulate is None:
        _end(flow)
        return
    flow.emulate = "transferring"
    session = sw.session
    orig = flow.orig
    if session is None or orig is None:
        _end(flow)
        return
    _transfer(sw, session, flow.req, orig, new)


def _busy(sw: PremiseCore, flow: Flow, new: PremiseCall) -> None:
    if flow.emulate is not None:
        _restore(sw, flow, TErrorCode.TERR_CONN_ATMPT_FAIL, f"destination {flow.dest} is busy")
        return
    _publish(sw, EventDestinationBusy, new, flow.dn, None)
    _end(flow)


def _restore(sw: PremiseCore, flow: Flow, code: TErrorCode, text: str) -> None:
    """The request failed after the original may have been held: get it back (ReconnectCall
    when a consultation exists, RetrieveCall when only the hold does), then EventRetrieved and
    the EventError; a MakeCall's call is cleared."""
    req, dn, orig, new = flow.req, flow.dn, flow.orig, flow.new
    LOG.info("switch %s: %s on %s failed: %s", sw.name, req.name, dn, text)
    session = sw.session
    if orig is None:  # MakeCall
        _end(flow)
        sw.fail(req, dn, code, text, new.conn_id if new is not None else None)
        if new is not None and session is not None and dn in new.at:
            _clear(session, new, dn)
        return
    held = orig.at.get(dn) == "held"
    if session is None or not held:
        _end(flow)
        if new is not None and session is not None and dn in new.at:
            _clear(session, new, dn)
        sw.fail(req, dn, code, text, orig.conn_id)
        return
    flow.failure = (code, text)
    restore: m.CstaRequest
    if new is not None and dn in new.at:
        sw.clearing[(new.premise_id, dn)] = req.reference_id
        restore = m.ReconnectCall(active_call=_conn(new, dn), held_call=_conn(orig, dn))
    else:
        restore = m.RetrieveCall(call_to_be_retrieved=_conn(orig, dn))
    sw.restoring[sw.send_for(req, session, restore, dn)] = flow


# -- TSingleStepTransfer -------------------------------------------------------------------------


def on_single_step_transfer(sw: PremiseCore, req: rq.TSingleStepTransfer) -> None:
    checked = _checked(sw, req)
    if checked is None:
        return
    session, call = checked
    if _busy_elsewhere(sw, req, call):
        return
    emulate = sw.settings.emulate_single_step
    if emulate != "off":
        _consult(sw, session, req, call, req.dest, req.user_data, emulate)
        return
    data = sw.view.user_data(call.conn_id) or ()
    if req.user_data:
        data = kv_update(data, req.user_data)
        _publish(sw, EventAttachedDataChanged, call, req.dn, req.reference_id, user_data=data)
    request = m.SingleStepTransferCall(
        active_call=_conn(call, req.dn),
        transferred_to=req.dest,
        correlator_data=correlator(sw.settings.mirror_keys, data),
    )
    sw.send_for(req, session, request, req.dn)
    sw.clearing[(call.premise_id, req.dn)] = req.reference_id


def _single_step_answered(
    sw: PremiseCore, req: Any, reply: Any, error: Any, invoke_id: int
) -> None:
    call = sw.call_of(req.conn_id)
    if reply is None:
        if call is not None:
            sw.clearing.pop((call.premise_id, req.dn), None)
        sw.fail(req, req.dn, *_refusal(error), req.conn_id)
    elif call is not None:
        calls.release_at(sw, call, req.dn, req.reference_id)


# -- TCompleteTransfer / TCompleteConference ----------------------------------------------------


def _both(
    sw: PremiseCore, req: rq.TCompleteTransfer
) -> tuple[Any, PremiseCall, PremiseCall] | None:
    checked = _checked(sw, req)
    if checked is None:
        return None
    session, orig = checked
    consult = _port_call(sw, req, req.consult_conn_id)
    return (session, orig, consult) if consult is not None else None


def _transfer(
    sw: PremiseCore, session: Any, req: Any, orig: PremiseCall, consult: PremiseCall
) -> None:
    dn = req.dn
    sw.clearing[(consult.premise_id, dn)] = req.reference_id
    sw.clearing[(orig.premise_id, dn)] = req.reference_id
    request = m.TransferCall(held_call=_conn(orig, dn), active_call=_conn(consult, dn))
    sw.send_for(req, session, request, dn)


def on_complete_transfer(sw: PremiseCore, req: rq.TCompleteTransfer) -> None:
    both = _both(sw, req)
    if both is not None:
        _transfer(sw, *both[:1], req, both[1], both[2])


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
                sw.clearing.pop((call.premise_id, req.dn), None)
        if flow is not None and emulated:
            _restore(sw, flow, *_refusal(error))
        else:
            sw.fail(req, req.dn, *_refusal(error), req.conn_id)
        return
    if flow is not None and emulated:
        _end(flow)
    order = (orig, consult) if emulated else (consult, orig)
    for call in order:
        if call is not None:
            calls.release_at(sw, call, req.dn, req.reference_id)


def on_complete_conference(sw: PremiseCore, req: rq.TCompleteConference) -> None:
    both = _both(sw, req)
    if both is None:
        return
    session, orig, consult = both
    flow = Flow(req, req.dn, consult.other_dn or "", orig)
    flow.new = consult
    orig.flow = flow
    sw.clearing[(consult.premise_id, req.dn)] = req.reference_id
    request = m.ConferenceCall(held_call=_conn(orig, req.dn), active_call=_conn(consult, req.dn))
    sw.send_for(req, session, request, req.dn)


def _conferenced(sw: PremiseCore, flow: Flow) -> None:
    """A conference of ours is made: the consultation merged (CompleteConf), the original
    retrieved, the party added."""
    _end(flow)
    orig, new, dn, ref = flow.orig, flow.new, flow.dn, flow.req.reference_id
    if new is not None:
        calls.release_at(sw, new, dn, ref)
    if orig is None or dn not in orig.at:
        return
    orig.devices.add(flow.dest)
    orig.added.add(flow.dest)
    if isinstance(flow.req, rq.TCompleteConference):
        orig.at[dn] = "connected"
        _publish(sw, EventRetrieved, orig, dn, ref)
    _publish(sw, EventPartyAdded, orig, dn, ref, other=flow.dest)


def _conference_answered(
    sw: PremiseCore,
    req: rq.TCompleteConference | rq.TSingleStepConference,
    reply: Any,
    error: Any,
    invoke_id: int,
) -> None:
    orig = sw.call_of(req.conn_id)
    flow = orig.flow if orig is not None else None
    if flow is None or flow.req is not req:
        if reply is None:
            sw.fail(req, req.dn, *_refusal(error), req.conn_id)
        return  # done by the Conferenced event
    if reply is not None:
        _conferenced(sw, flow)
        return
    _end(flow)
    if flow.new is not None:
        sw.clearing.pop((flow.new.premise_id, req.dn), None)
    sw.fail(req, req.dn, *_refusal(error), req.conn_id)


# -- TSingleStepConference -----------------------------------------------------------------------


def on_single_step_conference(sw: PremiseCore, req: rq.TSingleStepConference) -> None:
    checked = _checked(sw, req)
    if checked is None:
        return
    session, call = checked
    if _busy_elsewhere(sw, req, call):
        return
    call.flow = Flow(req, req.dn, req.dest, call)
    request = m.SingleStepConferenceCall(active_call=_conn(call, req.dn), device_to_join=req.dest)
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
        request = m.ReconnectCall(active_call=_conn(consult, req.dn), held_call=_conn(orig, req.dn))
    elif orig.at[req.dn] == "held":
        request = m.RetrieveCall(call_to_be_retrieved=_conn(orig, req.dn))
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
        _end(flow)
        orig, consult, failure = flow.orig, flow.new, flow.failure
    if reply is None:
        if consult is not None:
            sw.clearing.pop((consult.premise_id, req.dn), None)
        code, text = _refusal(error)
        if failure is not None:
            code, text = failure[0], f"{failure[1]}; the original call stays held ({text})"
        sw.fail(req, req.dn, code, text, req.conn_id)
        return
    if consult is not None:
        calls.release_at(sw, consult, req.dn, req.reference_id)
    if orig is not None and req.dn in orig.at:
        orig.at[req.dn] = "connected"
        _publish(sw, EventRetrieved, orig, req.dn, req.reference_id)
    if failure is not None:
        sw.fail(req, req.dn, failure[0], failure[1], req.conn_id)


# -- CSTA events of the calls of call control -----------------------------------------------


def _flow_at(
    sw: PremiseCore, conn: m.ConnectionID | None, dn: str
) -> tuple[Flow, PremiseCall] | None:
    """The request and the new call an event on ``conn`` at ``dn`` is about: a known call
    placed by a request, or a new call id while one waits to be named (adopted)."""
    if conn is None or conn.call_id is None:
        return None
    call = sw.calls.get(conn.call_id)
    if call is not None:
        flow = call.flow
        if flow is not None and flow.new is call and flow.dn == dn:
            return flow, call
        return None
    flow = sw.outbound.get(dn)
    if flow is None or flow.new is not None:
        return None
    return flow, _adopt(sw, flow, conn)


def on_initiated(sw: PremiseCore, dn: str, event: m.ServiceInitiatedEvent) -> None:
    _flow_at(sw, event.initiated_connection, dn)


def on_originated(sw: PremiseCore, dn: str, event: m.OriginatedEvent) -> None:
    _flow_at(sw, event.originated_connection, dn)


def on_delivered(sw: PremiseCore, dn: str, event: m.DeliveredEvent) -> None:
    conn = event.connection
    placed = None
    if conn.call_id in sw.calls or calls.device_number(event.calling_device) == dn:
        placed = _flow_at(sw, conn, dn)  # a call we place, or the PBX ringing its port first
    if placed is None:
        calls.on_delivered(sw, dn, event)
        return
    flow, new = placed
    if (
        flow.dialed
        and flow.emulate == "on-alerting"
        and calls.device_number(event.alerting_device) not in (None, dn)
    ):
        _answered(sw, flow, new)


def on_established(sw: PremiseCore, dn: str, event: m.EstablishedEvent) -> None:
    conn = event.established_connection
    placed = _flow_at(sw, conn, dn)
    if placed is None:
        calls.on_established(sw, dn, event)
        return
    flow, new = placed
    answering = calls.device_number(event.answering_device)
    if answering is None or answering == dn or new.at.get(dn) != "dialing":
        return  # the port's own leg of the call it places
    if flow.dialed:
        _answered(sw, flow, new)
    else:
        new.at[dn] = "connected"  # published after EventDialing


def on_failed(sw: PremiseCore, dn: str, event: m.FailedEvent) -> None:
    placed = _flow_at(sw, event.failed_connection, dn)
    if placed is None:
        calls.on_failed(sw, dn, event)
        return
    flow, new = placed
    if new.at.get(dn) != "dialing":
        return
    if event.cause in BUSY_CAUSES:
        if flow.dialed:
            _busy(sw, flow, new)
        else:
            flow.busy = True
        return
    code = failed_cause_error(event.cause)
    if sw.outbound.get(dn) is flow:
        del sw.outbound[dn]
    _restore(sw, flow, code, f"the call to {flow.dest} failed (CSTA cause {event.cause})")


def on_connection_cleared(sw: PremiseCore, dn: str, event: m.ConnectionClearedEvent) -> None:
    """A conference party leaving is EventPartyDeleted; the consultation's far party leaving
    ends an emulated transfer (the original is retrieved, EventError)."""
    conn = event.dropped_connection
    call = sw.calls.get(conn.call_id) if conn.call_id is not None else None
    dropped = calls.device_number(conn.device_id) or calls.device_number(event.releasing_device)
    if call is not None and dropped is not None and dropped in call.added and dn in call.at:
        call.added.discard(dropped)
        _publish(sw, EventPartyDeleted, call, dn, None, other=dropped)
    flow = call.flow if call is not None else None
    calls.on_connection_cleared(sw, dn, event)
    if flow is not None and flow.new is None and flow.emulate in ("on-answer", "on-alerting"):
        _restore(sw, flow, TErrorCode.TERR_CONN_ATMPT_FAIL, f"{flow.dest} hung up")


def on_transfered(sw: PremiseCore, dn: str, event: m.TransferedEvent) -> None:
    """The port transferred: both its calls leave (the consultation first), with the request's
    ReferenceID when one is waiting."""
    if calls.device_number(event.transferring_device) != dn or event.secondary_old_call is None:
        calls.on_transfered(sw, dn, event)
        return
    primary = sw.calls.get(event.primary_old_call.call_id or "")
    secondary = sw.calls.get(event.secondary_old_call.call_id or "")
    pair = [c for c in (secondary, primary) if c is not None and dn in c.at]
    # the consultation (not held) leaves first; an emulated single-step transfer's original first
    pair.sort(key=lambda c: -1 if _emulated(c) else int(c.at[dn] == "held"))
    for call in pair:
        if call.flow is not None:
            _end(call.flow)
        calls.release_at(sw, call, dn)


def _emulated(call: PremiseCall) -> bool:
    flow = call.flow
    return flow is not None and flow.orig is call and flow.emulate is not None


def on_conferenced(sw: PremiseCore, dn: str, event: m.ConferencedEvent) -> None:
    """The PBX made a conference: ours (its request's events, once), then the call's parties
    and a new call id kept under the ConnID."""
    for old in (event.primary_old_call, event.secondary_old_call):
        call = sw.calls.get(old.call_id or "") if old is not None else None
        flow = call.flow if call is not None else None
        orig = flow.orig if flow is not None else None
        if flow is not None and isinstance(flow.req, _CONFERENCES) and orig and dn in orig.at:
            _conferenced(sw, flow)
    calls.on_conferenced(sw, dn, event)


def link_lost(sw: PremiseCore) -> None:
    """The link dropped: the requests waiting for an answer were refused (``TERR_NO_SWITCH``);
    the calls they placed or held forget them. Consultations and MakeCalls already dialled keep
    theirs (the far party's answer or busy still comes after a resync)."""
    sw.outbound.clear()
    sw.restoring.clear()
    for call in sw.calls.values():
        flow = call.flow
        if flow is not None and (not flow.dialed or flow.emulate is not None):
            _end(flow)


# -- tables --------------------------------------------------------------------------------------

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

CONTROL_EVENTS: Final[Mapping[type[m.CstaEvent], Callable[[PremiseCore, str, Any], None]]] = {
    m.ServiceInitiatedEvent: on_initiated,
    m.OriginatedEvent: on_originated,
    m.DeliveredEvent: on_delivered,
    m.EstablishedEvent: on_established,
    m.FailedEvent: on_failed,
    m.ConnectionClearedEvent: on_connection_cleared,
    m.TransferedEvent: on_transfered,
    m.ConferencedEvent: on_conferenced,
}
"""CSTA events call control reads before (or instead of) the plain call handlers of
:mod:`~ivr_server.switch.premise.calls` (merged over them in the switch's event table)."""
