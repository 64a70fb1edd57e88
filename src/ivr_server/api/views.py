"""The read side of the API: the server's state as JSON documents (docs/api.md, "Read").

Each function reads the live objects (configuration, switches, calls, sessions) at the moment it
is called and builds plain JSON values; nothing is cached and nothing is written. Times are Unix
seconds (the service keeps the event loop's clock; :class:`Clock` converts).

``redact=True`` builds the view a request without the token gets under ``[api] public-read``
(docs/api.md, "Authentication"): the calls' user data, caller numbers (ANI, DNIS) and parties
and the webhooks' URLs are ``null``; everything else is the same.
"""

from __future__ import annotations

__all__ = [
    "Clock",
    "call_mode",
    "call_view",
    "calls_view",
    "ivrs_view",
    "routing_points_view",
    "sessions_view",
    "switches_view",
]

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ivr_server.api.jsonify import kv_json
from ivr_server.calls import Call
from ivr_server.routing import routing_point_live
from ivr_server.service.control import Control
from ivr_server.switch import AgentSnapshot, Switch
from ivr_server.vocabulary import ROUTABLE_DN_TYPES


@dataclass(frozen=True, slots=True)
class Clock:
    """Converts the event loop's time (what the service records) to Unix time."""

    loop_time: Callable[[], float]

    def unix(self, loop_time: float) -> float:
        return round(time.time() - (self.loop_time() - loop_time), 3)


def _agent(agent: AgentSnapshot | None) -> dict[str, Any] | None:
    if agent is None:
        return None
    return {
        "agent_id": agent.agent_id,
        "state": agent.state.value,
        "queue": agent.queue,
        "work_mode": agent.work_mode.value,
    }


def switches_view(control: Control) -> list[dict[str, Any]]:
    """Every switch: its T-Server, link state, how many calls it holds, and its DNs."""
    return [
        {
            "name": switch.name,
            "tserver": switch.tserver,
            "link_up": switch.view.link_up,
            "calls": sum(1 for _ in switch.view.calls()),
            "dns": [
                {
                    "number": dn.number,
                    "type": dn.type.value,
                    "registered": dn.registered,
                    "in_service": dn.in_service,
                    "agent": _agent(dn.agent),
                }
                for dn in switch.view.dns()
            ],
        }
        for switch in control.service.switches.values()
    ]


def _call_ref(call: Call) -> dict[str, Any]:
    return {"call_id": call.call_id, "conn_id": call.conn_id, "state": call.state.value}


def ivrs_view(control: Control) -> list[dict[str, Any]]:
    """Every IVR of the configuration with its ports: DN, availability, agent, call."""
    service = control.service
    config = service.config
    by_port = {
        (call.ivr, call.port): call for call in service.calls.calls.values() if not call.network
    }
    out: list[dict[str, Any]] = []
    for ivr in config.ivrs:
        ports: list[dict[str, Any]] = []
        for port in ivr.ports:
            switch_name = config.port_switch_name(ivr, port)
            switch = service.switches.get(switch_name) if switch_name is not None else None
            snapshot = switch.view.dn(port.dn) if switch is not None else None
            call = by_port.get((ivr.name, port.number))
            ports.append(
                {
                    "number": port.number,
                    "dn": port.dn,
                    "switch": switch_name,
                    "enabled": port.enabled,
                    "available": service.port_available(ivr, port),
                    "agent": _agent(snapshot.agent) if snapshot is not None else None,
                    "call": _call_ref(call) if call is not None else None,
                }
            )
        out.append(
            {
                "name": ivr.name,
                "enabled": ivr.enabled,
                "legacy_mode": ivr.legacy_mode,
                "tservers": list(ivr.tservers),
                "sessions": [s.id for s in service.sessions.values() if s.ivr_name == ivr.name],
                "ports": ports,
            }
        )
    return out


def sessions_view(control: Control, clock: Clock) -> list[dict[str, Any]]:
    """Every connected session: peer, login, subscriptions, traffic."""
    out: list[dict[str, Any]] = []
    for session in control.service.sessions.values():
        login = session.login
        out.append(
            {
                "id": session.id,
                "peer": session.peer,
                "client_name": login.client_name if login is not None else None,
                "known_client": login.known_client if login is not None else False,
                "version": login.version if login is not None else None,
                "monitor": login.monitor if login is not None else False,
                "documents_in": session.documents_in,
                "documents_out": session.documents_out,
                "opened_at": clock.unix(session.opened_at),
            }
        )
    return out


def call_view(control: Control, call: Call, *, redact: bool = False) -> dict[str, Any]:
    """One call of an IVR port, with its parties and user data from the switch."""
    if redact:
        return {
            **_call_head(call),
            "ani": None,
            "dnis": None,
            **_call_tail(call),
            "parties": None,
            "user_data": None,
        }
    on_switch = call.switch.view.call(call.conn_id) if call.conn_id is not None else None
    user_data = on_switch.user_data if on_switch is not None else None
    parties: list[dict[str, Any]] = []
    if on_switch is not None:
        parties = [
            {"dn": dn, "role": "port" if dn == call.dn else "party"} for dn in on_switch.parties
        ]
        if on_switch.routing_point is not None:
            parties.append({"dn": on_switch.routing_point, "role": "routing-point"})
    return {
        **_call_head(call),
        "ani": call.ani,
        "dnis": call.dnis,
        **_call_tail(call),
        "parties": parties,
        "user_data": kv_json(user_data if user_data is not None else call.last_user_data),
    }


def call_mode(call: Call) -> str:
    """``In-Front``, ``Behind`` or ``Network`` (MODES-AND-HA §1)."""
    return "Network" if call.network else "Behind" if call.behind else "In-Front"


def _call_head(call: Call) -> dict[str, Any]:
    return {
        "call_id": call.call_id,
        "mode": call_mode(call),
        "ivr": call.ivr,
        "port": call.port,
        "dn": call.dn,
        "routing_dn": call.dn if call.network else None,
        "switch": call.switch.name,
        "conn_id": call.conn_id,
        "tscall_id": call.switch_call_id,
        "state": call.state.value,
    }


def _call_tail(call: Call) -> dict[str, Any]:
    return {
        "called_num": call.called_num,
        "last_event": call.last_event,
        "route_dn": call.route_dn,
        "treatment": call.treatment,
        "connected": call.owner is not None,
    }


def calls_view(control: Control, *, redact: bool = False) -> list[dict[str, Any]]:
    """Every call, oldest first."""
    return [
        call_view(control, call, redact=redact) for call in control.service.calls.calls.values()
    ]


def routing_points_view(
    control: Control, clock: Clock, *, redact: bool = False
) -> list[dict[str, Any]]:
    """Every routing point: who routes its calls, and the calls waiting there."""
    service = control.service
    by_conn: dict[str, Call] = {}
    network: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for call in service.calls.calls.values():
        if call.conn_id is not None:
            by_conn[call.conn_id] = call
        if call.network:
            network.setdefault((call.switch.name, call.dn), []).append(
                _network_call(call, clock, redact)
            )
    out: list[dict[str, Any]] = []
    for switch in service.switches.values():
        slot = service.routers.get(switch.name)
        for dn in switch.view.dns():
            if dn.type not in ROUTABLE_DN_TYPES:
                continue
            choice = control.router_choice(switch.name, dn.number)
            out.append(
                {
                    "switch": switch.name,
                    "dn": dn.number,
                    "router": choice.mode,
                    "router_live": routing_point_live(slot, dn.number, service.now),
                    "url": None if redact else choice.url,
                    "waiting": _waiting(switch, dn.number, by_conn, clock, redact),
                    "network_calls": network.get((switch.name, dn.number), []),
                }
            )
    return out


def _network_call(call: Call, clock: Clock, redact: bool) -> dict[str, Any]:
    """A Network-mode call at its routing DN, in whatever state (PROTOCOL.md §6.3)."""
    return {
        "call_id": call.call_id,
        "conn_id": call.conn_id,
        "ivr": call.ivr,
        "state": call.state.value,
        "ani": None if redact else call.ani,
        "treatment": call.treatment,
        "since": clock.unix(call.route_started) if call.route_started else None,
    }


def _waiting(
    switch: Switch, rp: str, by_conn: dict[str, Call], clock: Clock, redact: bool
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for waiting in switch.view.waiting_calls(rp):
        call = by_conn.get(waiting.conn_id)
        out.append(
            {
                "conn_id": waiting.conn_id,
                "call_id": call.call_id if call is not None else None,
                "ivr": call.ivr if call is not None else None,
                "port": call.port if call is not None else None,
                "ani": None if redact else waiting.ani,
                "dnis": None if redact else waiting.dnis,
                "treatment": waiting.treatment,
                "since": clock.unix(call.route_started) if call is not None else None,
            }
        )
    return out
