"""The premise switch's monitors and the answers the PBX gives to T-Library requests.

A DN is registered on a premise switch while the PBX monitors it (TRegisterAddress is
MonitorStart, TUnregisterAddress MonitorStop; routing points and Virtual Routing Points are ours and
answered here); a DN the PBX will not monitor is out of service until it does. A configuration
reload (TConfigureAddresses) is the virtual switch's, then MonitorStop/MonitorStart for the DNs
that left or came while the link is up. :func:`answer` routes the PBX's answer, refusal or silence
to the handler of the request that waits for it.
"""

from __future__ import annotations

import math

from ivr_server.switch import requests as rq
from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.session import SessionState
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    EventDNBackInService,
    EventDNOutOfService,
    EventRegistered,
    EventUnregistered,
)
from ivr_server.switch.premise import agents, calls
from ivr_server.switch.premise.core import LOG, PBX_DN_TYPES, PremiseCore
from ivr_server.switch.requests import SwitchRequest
from ivr_server.switch.virtual.admin import on_configure_addresses

__all__ = ["answer", "monitor_answered", "on_configure", "on_register", "on_unregister"]


def monitor_answered(sw: PremiseCore, dn: str, error: str | None) -> None:
    """A MonitorStart for ``dn`` was answered (``error``: refused or unanswered): the DN goes
    out of service while the PBX will not monitor it, and back when it does."""
    record = sw.view.record(dn)
    if error is not None:
        LOG.warning("switch %s: the PBX does not monitor DN %s: %s", sw.name, dn, error)
        if record is not None and record.in_service:
            sw.unmonitored.add(dn)
            sw.emit(EventDNOutOfService(switch=sw.name, dn=dn))
    elif dn in sw.unmonitored:
        sw.unmonitored.discard(dn)
        if record is not None and not record.in_service:
            sw.emit(EventDNBackInService(switch=sw.name, dn=dn))


def answer(
    sw: PremiseCore,
    req: SwitchRequest,
    reply: m.CstaMessage | None,
    error: m.NegativeResponse | None = None,
) -> None:
    """The PBX's answer (``reply``), refusal (``error``) or silence (both ``None``) to ``req``."""
    dn = getattr(req, "dn", None)
    if reply is None:
        if isinstance(req, rq.TReleaseCall | rq.TAbandonCall):
            calls.on_clear_failed(sw, req, error)
        else:
            agent = type(req) in agents.AGENT_REQUESTS
            calls.fail_from_pbx(sw, req, dn, error, agent=agent)
    elif isinstance(req, rq.TReleaseCall | rq.TAbandonCall):
        calls.on_clear_answered(sw, req)
    elif isinstance(req, rq.TQueryAddress):
        agents.on_address_answered(sw, req, reply)
    elif isinstance(req, rq.TRegisterAddress):
        sw.emit(EventRegistered(switch=sw.name, reference_id=req.reference_id, dn=req.dn))
    elif isinstance(req, rq.TUnregisterAddress):
        sw.emit(EventUnregistered(switch=sw.name, reference_id=req.reference_id, dn=req.dn))
    else:
        agents.on_agent_answered(sw, req)  # type: ignore[arg-type]


def on_register(sw: PremiseCore, req: rq.TRegisterAddress) -> None:
    record = sw.address(req, req.dn)
    if record is None:
        return
    if record.type not in PBX_DN_TYPES:
        sw.emit(EventRegistered(switch=sw.name, reference_id=req.reference_id, dn=req.dn))
        return
    session = sw.linked(req, req.dn)
    if session is None:
        return
    if session.monitor_of(req.dn) is not None:
        sw.emit(EventRegistered(switch=sw.name, reference_id=req.reference_id, dn=req.dn))
        return
    sw.send_for(req, session, m.MonitorStart(device=req.dn, monitor_type="device"), req.dn)


def on_unregister(sw: PremiseCore, req: rq.TUnregisterAddress) -> None:
    record = sw.address(req, req.dn)
    if record is None:
        return
    if record.type in PBX_DN_TYPES and sw.linked(req, req.dn) is None:
        return
    if not record.registered:
        sw.fail(req, req.dn, TErrorCode.TERR_NOT_REGISTERED, f"DN {req.dn} is not registered")
        return
    session = sw.session
    xref = session.monitor_of(req.dn) if session is not None else None
    if session is None or xref is None:
        sw.emit(EventUnregistered(switch=sw.name, reference_id=req.reference_id, dn=req.dn))
        return
    sw.send_for(req, session, m.MonitorStop(monitor_cross_ref_id=xref), req.dn)


def on_configure(sw: PremiseCore, req: rq.TConfigureAddresses) -> None:
    """The virtual switch's reload, then MonitorStop/MonitorStart on the PBX for the DNs that
    left or came while the link is up."""
    before = {dn.number: dn.type for dn in sw.view.dns()}
    on_configure_addresses(sw, req)
    session = sw.session
    if not sw.view.link_up or session is None or session.state is not SessionState.ACTIVE:
        return
    after = {dn.number: dn.type for dn in sw.view.dns()}
    for number, dn_type in before.items():
        if after.get(number) is not dn_type and session.monitor_of(number) is not None:
            session.monitor_stop(number, math.inf)
            sw.unmonitored.discard(number)
    for number, dn_type in after.items():
        if dn_type in PBX_DN_TYPES and before.get(number) is not dn_type:
            session.monitor_start(number, math.inf)
