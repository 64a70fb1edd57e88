"""The simulated PBX's call-control services (issue 23, MODES-AND-HA §2.5): MakeCall,
SingleStepTransferCall, ConsultationCall, TransferCall, ConferenceCall, SingleStepConferenceCall,
ReconnectCall, RetrieveCall, and a conference party's ClearConnection.

Each service checks the request against the PBX's calls, asks its virtual switch for the same
thing in T-Library terms (:mod:`ivr_server.switch.virtual.control`: a refusal there becomes the
CSTA error), and answers positively with the CSTA events that follow, on the monitors of every
device involved (docs/csta-sim.md "Call control"):

==========================  ======================================================================
service                     events after the positive response
==========================  ======================================================================
MakeCall                    ServiceInitiated, Originated (caller); Delivered (both) or Failed
                            cause ``busy`` (caller)
SingleStepTransferCall      Transfered (all), Delivered at the destination
ConsultationCall            Held (original call), ServiceInitiated, Originated, then Delivered or
                            Failed ``busy`` (consultation call)
TransferCall                Transfered (primary: the held call, secondary: the consultation)
ConferenceCall              Conferenced (the consulted party added to the held call)
SingleStepConferenceCall    Conferenced (the party added at once)
ReconnectCall               ConnectionCleared, CallCleared (consultation, if still there),
                            Retrieved
RetrieveCall                Retrieved
==========================  ======================================================================

A destination must be a port or extension of the PBX (else ``invalidDestination``); one busy
(set busy, or in a call) fails a placed call with Failed ``busy`` and refuses the single-step
services with ``resourceBusy``. A called DN answers after its answer delay, or when the operator
says (``POST /api/v1/calls/{id}/answer``); set ``no_answer``, it rings until hung up.
"""

from __future__ import annotations

__all__ = ["CONTROL_SERVICES", "leave_conference"]

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ivr_server.sim.model import LIVE, SimCall
from ivr_server.switch import requests as rq
from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import EventDialing, EventError, SwitchEvent

if TYPE_CHECKING:
    from ivr_server.sim.pbx import SimPbx

Outcome = m.NegativeResponse | tuple[m.CstaMessage, Callable[[], None]]

_INVALID_CALL: Final = m.CSTAErrorCode(category="operation", value="invalidCallID")
_INVALID_CONNECTION: Final = m.CSTAErrorCode(category="operation", value="invalidConnectionID")
_INVALID_DEST: Final = m.CSTAErrorCode(category="operation", value="invalidDestination")
_BUSY: Final = m.CSTAErrorCode(category="systemResourceAvailability", value="resourceBusy")
_WRONG_STATE: Final = m.CSTAErrorCode(category="stateIncompatibility", value="invalidObjectState")
_NOT_SERVED: Final = m.CSTAErrorCode(category="operation", value="serviceNotSupported")

_SWITCH_ERRORS: Final[dict[int, m.CSTAErrorCode]] = {
    TErrorCode.TERR_INV_CALD_DN: _INVALID_DEST,
    TErrorCode.TERR_RES_UNAVAIL: _BUSY,
    TErrorCode.TERR_OUT_OF_SERVICE: m.CSTAErrorCode(
        category="systemResourceAvailability", value="resourceOutOfService"
    ),
    TErrorCode.TERR_SET_WRONG_STATE: _WRONG_STATE,
    TErrorCode.TERR_INV_CONNID: _INVALID_CONNECTION,
    TErrorCode.TERR_INVALID_ATTR: _INVALID_CONNECTION,
    TErrorCode.TERR_UNSUP_OPER: m.CSTAErrorCode(
        category="operation", value="requestIncompatibleWithObject"
    ),
}
"""A call-control request the virtual switch refused → the CSTA error the PBX answers."""


# -- what the requests name ----------------------------------------------------------------------


def _call_at(pbx: SimPbx, connection: m.ConnectionID) -> SimCall | m.CSTAErrorCode:
    """The live call of ``connection``, whose device must be its ``dn`` or its ``ani`` (the
    port that placed it)."""
    call = pbx.calls.get(connection.call_id or "")
    if call is None or call.state not in LIVE:
        return _INVALID_CALL
    if connection.device_id not in (call.dn, call.ani) or call.conn_id is None:
        return _INVALID_CONNECTION
    return call


def _destination(pbx: SimPbx, dest: str) -> m.CSTAErrorCode | None:
    """``dest`` can take a call: a port or extension of the PBX."""
    return None if pbx.can_take_calls(dest) else _INVALID_DEST


def _busy(pbx: SimPbx, dest: str) -> bool:
    return pbx.settings[dest].busy or pbx.live_at(dest) is not None


def _ask(pbx: SimPbx, request: rq.SwitchRequest) -> list[SwitchEvent] | m.CSTAErrorCode:
    """The virtual switch's events for ``request``, or the CSTA error of its refusal."""
    events = pbx.ask(request)
    error = next((e for e in events if isinstance(e, EventError)), None)
    if error is not None:
        return _SWITCH_ERRORS.get(
            int(error.error_code), m.CSTAErrorCode(category="operation", value="generic")
        )
    return events


def _conn(call: SimCall, device: str) -> m.ConnectionID:
    return m.ConnectionID(call_id=call.id, device_id=device)


# -- placing calls -------------------------------------------------------------------------------


def _placed(pbx: SimPbx, events: list[SwitchEvent], port: str, dest: str, now: float) -> SimCall:
    """The call ``port`` placed to ``dest`` (its EventDialing in ``events``), in the PBX's table,
    ringing at ``dest`` (or ``dialing``: the destination was busy)."""
    dialing = next(e for e in events if isinstance(e, EventDialing))
    busy = _busy(pbx, dest)
    call = pbx.new_call(
        ani=port, dn=dest, conn_id=dialing.conn_id, state="dialing" if busy else "alerting"
    )
    return call


def _dial_events(pbx: SimPbx, call: SimCall, now: float) -> None:
    """What a placed call shows after the response: initiated, originated, then delivered (and
    answered when its DN's delay says) or failed busy."""
    port, dest = call.ani, call.dn
    pbx.emit(
        (port,),
        m.ServiceInitiatedEvent(
            monitor_cross_ref_id="",
            initiated_connection=_conn(call, port),
            initiating_device=port,
            local_connection_info="initiated",
            cause="newCall",
        ),
    )
    pbx.emit(
        (port,),
        m.OriginatedEvent(
            monitor_cross_ref_id="",
            originated_connection=_conn(call, port),
            calling_device=port,
            called_device=dest,
            local_connection_info="connected",
            cause="newCall",
        ),
    )
    if call.state == "dialing":
        pbx.emit(
            (port,),
            m.FailedEvent(
                monitor_cross_ref_id="",
                failed_connection=_conn(call, dest),
                failing_device=dest,
                called_device=dest,
                local_connection_info="connected",
                cause="busy",
            ),
        )
        return
    pbx.ring(call, port, "newCall", now)


def make_call(pbx: SimPbx, request: m.MakeCall, now: float) -> Outcome:
    port, dest = request.calling_device, request.called_directory_number
    if not pbx.can_take_calls(port):
        return m.CSTAErrorCode(category="operation", value="invalidCallingDevice")
    bad = _destination(pbx, dest)
    if bad is not None:
        return bad
    events = _ask(pbx, rq.TMakeCall(reference_id=pbx.next_ref(), dn=port, dest=dest))
    if isinstance(events, m.CSTAErrorCode):
        return events
    call = _placed(pbx, events, port, dest, now)
    return m.MakeCallResponse(calling_device=_conn(call, port)), lambda: _dial_events(
        pbx, call, now
    )


def consultation_call(pbx: SimPbx, request: m.ConsultationCall, now: float) -> Outcome:
    orig = _call_at(pbx, request.existing_call)
    if isinstance(orig, m.CSTAErrorCode):
        return orig
    port, dest = orig.dn, request.consulted_device
    if orig.state != "connected" or orig.held:
        return _WRONG_STATE
    bad = _destination(pbx, dest)
    if bad is not None:
        return bad
    assert orig.conn_id is not None
    events = _ask(
        pbx,
        rq.TInitiateTransfer(reference_id=pbx.next_ref(), conn_id=orig.conn_id, dn=port, dest=dest),
    )
    if isinstance(events, m.CSTAErrorCode):
        return events
    consult = _placed(pbx, events, port, dest, now)
    orig.held, orig.consultation = True, consult.id

    def after() -> None:
        pbx.emit(
            (port, orig.ani),
            m.HeldEvent(
                monitor_cross_ref_id="",
                held_connection=_conn(orig, port),
                holding_device=port,
                local_connection_info="hold",
                cause="consultation",
            ),
        )
        _dial_events(pbx, consult, now)

    return m.ConsultationCallResponse(initiated_call=_conn(consult, port)), after


# -- single steps --------------------------------------------------------------------------------


def _single_step(
    pbx: SimPbx,
    active: m.ConnectionID,
    dest: str,
    kind: type[rq.TSingleStepTransfer] | type[rq.TSingleStepConference],
) -> SimCall | m.CSTAErrorCode:
    """Checks of a single-step service (the call, a free destination), then the virtual switch
    asked for the same: the call, or the CSTA error."""
    call = _call_at(pbx, active)
    if isinstance(call, m.CSTAErrorCode):
        return call
    bad = _destination(pbx, dest)
    if bad is not None:
        return bad
    if _busy(pbx, dest):
        return _BUSY
    assert call.conn_id is not None
    ref = pbx.next_ref()
    events = _ask(pbx, kind(reference_id=ref, conn_id=call.conn_id, dn=call.dn, dest=dest))
    return events if isinstance(events, m.CSTAErrorCode) else call


def single_step_transfer(pbx: SimPbx, request: m.SingleStepTransferCall, now: float) -> Outcome:
    if not pbx.options.single_step_transfer:
        return _NOT_SERVED
    dest = request.transferred_to
    call = _single_step(pbx, request.active_call, dest, rq.TSingleStepTransfer)
    if isinstance(call, m.CSTAErrorCode):
        return call
    port = call.dn

    def after() -> None:
        pbx.emit(
            (port, dest, call.ani),
            m.TransferedEvent(
                monitor_cross_ref_id="",
                primary_old_call=_conn(call, port),
                transferring_device=port,
                transferred_to_device=dest,
                local_connection_info="null",
                cause="singleStepTransfer",
            ),
        )
        pbx.move(call, dest)
        pbx.ring(call, port, "singleStepTransfer", now)

    return m.SingleStepTransferCallResponse(transferred_call=_conn(call, dest)), after


def single_step_conference(pbx: SimPbx, request: m.SingleStepConferenceCall, now: float) -> Outcome:
    dest = request.device_to_join
    call = _single_step(pbx, request.active_call, dest, rq.TSingleStepConference)
    if isinstance(call, m.CSTAErrorCode):
        return call
    port = call.dn

    def after() -> None:
        pbx.join(call, dest)
        _conferenced(pbx, call, None, port, dest, "singleStepConference")

    return m.SingleStepConferenceCallResponse(conference_call=_conn(call, port)), after


def _conferenced(
    pbx: SimPbx, call: SimCall, consult: SimCall | None, port: str, added: str, cause: str
) -> None:
    pbx.emit(
        (port, call.ani, *call.joined),
        m.ConferencedEvent(
            monitor_cross_ref_id="",
            primary_old_call=_conn(call, port),
            secondary_old_call=_conn(consult, port) if consult is not None else None,
            conferencing_device=port,
            added_party=added,
            local_connection_info="connected",
            cause=cause,
        ),
    )


# -- ending a consultation -----------------------------------------------------------------------


def _held_and_active(
    pbx: SimPbx,
    request: m.TransferCall | m.ConferenceCall,
    kind: type[rq.TCompleteTransfer] | type[rq.TCompleteConference],
) -> tuple[SimCall, SimCall] | m.CSTAErrorCode:
    """The held call and the consultation of TransferCall / ConferenceCall, checked, then the
    virtual switch asked for the same; else the CSTA error."""
    orig = _call_at(pbx, request.held_call)
    if isinstance(orig, m.CSTAErrorCode):
        return orig
    if not orig.held:
        return _WRONG_STATE
    consult = _call_at(pbx, request.active_call)
    if isinstance(consult, m.CSTAErrorCode):
        return consult
    if consult.state == "dialing":
        return _WRONG_STATE  # the destination was busy: nobody to join
    assert orig.conn_id is not None and consult.conn_id is not None
    ref = pbx.next_ref()
    events = _ask(
        pbx,
        kind(reference_id=ref, conn_id=orig.conn_id, consult_conn_id=consult.conn_id, dn=orig.dn),
    )
    return events if isinstance(events, m.CSTAErrorCode) else (orig, consult)


def transfer_call(pbx: SimPbx, request: m.TransferCall, now: float) -> Outcome:
    calls = _held_and_active(pbx, request, rq.TCompleteTransfer)
    if isinstance(calls, m.CSTAErrorCode):
        return calls
    orig, consult = calls
    port, dest = orig.dn, consult.dn

    def after() -> None:
        pbx.emit(
            (port, dest, orig.ani),
            m.TransferedEvent(
                monitor_cross_ref_id="",
                primary_old_call=_conn(orig, port),
                secondary_old_call=_conn(consult, port),
                transferring_device=port,
                transferred_to_device=dest,
                local_connection_info="null",
                cause="transfer",
            ),
        )
        orig.held, orig.consultation = False, None
        state = consult.state
        pbx.merge(consult, orig)
        pbx.move(orig, dest, state=state)

    return m.TransferCallResponse(transferred_call=_conn(orig, dest)), after


def conference_call(pbx: SimPbx, request: m.ConferenceCall, now: float) -> Outcome:
    calls = _held_and_active(pbx, request, rq.TCompleteConference)
    if isinstance(calls, m.CSTAErrorCode):
        return calls
    orig, consult = calls
    port, dest = orig.dn, consult.dn

    def after() -> None:
        orig.held, orig.consultation = False, None
        pbx.merge(consult, orig)
        pbx.join(orig, dest)
        _conferenced(pbx, orig, consult, port, dest, "conference")

    return m.ConferenceCallResponse(conference_call=_conn(orig, port)), after


def _retrieve(
    pbx: SimPbx, orig: SimCall, consult: SimCall | None, request: m.CstaRequest
) -> Outcome:
    port = orig.dn
    assert orig.conn_id is not None
    live = consult is not None and consult.state in LIVE
    events = _ask(
        pbx,
        rq.TReconnectCall(
            reference_id=pbx.next_ref(),
            conn_id=consult.conn_id or "" if consult is not None and live else "",  # "": gone
            held_conn_id=orig.conn_id,
            dn=port,
        ),
    )
    if isinstance(events, m.CSTAErrorCode):
        return events

    def after() -> None:
        if consult is not None and live:
            pbx.cleared(consult, port)
        orig.held, orig.consultation = False, None
        pbx.emit(
            (port, orig.ani, *orig.joined),
            m.RetrievedEvent(
                monitor_cross_ref_id="",
                retrieved_connection=_conn(orig, port),
                retrieving_device=port,
                local_connection_info="connected",
                cause="normal",
            ),
        )

    response: m.CstaMessage = (
        m.ReconnectCallResponse()
        if isinstance(request, m.ReconnectCall)
        else m.RetrieveCallResponse()
    )
    return response, after


def reconnect_call(pbx: SimPbx, request: m.ReconnectCall, now: float) -> Outcome:
    orig = _call_at(pbx, request.held_call)
    if isinstance(orig, m.CSTAErrorCode):
        return orig
    if not orig.held:
        return _WRONG_STATE
    consult = pbx.calls.get(request.active_call.call_id or "")
    return _retrieve(pbx, orig, consult, request)


def retrieve_call(pbx: SimPbx, request: m.RetrieveCall, now: float) -> Outcome:
    orig = _call_at(pbx, request.call_to_be_retrieved)
    if isinstance(orig, m.CSTAErrorCode):
        return orig
    if not orig.held:
        return _WRONG_STATE
    consult = pbx.calls.get(orig.consultation or "")
    return _retrieve(pbx, orig, consult, request)


# -- a conference party leaves -------------------------------------------------------------------


def leave_conference(pbx: SimPbx, call: SimCall, device: str) -> None:
    """``device`` (the call's DN or a joined party) leaves a conference that goes on:
    ConnectionCleared on every party's monitors, no CallCleared."""
    assert call.conn_id is not None
    pbx.ask(rq.TReleaseCall(reference_id=pbx.next_ref(), conn_id=call.conn_id, dn=device))
    pbx.emit(
        (call.dn, call.ani, *call.joined),
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="",
            dropped_connection=_conn(call, device),
            releasing_device=device,
            local_connection_info="connected",
            cause="normalClearing",
        ),
    )
    pbx.part(call, device)


CONTROL_SERVICES: Final[dict[type[m.CstaRequest], Callable[[SimPbx, Any, float], Outcome]]] = {
    m.MakeCall: make_call,
    m.SingleStepTransferCall: single_step_transfer,
    m.ConsultationCall: consultation_call,
    m.TransferCall: transfer_call,
    m.ConferenceCall: conference_call,
    m.SingleStepConferenceCall: single_step_conference,
    m.ReconnectCall: reconnect_call,
    m.RetrieveCall: retrieve_call,
}
"""The call-control services: CSTA request type → its handler (given the PBX's clock)."""
