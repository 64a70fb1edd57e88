"""The virtual switch's call control (issue 23): TMakeCall, TSingleStepTransfer,
TInitiateTransfer, TInitiateConference, TCompleteTransfer, TCompleteConference,
TSingleStepConference, TReconnectCall, with the events of the call-control contract
(docs/switch.md, "Call control").

A destination is a DN of the switch that can take calls (an extension or a voice-treatment
port): it rings (EventRinging, unsolicited, with the call's user data) and whoever is there
answers with TAnswerCall. The checks, after the link and ``ThisDN`` of
:class:`~ivr_server.switch.virtual.core.SwitchCore`:

3. the port's call exists with the port as a party (``TERR_INVALID_ATTR``) and is in a state the
   request needs: not held to start a consultation, held to complete or reconnect one
   (``TERR_SET_WRONG_STATE``);
4. the destination is configured and can take calls (``TERR_INV_CALD_DN``; TMakeCall dials a
   number that is not a DN of the switch as an outside number, which the network answers at
   once);
5. the destination is free: out of service → ``TERR_OUT_OF_SERVICE``, in a call →
   ``TERR_RES_UNAVAIL`` for the single-step requests, EventDestinationBusy on the call placed for
   TMakeCall and the consultations (the call stays, dialling, until released or reconnected);
6. the user data fits (``TERR_INVALID_ATTR``).
"""

from __future__ import annotations

from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    EventDestinationBusy,
    EventDialing,
    EventEstablished,
    EventHeld,
    EventPartyAdded,
    EventReleased,
    EventRetrieved,
    EventRinging,
)
from ivr_server.switch.requests import (
    CallRequest,
    SwitchRequest,
    TCompleteConference,
    TCompleteTransfer,
    TInitiateTransfer,
    TMakeCall,
    TReconnectCall,
    TSingleStepConference,
    TSingleStepTransfer,
)
from ivr_server.switch.userdata import USER_DATA_LIMIT, kv_size, kv_update
from ivr_server.switch.view import CallRecord, DnRecord
from ivr_server.switch.virtual.calls import set_user_data
from ivr_server.switch.virtual.core import AGENT_DN_TYPES, SwitchCore
from ivr_server.wire.kv import KvList

__all__ = [
    "on_complete_conference",
    "on_complete_transfer",
    "on_initiate_transfer",
    "on_make_call",
    "on_reconnect_call",
    "on_single_step_conference",
    "on_single_step_transfer",
]


# -- checks --------------------------------------------------------------------------------------


def _free_call(sw: SwitchCore, req: CallRequest) -> CallRecord | None:
    """The port's call, not held by the port; else EventError."""
    call = sw.call_at(req)
    if call is not None and req.dn in call.held:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_SET_WRONG_STATE,
            f"call {call.conn_id} is held at DN {req.dn}",
            call.conn_id,
        )
        return None
    return call


def _destination(sw: SwitchCore, req: SwitchRequest, origin: str, dest: str) -> DnRecord | None:
    """Check 4: ``dest`` is a DN of the switch that can take calls, not ``origin``."""
    record = sw.view.record(dest)
    if record is None or record.type not in AGENT_DN_TYPES or dest == origin:
        sw.fail(
            req,
            origin,
            TErrorCode.TERR_INV_CALD_DN,
            f"{dest} is not a DN of switch {sw.name} that can take this call",
        )
        return None
    return record


def _busy(sw: SwitchCore, record: DnRecord) -> bool:
    """The DN cannot take a call now: out of service, or a party of a call."""
    if not record.in_service:
        return True
    return any(record.number in call.parties for call in sw.view.call_records())


def _refuse_busy(sw: SwitchCore, req: SwitchRequest, origin: str, record: DnRecord) -> bool:
    """Check 5 for a single-step request: EventError when the destination is busy."""
    if not record.in_service:
        sw.fail(
            req, origin, TErrorCode.TERR_OUT_OF_SERVICE, f"DN {record.number} is out of service"
        )
        return True
    if _busy(sw, record):
        sw.fail(req, origin, TErrorCode.TERR_RES_UNAVAIL, f"DN {record.number} is busy")
        return True
    return False


def _fits(sw: SwitchCore, req: SwitchRequest, dn: str, data: KvList) -> bool:
    """Check 6: ``data`` is not larger than the user data limit."""
    if kv_size(data) > USER_DATA_LIMIT:
        sw.fail(req, dn, TErrorCode.TERR_INVALID_ATTR, "user data larger than 16 KB")
        return False
    return True


# -- shared steps --------------------------------------------------------------------------------


def _single_step(
    sw: SwitchCore, req: TSingleStepTransfer | TSingleStepConference
) -> CallRecord | None:
    """Checks 3-6 of a single-step request, then its user data, if any, attached first (replace
    semantics: EventAttachedDataChanged with its ReferenceID): the call, or ``None`` after
    EventError."""
    call = _free_call(sw, req)
    if call is None:
        return None
    target = _destination(sw, req, req.dn, req.dest)
    if target is None or _refuse_busy(sw, req, req.dn, target):
        return None
    if req.user_data and not set_user_data(sw, req, call, kv_update(call.user_data, req.user_data)):
        return None
    return call


def _place_call(
    sw: SwitchCore,
    req: SwitchRequest,
    origin: str,
    dest: str,
    user_data: KvList,
    target: DnRecord | None,
) -> None:
    """``origin`` dials ``dest`` on a new call: EventDialing (``req``'s ReferenceID), then the
    destination rings (or is busy: EventDestinationBusy), or, for an outside number
    (``target`` ``None``), the network answers at once (EventEstablished)."""
    conn_id = f"{sw.next_conn:016x}"
    sw.next_conn += 1
    call_id = sw.next_call_id
    sw.next_call_id += 1
    sw.emit(
        EventDialing(
            switch=sw.name,
            reference_id=req.reference_id,
            dn=origin,
            conn_id=conn_id,
            call_id=call_id,
            ani=origin,
            dnis=dest,
            other_dn=dest,
            user_data=user_data,
        )
    )
    call = sw.view.call_record(conn_id)
    assert call is not None  # EventDialing made it
    if target is None:
        sw.call_event(EventEstablished, None, call, origin, other_dn=dest)
    elif _busy(sw, target):
        sw.call_event(EventDestinationBusy, None, call, origin, other_dn=dest)
    else:
        sw.call_event(EventRinging, None, call, dest, other_dn=origin)


def _end_consultation(sw: SwitchCore, req: SwitchRequest, consult: CallRecord, port: str) -> None:
    """The consultation call ends: the port's EventReleased (``req``'s ReferenceID), then the
    other parties' (unsolicited)."""
    sw.call_event(EventReleased, req, consult, port)
    for dn in tuple(consult.parties):
        sw.call_event(EventReleased, None, consult, dn, other_dn=port)


def _consultation(sw: SwitchCore, req: TCompleteTransfer) -> tuple[CallRecord, CallRecord] | None:
    """The held call and the consultation call of a Complete* request; else EventError."""
    held = sw.call_at(req)
    if held is None:
        return None
    if req.dn not in held.held:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_SET_WRONG_STATE,
            f"call {held.conn_id} is not held at DN {req.dn}",
            held.conn_id,
        )
        return None
    consult = sw.view.call_record(req.consult_conn_id)
    if consult is None or req.dn not in consult.parties or len(consult.parties) < 2:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_INV_CONNID,
            f"no consultation call {req.consult_conn_id} at DN {req.dn}",
            held.conn_id,
        )
        return None
    return held, consult


# -- handlers ------------------------------------------------------------------------------------


def on_make_call(sw: SwitchCore, req: TMakeCall) -> None:
    record = sw.address(req, req.dn)
    if record is None:
        return
    if record.type not in AGENT_DN_TYPES:
        sw.fail(req, req.dn, TErrorCode.TERR_UNSUP_OPER, f"DN {req.dn} cannot place calls")
        return
    if not record.in_service:
        sw.fail(req, req.dn, TErrorCode.TERR_OUT_OF_SERVICE, f"DN {req.dn} is out of service")
        return
    target = None
    if sw.view.record(req.dest) is not None:
        target = _destination(sw, req, req.dn, req.dest)
        if target is None:
            return
    if _fits(sw, req, req.dn, req.user_data):
        _place_call(sw, req, req.dn, req.dest, req.user_data, target)


def on_single_step_transfer(sw: SwitchCore, req: TSingleStepTransfer) -> None:
    call = _single_step(sw, req)
    if call is None:
        return
    sw.call_event(EventRinging, None, call, req.dest, other_dn=req.dn)
    sw.call_event(EventReleased, req, call, req.dn, other_dn=req.dest)


def on_initiate_transfer(sw: SwitchCore, req: TInitiateTransfer) -> None:
    """TInitiateTransfer and TInitiateConference: the same consultation."""
    call = _free_call(sw, req)
    if call is None:
        return
    target = _destination(sw, req, req.dn, req.dest)
    if target is None:
        return
    data = kv_update(call.user_data, req.user_data) if req.user_data else call.user_data
    if not _fits(sw, req, req.dn, data):
        return
    sw.call_event(EventHeld, req, call, req.dn, other_dn=req.dest)
    _place_call(sw, req, req.dn, req.dest, data, target)


def on_complete_transfer(sw: SwitchCore, req: TCompleteTransfer) -> None:
    """The held call's caller and the consulted parties are joined on the held call (its ConnID
    and user data kept: EventEstablished at each of them), the port leaves both calls."""
    calls = _consultation(sw, req)
    if calls is None:
        return
    held, consult = calls
    joining = [dn for dn in consult.parties if dn != req.dn]
    for dn in joining:
        sw.call_event(EventEstablished, None, held, dn, other_dn=held.ani)
    _end_consultation(sw, req, consult, req.dn)
    sw.call_event(EventReleased, req, held, req.dn, other_dn=joining[0])


def on_complete_conference(sw: SwitchCore, req: TCompleteConference) -> None:
    """The consulted parties join the held call, which the port takes back: a conference."""
    calls = _consultation(sw, req)
    if calls is None:
        return
    held, consult = calls
    joining = [dn for dn in consult.parties if dn != req.dn]
    _end_consultation(sw, req, consult, req.dn)
    sw.call_event(EventRetrieved, req, held, req.dn)
    for dn in joining:
        sw.call_event(EventPartyAdded, req, held, req.dn, other_dn=dn)


def on_single_step_conference(sw: SwitchCore, req: TSingleStepConference) -> None:
    call = _single_step(sw, req)
    if call is None:
        return
    sw.call_event(EventPartyAdded, req, call, req.dn, other_dn=req.dest)


def on_reconnect_call(sw: SwitchCore, req: TReconnectCall) -> None:
    """The consultation (``conn_id``) ends if it is still there; the held call is taken back."""
    if sw.address(req, req.dn) is None:
        return
    held = sw.view.call_record(req.held_conn_id)
    if held is None or req.dn not in held.held:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_SET_WRONG_STATE,
            f"call {req.held_conn_id} is not held at DN {req.dn}",
            req.held_conn_id,
        )
        return
    consult = sw.view.call_record(req.conn_id)
    if consult is not None and req.dn in consult.parties:
        _end_consultation(sw, req, consult, req.dn)
    sw.call_event(EventRetrieved, req, held, req.dn)
