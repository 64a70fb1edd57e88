"""The virtual switch's calls: a call delivered to a DN (TInboundCall, answered at once or later
by TAnswerCall), dialled from one
(TOutboundCall, TOutboundAnswered, TAbandonCall), released by a party (TReleaseCall) or by the
caller (TCallerHangUp), and its user data (TAttachUserData, TUpdateUserData, TDeleteUserData,
TDeleteAllUserData).

A call exists in the view from its first event (EventRinging or EventDialing) to the
EventReleased of its last party or its EventAbandoned; its user data is never larger than
:data:`~ivr_server.switch.userdata.USER_DATA_LIMIT` (a request that would make it so is refused).
"""

from __future__ import annotations

from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    CallEvent,
    EventAbandoned,
    EventAttachedDataChanged,
    EventDialing,
    EventEstablished,
    EventPartyDeleted,
    EventReleased,
    EventRinging,
    EventRouteUsed,
)
from ivr_server.switch.requests import (
    CallRequest,
    SwitchRequest,
    TAbandonCall,
    TAnswerCall,
    TAttachUserData,
    TCallerHangUp,
    TDeleteAllUserData,
    TDeleteUserData,
    TInboundCall,
    TOutboundAnswered,
    TOutboundCall,
    TReleaseCall,
    TUpdateUserData,
)
from ivr_server.switch.userdata import USER_DATA_LIMIT, kv_size, kv_update
from ivr_server.switch.view import CallRecord
from ivr_server.switch.virtual.core import AGENT_DN_TYPES, SwitchCore
from ivr_server.wire.kv import KvList

__all__ = [
    "has_outside_party",
    "on_abandon_call",
    "on_answer_call",
    "on_attach_user_data",
    "on_caller_hang_up",
    "on_delete_all_user_data",
    "on_delete_user_data",
    "on_inbound_call",
    "on_outbound_answered",
    "on_outbound_call",
    "on_release_call",
    "on_update_user_data",
    "release_all",
    "set_user_data",
]


def _new_call(
    sw: SwitchCore,
    req: TInboundCall | TOutboundCall,
    first: type[CallEvent],
    *,
    in_service: bool,
    ani: str | None = None,
    dnis: str | None = None,
    other_dn: str | None = None,
) -> CallRecord | None:
    """Checks for a call starting at ``req.dn`` (the DN can hold calls, is in service when
    ``in_service`` asks it, the data fits), then the call's first event; the new call, or
    ``None`` after EventError."""
    record = sw.address(req, req.dn)
    if record is None:
        return None
    if record.type not in AGENT_DN_TYPES:
        sw.fail(req, req.dn, TErrorCode.TERR_UNSUP_OPER, f"DN {req.dn} cannot take calls")
        return None
    if in_service and not record.in_service:
        sw.fail(req, req.dn, TErrorCode.TERR_OUT_OF_SERVICE, f"DN {req.dn} is out of service")
        return None
    if kv_size(req.user_data) > USER_DATA_LIMIT:
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, "user data larger than 16 KB")
        return None
    conn_id, call_id = sw.new_call_ids()
    sw.emit(
        first(
            switch=sw.name,
            reference_id=req.reference_id,
            dn=req.dn,
            conn_id=conn_id,
            call_id=call_id,
            ani=ani,
            dnis=dnis,
            other_dn=other_dn,
            user_data=req.user_data,
            extensions=req.extensions,
        )
    )
    return sw.view.call_record(conn_id)


def on_inbound_call(sw: SwitchCore, req: TInboundCall) -> None:
    call = _new_call(sw, req, EventRinging, in_service=True, ani=req.ani, dnis=req.dnis)
    if call is not None and req.answer:
        sw.call_event(EventEstablished, req, call, req.dn, extensions=req.extensions)


def on_answer_call(sw: SwitchCore, req: TAnswerCall) -> None:
    call = sw.call_at(req)
    if call is not None:
        sw.call_event(EventEstablished, req, call, req.dn)
        dialer = call.parties[0]
        if call.dialed == req.dn and dialer != req.dn:
            # a call placed to this DN (TMakeCall, a consultation): its dialer is connected too
            sw.call_event(EventEstablished, None, call, dialer, other_dn=req.dn)


def on_outbound_call(sw: SwitchCore, req: TOutboundCall) -> None:
    _new_call(sw, req, EventDialing, in_service=False, other_dn=req.dest)


def on_outbound_answered(sw: SwitchCore, req: TOutboundAnswered) -> None:
    call = sw.call_at(req)
    if call is not None:
        for cls in (EventRinging, EventEstablished):
            sw.call_event(cls, req, call, req.dn, other_dn=call.dialed)


def on_abandon_call(sw: SwitchCore, req: TAbandonCall) -> None:
    call = sw.call_at(req)
    if call is not None:
        sw.call_event(EventAbandoned, req, call, req.dn, other_dn=call.dialed)


def release_all(sw: SwitchCore, call: CallRecord, req: SwitchRequest | None) -> None:
    """The call ends: its routing dialog first, then every party, in the order they joined."""
    if call.routing_point is not None:
        sw.call_event(EventRouteUsed, req, call, call.routing_point)
    for dn in tuple(call.parties):
        sw.call_event(EventReleased, req, call, dn)


def has_outside_party(sw: SwitchCore, call: CallRecord) -> bool:
    """Whether a party of ``call`` is outside the switch: the caller of an inbound call, the
    number an outbound call (or a TMakeCall to an outside number) dialled. A call placed to a DN
    of the switch (TMakeCall, a consultation) has none."""
    return call.dialed is None or sw.view.record(call.dialed) is None


def on_release_call(sw: SwitchCore, req: TReleaseCall) -> None:
    """``req.dn`` hangs up. A call with two parties left besides it (counting an outside party)
    goes on (a conference: EventReleased at that DN, EventPartyDeleted at the others); otherwise
    the call ends (a call between two DNs: the other's EventReleased is unsolicited)."""
    call = sw.call_at(req)
    if call is None:
        return
    if len(call.parties) == 1:
        release_all(sw, call, req)
        return
    outside = has_outside_party(sw, call)
    if len(call.parties) == 2 and not outside:
        # a call between two DNs (a consultation, a MakeCall): the other side is released too
        sw.call_event(EventReleased, req, call, req.dn)
        for dn in tuple(call.parties):
            sw.call_event(EventReleased, None, call, dn, other_dn=req.dn)
        return
    sw.call_event(EventReleased, req, call, req.dn)
    for dn in tuple(call.parties):
        sw.call_event(EventPartyDeleted, None, call, dn, other_dn=req.dn)


def on_caller_hang_up(sw: SwitchCore, req: TCallerHangUp) -> None:
    """The far end released the call: unsolicited events (the caller, not a client, acted)."""
    call = sw.view.call_record(req.conn_id)
    if call is None:
        sw.fail(req, None, TErrorCode.TERR_INVALID_ATTR, f"no call {req.conn_id}")
        return
    release_all(sw, call, None)


def set_user_data(sw: SwitchCore, req: CallRequest, call: CallRecord, new: KvList) -> bool:
    """The call's user data becomes ``new`` (EventAttachedDataChanged at ``req.dn``), unless it
    is larger than the limit (EventError, ``False``)."""
    if kv_size(new) > USER_DATA_LIMIT:
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, "user data larger than 16 KB")
        return False
    sw.emit(
        EventAttachedDataChanged(
            switch=sw.name,
            reference_id=req.reference_id,
            dn=req.dn,
            conn_id=call.conn_id,
            call_id=call.call_id,
            ani=call.ani,
            dnis=call.dnis,
            user_data=new,
        )
    )
    return True


def on_attach_user_data(sw: SwitchCore, req: TAttachUserData) -> None:
    call = sw.call_at(req)
    if call is not None:
        set_user_data(sw, req, call, call.user_data + req.user_data)


def on_update_user_data(sw: SwitchCore, req: TUpdateUserData) -> None:
    call = sw.call_at(req)
    if call is not None:
        set_user_data(sw, req, call, kv_update(call.user_data, req.user_data))


def on_delete_user_data(sw: SwitchCore, req: TDeleteUserData) -> None:
    call = sw.call_at(req)
    if call is not None:
        kept = tuple(item for item in call.user_data if item.Name != req.key)
        set_user_data(sw, req, call, kept)


def on_delete_all_user_data(sw: SwitchCore, req: TDeleteAllUserData) -> None:
    call = sw.call_at(req)
    if call is not None:
        set_user_data(sw, req, call, ())
