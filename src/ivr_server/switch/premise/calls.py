"""Premise calls: the PBX's call events at our monitored DNs as T-Library events, the release of
a port's connection (TReleaseCall → ClearConnection), and the resync of a DN from a snapshot.

Every handler takes the DN of the monitor that reported the event (the session maps the monitor
cross-reference id to it) and never raises: an event the mapping cannot place (no call, a call
already gone at that DN, a second Delivered) is dropped with a DEBUG line. What each event does:

==================================  ===========================================================
DeliveredEvent, alerting here       EventRinging (a new call gets its ConnID and TSCallId)
EstablishedEvent, answered here     EventEstablished (EventRinging first if none came)
ConnectionClearedEvent              EventReleased when our DN's connection went, or when the
                                    other party left and only our DN is left
CallClearedEvent                    EventReleased
DivertedEvent / TransferedEvent     EventReleased when the call left our DN (diverted or
                                    transferred away); a new callID keeps the ConnID
HeldEvent / RetrievedEvent          the local state (call control publishes EventHeld and
                                    EventRetrieved from its requests' answers: placed.py)
ConferencedEvent                    the parties; a new callID keeps the ConnID
OutOfService / BackInService        EventDNOutOfService / EventDNBackInService (on a change)
==================================  ===========================================================

"Here" is the monitored DN: the event's device (alerting, answering, the connection's) names it
or names nothing. Devices are read as numbers: OpenScape's ``N<+4930…>;noa=…`` is the number
between the angle brackets, and ``;parameters`` are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    CallEvent,
    DnType,
    EventDNBackInService,
    EventDNOutOfService,
    EventEstablished,
    EventReleased,
    EventRinging,
    EventRouteUsed,
)
from ivr_server.switch.premise.core import LOG, PremiseCall, PremiseCore
from ivr_server.switch.premise.errors import INVOKE_TIMEOUT_ERROR, describe, tlib_error
from ivr_server.switch.requests import TAbandonCall, TReleaseCall
from ivr_server.wire.kv import KvList

__all__ = [
    "CALL_EVENTS",
    "call_event",
    "device_number",
    "fail_from_pbx",
    "on_clear_answered",
    "on_clear_failed",
    "on_release_call",
    "release_at",
    "resync_dn",
]

_CONNECTED_STATES: Final = frozenset({"connected", "held"})
"""Snapshot local connection states that mean the call was answered at the DN."""


def device_number(raw: str | None) -> str | None:
    """The number a CSTA device identifier names (``None`` stays ``None``)."""
    if raw is None:
        return None
    if raw.startswith("N<"):
        end = raw.find(">")
        if end > 2:
            return raw[2:end]
    cut = raw.find(";")
    number = raw if cut < 0 else raw[:cut]
    return number or None


def _here(dn: str, *devices: str | None) -> bool:
    """The event is about our DN: one of its devices names it, or none names anything."""
    named = False
    for raw in devices:
        number = device_number(raw)
        if number is not None:
            if number == dn:
                return True
            named = True
    return not named


def _find(sw: PremiseCore, conn: m.ConnectionID | None, dn: str) -> PremiseCall | None:
    """The call of ``conn``: by its callID, or the one call at ``dn`` when it has none."""
    if conn is not None and conn.call_id is not None:
        return sw.calls.get(conn.call_id)
    at_dn = [call for call in sw.calls.values() if dn in call.at]
    return at_dn[0] if len(at_dn) == 1 else None


def _find_or_new(sw: PremiseCore, conn: m.ConnectionID, dn: str) -> PremiseCall:
    call = _find(sw, conn, dn)
    if call is not None:
        return call
    if conn.call_id is not None:
        return sw.new_call(conn.call_id)
    sw.anonymous += 1
    return sw.new_call(f"?{dn}#{sw.anonymous}")


def call_event(
    sw: PremiseCore,
    cls: type[CallEvent],
    call: PremiseCall,
    dn: str,
    ref: int | None = None,
    other: str | None = None,
    user_data: KvList | None = None,
) -> None:
    """Publish ``cls`` about ``call`` at ``dn`` with the call's identity, parties and data
    (``other``: another OtherDN than the call's, as a party added; ``user_data``: data the
    view does not hold yet, as a new call's)."""
    if other is None:
        # a call we placed names the number dialled, except at that number's own DN
        dialed = call.dialed
        other = dialed if dialed is not None and dialed != dn else call.other_dn
    if user_data is None:
        user_data = sw.view.user_data(call.conn_id)
        if user_data is None:
            user_data = call.carried
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
            other_dn=other,
            user_data=user_data,
        )
    )


def release_at(sw: PremiseCore, call: PremiseCall, dn: str, ref: int | None = None) -> None:
    """``dn`` left the call: EventReleased (the routing dialog ended first when this was the
    call's last DN of ours); the call is forgotten once it is at none of them."""
    if dn not in call.at:
        return
    del call.at[dn]
    if not call.at:
        record = sw.view.call_record(call.conn_id)
        if record is not None and record.routing_point is not None:
            call_event(sw, EventRouteUsed, call, record.routing_point)
    if ref is None:
        ref = sw.clearing.pop((call.premise_id, dn), None)
    call_event(sw, EventReleased, call, dn, ref)
    if not call.at:
        sw.forget(call)


def _learn(
    sw: PremiseCore, call: PremiseCall, dn: str, event: m.DeliveredEvent | m.EstablishedEvent
) -> None:
    """Identity from a Delivered/Established (G15): ANI = calling, DNIS = called (the network's
    called number when the PBX gave no called device), queue = the last redirection when the
    call was distributed or came from an ACD queue of ours."""
    ani = device_number(event.calling_device)
    if ani is not None:
        call.ani = call.other_dn = ani
        if ani != dn:
            call.devices.add(ani)
    dnis = device_number(event.called_device) or device_number(event.network_called_device)
    if dnis is not None and call.dnis is None:
        call.dnis = dnis
    queue = device_number(event.last_redirection_device)
    if queue is not None:
        record = sw.view.record(queue)
        if event.cause == "distributed" or (record is not None and record.type is DnType.ACD_QUEUE):
            call.this_queue = queue


def on_delivered(sw: PremiseCore, dn: str, event: m.DeliveredEvent) -> None:
    if not _here(dn, event.alerting_device, event.connection.device_id):
        LOG.debug("switch %s: Delivered at another device on %s's monitor", sw.name, dn)
        return
    call = _find_or_new(sw, event.connection, dn)
    if dn in call.at:
        LOG.debug("switch %s: duplicate Delivered of call %s at %s", sw.name, call.premise_id, dn)
        return
    _learn(sw, call, dn, event)
    call.at[dn] = "alerting"
    call_event(sw, EventRinging, call, dn)


def on_established(sw: PremiseCore, dn: str, event: m.EstablishedEvent) -> None:
    conn = event.established_connection
    if not _here(dn, event.answering_device, conn.device_id):
        call = _find(sw, conn, dn)
        answering = device_number(event.answering_device)
        if call is not None and answering is not None:
            call.devices.add(answering)
            sw.touch(call)  # HA (issue 25): the record carries the devices
        return
    call = _find_or_new(sw, conn, dn)
    state = call.at.get(dn)
    if state in _CONNECTED_STATES:
        LOG.debug("switch %s: duplicate Established of call %s at %s", sw.name, call.premise_id, dn)
        return
    _learn(sw, call, dn, event)
    if state is None:
        call.at[dn] = "alerting"
        call_event(sw, EventRinging, call, dn)
    call.at[dn] = "connected"
    call_event(sw, EventEstablished, call, dn)


def _known(sw: PremiseCore, conn: m.ConnectionID | None, dn: str, what: str) -> PremiseCall | None:
    call = _find(sw, conn, dn)
    if call is None or dn not in call.at:
        LOG.debug("switch %s: %s for no call at %s (ignored)", sw.name, what, dn)
        return None
    return call


def on_connection_cleared(sw: PremiseCore, dn: str, event: m.ConnectionClearedEvent) -> None:
    conn = event.dropped_connection
    call = _known(sw, conn, dn, "ConnectionCleared")
    if call is None:
        return
    dropped = device_number(conn.device_id) or device_number(event.releasing_device)
    if dropped is None or dropped == dn:
        release_at(sw, call, dn)
        return
    call.devices.discard(dropped)
    sw.touch(call)  # HA (issue 25)
    if not call.devices - call.at.keys():
        release_at(sw, call, dn)


def on_call_cleared(sw: PremiseCore, dn: str, event: m.CallClearedEvent) -> None:
    call = _known(sw, event.cleared_call, dn, "CallCleared")
    if call is not None:
        release_at(sw, call, dn)


def on_diverted(sw: PremiseCore, dn: str, event: m.DivertedEvent) -> None:
    call = _known(sw, event.connection, dn, "Diverted")
    if call is not None and _here(dn, event.diverting_device, event.connection.device_id):
        release_at(sw, call, dn)


def _rekey(sw: PremiseCore, call: PremiseCall, items: tuple[m.ConnectionListItem, ...]) -> None:
    """A transfer or conference gave the call a new callID: the ConnID stays."""
    for item in items:
        if item.endpoint is not None:
            call.devices.add(device_number(item.endpoint) or item.endpoint)
        new = item.new_connection.call_id if item.new_connection is not None else None
        if new is not None and new != call.premise_id and new not in sw.calls:
            for key in [k for k in sw.clearing if k[0] == call.premise_id]:
                sw.clearing[(new, key[1])] = sw.clearing.pop(key)
            del sw.calls[call.premise_id]
            call.premise_id = new
            sw.calls[new] = call
            sw.by_conn[call.conn_id] = new
    sw.touch(call)  # HA (issue 25): a new callID and devices, no event


def on_transfered(sw: PremiseCore, dn: str, event: m.TransferedEvent) -> None:
    call = _known(sw, event.primary_old_call, dn, "Transfered")
    if call is None and event.secondary_old_call is not None:
        call = _known(sw, event.secondary_old_call, dn, "Transfered")
    if call is None:
        return
    transferring = device_number(event.transferring_device)
    if transferring == dn:
        release_at(sw, call, dn)
        return
    if transferring is not None:
        call.devices.discard(transferring)
    _rekey(sw, call, event.transferred_connections)


def on_conferenced(sw: PremiseCore, dn: str, event: m.ConferencedEvent) -> None:
    call = _known(sw, event.primary_old_call, dn, "Conferenced")
    if call is None:
        return
    added = device_number(event.added_party)
    if added is not None and added != dn:
        call.devices.add(added)
    _rekey(sw, call, event.conference_connections)


def on_held(sw: PremiseCore, dn: str, event: m.HeldEvent) -> None:
    call = _known(sw, event.held_connection, dn, "Held")
    if call is not None and _here(dn, event.holding_device, event.held_connection.device_id):
        call.at[dn] = "held"
        sw.touch(call)  # HA (issue 25)


def on_retrieved(sw: PremiseCore, dn: str, event: m.RetrievedEvent) -> None:
    conn = event.retrieved_connection
    call = _known(sw, conn, dn, "Retrieved")
    if call is not None and _here(dn, event.retrieving_device, conn.device_id):
        call.at[dn] = "connected"
        sw.touch(call)  # HA (issue 25)


def on_failed(sw: PremiseCore, dn: str, event: m.FailedEvent) -> None:
    call = _known(sw, event.failed_connection, dn, "Failed")
    if call is not None:
        LOG.info(
            "switch %s: call %s failed at %s (cause %s)",
            sw.name,
            call.conn_id,
            device_number(event.failing_device) or dn,
            event.cause,
        )


def on_out_of_service(sw: PremiseCore, dn: str, event: m.OutOfServiceEvent) -> None:
    record = sw.view.record(dn)
    if record is not None and record.in_service:
        sw.emit(EventDNOutOfService(switch=sw.name, dn=dn))


def on_back_in_service(sw: PremiseCore, dn: str, event: m.BackInServiceEvent) -> None:
    record = sw.view.record(dn)
    if record is not None and not record.in_service:
        sw.emit(EventDNBackInService(switch=sw.name, dn=dn))


CALL_EVENTS: Final[Mapping[type[m.CstaEvent], Callable[[PremiseCore, str, Any], None]]] = {
    m.DeliveredEvent: on_delivered,
    m.EstablishedEvent: on_established,
    m.ConnectionClearedEvent: on_connection_cleared,
    m.CallClearedEvent: on_call_cleared,
    m.DivertedEvent: on_diverted,
    m.TransferedEvent: on_transfered,
    m.ConferencedEvent: on_conferenced,
    m.HeldEvent: on_held,
    m.RetrievedEvent: on_retrieved,
    m.FailedEvent: on_failed,
    m.OutOfServiceEvent: on_out_of_service,
    m.BackInServiceEvent: on_back_in_service,
}
"""CSTA call and device event → its handler (the table in the module docstring)."""


# -- TReleaseCall / TAbandonCall → ClearConnection ----------------------------------------------


def on_release_call(sw: PremiseCore, req: TReleaseCall | TAbandonCall) -> None:
    """Clear the DN's connection on the PBX; EventReleased comes with its ConnectionCleared or
    the positive answer, whichever is first."""
    session = sw.linked(req, req.dn)
    if session is None or sw.call_at(req) is None:
        return
    call = sw.call_of(req.conn_id)
    if call is None or req.dn not in call.at:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_INV_CONNID,
            f"call {req.conn_id} is not at DN {req.dn} on the PBX",
        )
        return
    call_id = None if call.premise_id.startswith("?") else call.premise_id
    clear = m.ClearConnection(
        connection_to_be_cleared=m.ConnectionID(call_id=call_id, device_id=req.dn)
    )
    sw.send_for(req, session, clear, req.dn)
    sw.clearing[(call.premise_id, req.dn)] = req.reference_id
    sw.touch(call)  # HA (issue 25): the clearing is carried (cleared again after a takeover)


def on_clear_answered(sw: PremiseCore, req: TReleaseCall | TAbandonCall) -> None:
    """The PBX cleared the connection: EventReleased now if its ConnectionCleared has not come."""
    call = sw.call_of(req.conn_id)
    if call is not None and req.dn in call.at:
        release_at(sw, call, req.dn, req.reference_id)


def on_clear_failed(
    sw: PremiseCore, req: TReleaseCall | TAbandonCall, error: m.NegativeResponse | None
) -> None:
    """The PBX refused the clearing (or did not answer): EventError, the call stays."""
    call = sw.call_of(req.conn_id)
    if call is not None:
        sw.clearing.pop((call.premise_id, req.dn), None)
        sw.touch(call)  # HA (issue 25): no longer being cleared
    fail_from_pbx(sw, req, req.dn, error, conn_id=req.conn_id)


def fail_from_pbx(
    sw: PremiseCore,
    req: Any,
    dn: str | None,
    error: m.NegativeResponse | None,
    *,
    agent: bool = False,
    conn_id: str | None = None,
) -> None:
    """EventError for a request the PBX refused (``error``) or left unanswered (``None``)."""
    if error is None:
        code, text = INVOKE_TIMEOUT_ERROR, "no answer from the PBX in time"
    else:
        code, text = tlib_error(error, agent=agent), describe(error)
    LOG.info("switch %s: %s on %s refused: %s", sw.name, req.name, dn, text)
    sw.fail(req, dn, code, text, conn_id)


# -- resync from a snapshot (G13) --------------------------------------------------------------


def resync_dn(
    sw: PremiseCore, dn: str, snapshot: m.SnapshotDeviceResponse, fresh: set[str]
) -> tuple[int, int, int]:
    """Bring ``dn``'s calls in line with the PBX's snapshot: a call we hold that the PBX no
    longer shows is released, one it shows that we do not hold gets the events it would have
    had, one both know stays (its ConnID and user data kept; EventEstablished if it was
    answered meanwhile). Calls the PBX reported since the snapshot was asked for (``fresh``)
    are left alone. The counts (kept, released, new)."""
    shown: dict[str, str] = {}
    for info in snapshot.calls:
        if info.connection.call_id is not None:
            shown[info.connection.call_id] = info.local_connection_state or "alerting"
    kept = released = new = 0
    for call in [c for c in sw.calls.values() if dn in c.at]:
        if call.premise_id in shown or call.premise_id in fresh:
            kept += 1
        else:
            released += 1
            release_at(sw, call, dn)
    for premise_id, state in shown.items():
        if premise_id in fresh:
            continue
        shown_call = sw.calls.get(premise_id)
        if shown_call is None:
            shown_call = sw.new_call(premise_id)
        if dn not in shown_call.at:
            new += 1
            shown_call.at[dn] = "alerting"
            call_event(sw, EventRinging, shown_call, dn)
        if state in _CONNECTED_STATES and shown_call.at[dn] == "alerting":
            shown_call.at[dn] = "connected"
            call_event(sw, EventEstablished, shown_call, dn)
    return kept, released, new
