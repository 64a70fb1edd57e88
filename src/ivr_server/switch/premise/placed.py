"""The calls call control places and changes on the premise PBX: a request in progress
(:class:`~ivr_server.switch.premise.core.Flow`) from the PBX's answer to the far party's answer,
busy or failure; the original call's restoration when a request fails after the hold; and the CSTA
events about these calls (read before the plain call handlers of
:mod:`~ivr_server.switch.premise.calls`: one table, :data:`CONTROL_EVENTS`).

The call a request places (a consultation, a MakeCall's call) is a new premise call id with its
own ConnID; the PBX may name it in events (ServiceInitiated, Originated) before its answer: the
first of them adopts it (:attr:`~ivr_server.switch.premise.core.PremiseCore.outbound`), and what
it does before the answer (answered, busy) is published after EventDialing. A Failed other than
busy ends the request as a refusal (G2). A conference party of ours leaving is EventPartyDeleted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from ivr_server.switch import requests as rq
from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
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

__all__ = [
    "CONTROL_EVENTS",
    "adopt",
    "conferenced",
    "connection",
    "correlator",
    "dialed",
    "end",
    "link_lost",
    "refusal",
    "restore",
    "transfer",
]

_CONFERENCES: Final = (rq.TCompleteConference, rq.TSingleStepConference)

CORRELATOR_LIMIT: Final = 32
"""Octets of CSTA ``correlatorData`` (ECMA-269 §12.3.18: at most 32)."""


def connection(call: PremiseCall, dn: str) -> m.ConnectionID:
    """The CSTA connection of ``call`` at ``dn``."""
    call_id = None if call.premise_id.startswith("?") else call.premise_id
    return m.ConnectionID(call_id=call_id, device_id=dn)


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


def refusal(error: m.NegativeResponse | None) -> tuple[TErrorCode, str]:
    if error is None:
        return INVOKE_TIMEOUT_ERROR, "no answer from the PBX in time"
    return tlib_error(error), describe(error)


def _clear(session: Any, call: PremiseCall, dn: str) -> None:
    """Clear the port's connection in a call a failed request placed (its release comes with
    the PBX's ConnectionCleared)."""
    session.send_request(
        m.ClearConnection(connection_to_be_cleared=connection(call, dn)), math.inf, dn=dn
    )


def end(flow: Flow) -> None:
    """The request is done: its calls no longer point to it."""
    for call in (flow.orig, flow.new):
        if call is not None and call.flow is flow:
            call.flow = None


def adopt(sw: PremiseCore, flow: Flow, conn: m.ConnectionID) -> PremiseCall:
    """The PBX named the call ``flow`` places: it gets its ConnID, dialling at the port."""
    call = sw.calls.get(conn.call_id) if conn.call_id is not None else None
    if call is None:
        if conn.call_id is not None:
            call = sw.new_call(conn.call_id)
        else:
            sw.anonymous += 1
            call = sw.new_call(f"?{flow.dn}#{sw.anonymous}")
    call.at[flow.dn] = "dialing"
    call.other_dn = call.dialed = flow.dest
    call.devices.add(flow.dest)
    if flow.orig is not None:
        call.ani, call.dnis = flow.orig.ani, flow.orig.dnis
    call.flow = flow
    flow.new = call
    return call


def dialed(sw: PremiseCore, flow: Flow) -> None:
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
        calls.call_event(sw, EventHeld, orig, flow.dn, ref)
        data = kv_update(sw.view.user_data(orig.conn_id) or (), getattr(flow.req, "user_data", ()))
    else:
        data = getattr(flow.req, "user_data", ())
    calls.call_event(sw, EventDialing, new, flow.dn, ref, flow.dest, data)
    if new.at.get(flow.dn) == "connected":
        _answered(sw, flow, new)
    elif flow.busy:
        _busy(sw, flow, new)


def _answered(sw: PremiseCore, flow: Flow, new: PremiseCall) -> None:
    """The far party of the new call answered (or, ``on-alerting``, rings)."""
    new.at[flow.dn] = "connected"
    calls.call_event(sw, EventEstablished, new, flow.dn, None, flow.dest)
    if flow.emulate is None:
        end(flow)
        return
    flow.emulate = "transferring"
    session = sw.session
    orig = flow.orig
    if session is None or orig is None:
        end(flow)
        return
    transfer(sw, session, flow.req, orig, new)


def _busy(sw: PremiseCore, flow: Flow, new: PremiseCall) -> None:
    if flow.emulate is not None:
        restore(sw, flow, TErrorCode.TERR_CONN_ATMPT_FAIL, f"destination {flow.dest} is busy")
        return
    calls.call_event(sw, EventDestinationBusy, new, flow.dn, None, flow.dest)
    end(flow)


def restore(sw: PremiseCore, flow: Flow, code: TErrorCode, text: str) -> None:
    """The request failed after the original may have been held: get it back (ReconnectCall
    when a consultation exists, RetrieveCall when only the hold does), then EventRetrieved and
    the EventError; a MakeCall's call is cleared."""
    req, dn, orig, new = flow.req, flow.dn, flow.orig, flow.new
    LOG.info("switch %s: %s on %s failed: %s", sw.name, req.name, dn, text)
    session = sw.session
    if orig is None:  # MakeCall
        end(flow)
        sw.fail(req, dn, code, text, new.conn_id if new is not None else None)
        if new is not None and session is not None and dn in new.at:
            _clear(session, new, dn)
        return
    held = orig.at.get(dn) == "held"
    if session is None or not held:
        end(flow)
        if new is not None and session is not None and dn in new.at:
            _clear(session, new, dn)
        sw.fail(req, dn, code, text, orig.conn_id)
        return
    flow.failure = (code, text)
    restore: m.CstaRequest
    if new is not None and dn in new.at:
        sw.clearing[(new.premise_id, dn)] = req.reference_id
        restore = m.ReconnectCall(active_call=connection(new, dn), held_call=connection(orig, dn))
    else:
        restore = m.RetrieveCall(call_to_be_retrieved=connection(orig, dn))
    sw.restoring[sw.send_for(req, session, restore, dn)] = flow


def transfer(
    sw: PremiseCore, session: Any, req: Any, orig: PremiseCall, consult: PremiseCall
) -> None:
    dn = req.dn
    sw.transfers[(consult.premise_id, dn)] = req.reference_id
    sw.transfers[(orig.premise_id, dn)] = req.reference_id
    request = m.TransferCall(held_call=connection(orig, dn), active_call=connection(consult, dn))
    sw.send_for(req, session, request, dn)


def conferenced(sw: PremiseCore, flow: Flow) -> None:
    """A conference of ours is made: the consultation merged (CompleteConf), the original
    retrieved, the party added."""
    end(flow)
    orig, new, dn, ref = flow.orig, flow.new, flow.dn, flow.req.reference_id
    if new is not None:
        calls.release_at(sw, new, dn, ref)
    if orig is None or dn not in orig.at:
        return
    orig.devices.add(flow.dest)
    orig.added.add(flow.dest)
    if isinstance(flow.req, rq.TCompleteConference):
        orig.at[dn] = "connected"
        calls.call_event(sw, EventRetrieved, orig, dn, ref)
    calls.call_event(sw, EventPartyAdded, orig, dn, ref, other=flow.dest)


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
    return flow, adopt(sw, flow, conn)


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
    restore(sw, flow, code, f"the call to {flow.dest} failed (CSTA cause {event.cause})")


def on_connection_cleared(sw: PremiseCore, dn: str, event: m.ConnectionClearedEvent) -> None:
    """A conference party leaving is EventPartyDeleted; the consultation's far party leaving
    ends an emulated transfer (the original is retrieved, EventError)."""
    conn = event.dropped_connection
    call = sw.calls.get(conn.call_id) if conn.call_id is not None else None
    dropped = calls.device_number(conn.device_id) or calls.device_number(event.releasing_device)
    if call is not None and dropped in call.added and dropped != dn and dn in call.at:
        call.added.discard(dropped)
        calls.call_event(sw, EventPartyDeleted, call, dn, None, other=dropped)
    flow = call.flow if call is not None else None
    if call is not None and dropped == dn and dn in call.at:
        # the port's own connection cleared: a transfer of ours when one waits (the caller
        # leaving clears the caller's connection instead, and is no transfer)
        calls.release_at(sw, call, dn, sw.transfers.pop((call.premise_id, dn), None))
    else:
        calls.on_connection_cleared(sw, dn, event)
    if flow is not None and flow.new is None and flow.emulate in ("on-answer", "on-alerting"):
        restore(sw, flow, TErrorCode.TERR_CONN_ATMPT_FAIL, f"{flow.dest} hung up")


def on_transfered(sw: PremiseCore, dn: str, event: m.TransferedEvent) -> None:
    """The port transferred: both its calls leave (the consultation first), with the request's
    ReferenceID when one is waiting."""
    if calls.device_number(event.transferring_device) != dn:
        calls.on_transfered(sw, dn, event)
        return
    primary = sw.calls.get(event.primary_old_call.call_id or "")
    old = event.secondary_old_call
    secondary = sw.calls.get(old.call_id or "") if old is not None else None
    pair = [c for c in (secondary, primary) if c is not None and dn in c.at]
    # the consultation (not held) leaves first; an emulated single-step transfer's original first
    pair.sort(key=lambda c: -1 if _emulated(c) else int(c.at[dn] == "held"))
    for call in pair:
        if call.flow is not None:
            end(call.flow)
        calls.release_at(sw, call, dn, sw.transfers.pop((call.premise_id, dn), None))


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
            conferenced(sw, flow)
    _merged_at(sw, dn, event)
    calls.on_conferenced(sw, dn, event)


def _merged_at(sw: PremiseCore, dn: str, event: m.ConferencedEvent) -> None:
    """At a DN of ours that was in the merged call (a monitored agent consulted, then
    conferenced), that call's connection is now the conference's: it leaves the old one."""
    old = event.secondary_old_call
    merged = sw.calls.get(old.call_id or "") if old is not None else None
    into = sw.calls.get(event.primary_old_call.call_id or "")
    if merged is None or into is None or merged is into or dn not in merged.at:
        return
    if dn not in into.at:
        into.at[dn] = merged.at[dn]
        sw.touch(into)  # HA (issue 25)
    calls.release_at(sw, merged, dn)


def link_lost(sw: PremiseCore) -> None:
    """The link dropped: the requests waiting for an answer were refused (``TERR_NO_SWITCH``);
    the calls they placed or held forget them. Consultations and MakeCalls already dialled keep
    theirs (the far party's answer or busy still comes after a resync)."""
    sw.outbound.clear()
    sw.restoring.clear()
    sw.transfers.clear()
    for call in sw.calls.values():
        flow = call.flow
        if flow is not None and (not flow.dialed or flow.emulate is not None):
            end(flow)


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
