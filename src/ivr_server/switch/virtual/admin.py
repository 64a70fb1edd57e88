"""The virtual switch's own state, driven by the server as its network and PBX: the link
(TOpenLink, TCloseLink), a DN in or out of service (TSetInService) and the DN set
(TConfigureAddresses).

These are reported by unsolicited events, whoever asked (PROTOCOL.md §8.3), and nothing is
published when nothing changes. They are answered while the link is down (it is what they are
about); a DN the switch does not have is refused with ``TERR_NOT_CONFIGURED``. A DN list with a
duplicate, an empty number or an unknown type is our own caller's bug and raises
:class:`~ivr_server.errors.LocalProtocolError`, as the constructor does.
"""

from __future__ import annotations

from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    EventDNBackInService,
    EventDNOutOfService,
    EventLinkConnected,
    EventLinkDisconnected,
    EventRegistered,
    EventUnregistered,
)
from ivr_server.switch.requests import TCloseLink, TConfigureAddresses, TOpenLink, TSetInService
from ivr_server.switch.view import checked_dns
from ivr_server.switch.virtual.agents import agent_logout_event
from ivr_server.switch.virtual.core import SwitchCore

__all__ = ["on_close_link", "on_configure_addresses", "on_open_link", "on_set_in_service"]


def on_open_link(sw: SwitchCore, req: TOpenLink) -> None:
    """The T-Server link comes up: EventLinkConnected (nothing if it already was up)."""
    if not sw.view.link_up:
        sw.emit(EventLinkConnected(switch=sw.name, tserver=sw.tserver))


def on_close_link(sw: SwitchCore, req: TCloseLink) -> None:
    """The T-Server link goes down: EventLinkDisconnected (nothing if it already was down).
    Agents, registrations and calls are kept."""
    if sw.view.link_up:
        sw.emit(EventLinkDisconnected(switch=sw.name, tserver=sw.tserver))


def on_set_in_service(sw: SwitchCore, req: TSetInService) -> None:
    """EventDNBackInService / EventDNOutOfService. The agent stays; agent control requests on an
    out-of-service DN fail with TERR_OUT_OF_SERVICE (queries are answered)."""
    record = sw.view.record(req.dn)
    if record is None:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_NOT_CONFIGURED,
            f"DN {req.dn} is not configured on switch {sw.name}",
        )
    elif record.in_service is not req.in_service:
        event_type = EventDNBackInService if req.in_service else EventDNOutOfService
        sw.emit(event_type(switch=sw.name, dn=req.dn))


def on_configure_addresses(sw: SwitchCore, req: TConfigureAddresses) -> None:
    """A removed DN loses its agent (EventAgentLogout first) and, if it was registered, is
    reported EventUnregistered. A new DN is registered (EventRegistered). A DN whose type changed
    is removed and added again. Unchanged DNs keep all their state; the DN order becomes the
    order of ``req.dns``."""
    wanted = checked_dns(req.dns)
    view = sw.view
    for current in list(view.dns()):
        if wanted.get(current.number) is not current.type:
            record = view.record(current.number)
            assert record is not None
            if record.agent is not None:
                sw.emit(agent_logout_event(sw, record))
            if record.registered:
                sw.emit(EventUnregistered(switch=sw.name, dn=record.number))
    added = [
        number
        for number, dn_type in wanted.items()
        if (kept := view.record(number)) is None or kept.type is not dn_type
    ]
    view.configure(wanted.items())
    for number in added:
        sw.emit(EventRegistered(switch=sw.name, dn=number))
