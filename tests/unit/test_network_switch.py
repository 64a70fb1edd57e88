"""The virtual switch as the Network T-Server of its routing DNs (switch/virtual/network.py):
``TNetworkCall`` and what the router sees of a Network call, request by request (PROTOCOL.md
§6.3, §6.5.5), the view's ``network``/``routed``/``connected``, and every refusal."""

from __future__ import annotations

import itertools

import pytest

from ivr_server.switch import (
    DnType,
    EventError,
    EventQueued,
    EventRouteRequest,
    EventRouteUsed,
    RequestRouteCall,
    SwitchEvent,
    SwitchRequest,
    TAbandonCall,
    TApplyTreatment,
    TErrorCode,
    TInboundCall,
    TNetworkCall,
    TNetworkConnected,
    TOpenLink,
    TReleaseCall,
    TRouteAbort,
    TRouteCall,
    TRouteFailed,
    TRouteRequest,
    TTreatmentStatus,
)
from ivr_server.switch.virtual import VirtualSwitch
from ivr_server.wire.kv import str_node

RP = "8000"
PORT = "4001"
DEST = "7002"
_refs = itertools.count(1)


def make_switch() -> VirtualSwitch:
    switch = VirtualSwitch(
        "SW",
        "TS",
        [(RP, DnType.ROUTING_POINT), (PORT, DnType.VOICE_TREATMENT_PORT), (DEST, DnType.EXTENSION)],
    )
    switch.request(TOpenLink(reference_id=0))
    switch.drain_events()
    return switch


def send(switch: VirtualSwitch, request: SwitchRequest) -> list[SwitchEvent]:
    switch.request(request)
    return switch.drain_events()


def names(events: list[SwitchEvent]) -> list[str]:
    return [event.name for event in events]


def network_call(switch: VirtualSwitch, route_now: bool = False) -> str:
    [first] = send(
        switch,
        TNetworkCall(
            reference_id=next(_refs),
            dn=RP,
            ani="555",
            dnis="800",
            user_data=(str_node("a", "1"),),
            route_now=route_now,
        ),
    )
    assert isinstance(first, EventRouteRequest if route_now else EventQueued)
    assert first.dn == RP and first.ani == "555" and first.other_dn is None
    return first.conn_id


def route(switch: VirtualSwitch, conn_id: str, route_type: str = "Normal") -> list[SwitchEvent]:
    return send(
        switch,
        TRouteCall(
            reference_id=next(_refs),
            conn_id=conn_id,
            dn=RP,
            route_type=route_type,  # type: ignore[arg-type]
            dest=DEST,
        ),
    )


def present(switch: VirtualSwitch, conn_id: str) -> list[SwitchEvent]:
    return send(
        switch,
        TRouteRequest(
            reference_id=next(_refs), conn_id=conn_id, dn=RP, route_dn=RP, collected_digits="1"
        ),
    )


def connected(switch: VirtualSwitch, conn_id: str) -> list[SwitchEvent]:
    return send(switch, TNetworkConnected(reference_id=next(_refs), conn_id=conn_id, dn=RP))


def refused(events: list[SwitchEvent]) -> EventError:
    [error] = events
    assert isinstance(error, EventError)
    return error


def test_a_network_call_waits_at_its_routing_dn_until_connected() -> None:
    switch = make_switch()
    conn_id = network_call(switch)
    snap = switch.view.call(conn_id)
    assert snap is not None and snap.network and snap.parties == (RP,)
    assert snap.routing_point is None and snap.user_data == (str_node("a", "1"),)
    events = present(switch, conn_id)
    assert names(events) == ["EventRouteRequest"]
    assert switch.view.waiting_calls(RP)[0].conn_id == conn_id
    events = route(switch, conn_id)
    assert names(events) == ["RequestRouteCall"]  # no EventRouteUsed yet
    snap = switch.view.call(conn_id)
    assert snap is not None and snap.routed and snap.routed_to == DEST
    assert snap.routing_point is None and not switch.view.waiting_calls(RP)
    events = connected(switch, conn_id)
    assert names(events) == ["EventDiverted", "EventRouteUsed"]
    assert events[0].other_dn == DEST  # type: ignore[attr-defined]
    assert isinstance(events[1], EventRouteUsed) and events[1].dest == DEST
    snap = switch.view.call(conn_id)
    assert snap is not None and snap.connected and not snap.routed
    # the router's unsolicited reroute; its Connected has no EventDiverted
    assert names(route(switch, conn_id, "Reroute")) == ["RequestRouteCall"]
    assert names(connected(switch, conn_id)) == ["EventRouteUsed"]
    assert names(send(switch, TReleaseCall(reference_id=1, conn_id=conn_id, dn=RP))) == [
        "EventReleased"
    ]
    assert list(switch.view.calls()) == []


def test_genesys_control_presents_the_call_at_once_and_failure_waits_again() -> None:
    switch = make_switch()
    conn_id = network_call(switch, route_now=True)
    assert switch.view.waiting_calls(RP)[0].conn_id == conn_id
    route(switch, conn_id)
    error = refused(
        send(switch, TRouteFailed(reference_id=7, conn_id=conn_id, dn=RP, error_code=83))
    )
    assert error.request == "TRouteCall" and error.conn_id == conn_id and error.error_code == 83
    assert switch.view.waiting_calls(RP)[0].conn_id == conn_id  # waits again
    treat = TApplyTreatment(reference_id=8, conn_id=conn_id, dn=RP, treatment_type="Music")
    assert names(send(switch, treat)) == ["RequestApplyTreatment"]
    status = TTreatmentStatus(
        reference_id=9, conn_id=conn_id, dn=RP, status="Started", treatment_type="Music"
    )
    assert names(send(switch, status)) == ["EventTreatmentApplied"]
    assert names(connected(switch, conn_id)) == ["EventError"]  # not routed
    assert names(send(switch, TRouteAbort(reference_id=1, conn_id=conn_id, dn=RP))) == [
        "EventRouteUsed"
    ]
    assert names(send(switch, TReleaseCall(reference_id=2, conn_id=conn_id, dn=RP))) == [
        "EventReleased"
    ]
    assert list(switch.view.calls()) == []


@pytest.mark.parametrize("routed", [False, True])
def test_abandoned_before_connected(routed: bool) -> None:
    switch = make_switch()
    conn_id = network_call(switch)
    present(switch, conn_id)
    if routed:
        route(switch, conn_id)
    events = send(switch, TAbandonCall(reference_id=3, conn_id=conn_id, dn=RP))
    assert names(events) == ["EventAbandoned"]
    assert list(switch.view.calls()) == []


def test_released_while_waiting_ends_the_route_dialog_first() -> None:
    switch = make_switch()
    conn_id = network_call(switch, route_now=True)
    events = send(switch, TReleaseCall(reference_id=3, conn_id=conn_id, dn=RP))
    assert names(events) == ["EventRouteUsed", "EventReleased"]


def test_refusals() -> None:
    switch = make_switch()
    # a Network call only at a routing point, with data that fits
    error = refused(send(switch, TNetworkCall(reference_id=1, dn=DEST)))
    assert error.error_code == TErrorCode.TERR_INVALID_ATTR
    error = refused(send(switch, TNetworkCall(reference_id=1, dn="9999")))
    assert error.error_code == TErrorCode.TERR_NOT_CONFIGURED
    big = (str_node("big", "x" * 17000),)
    assert names(send(switch, TNetworkCall(reference_id=1, dn=RP, user_data=big))) == ["EventError"]
    conn_id = network_call(switch)
    # not routed: no Connected, no Failure; not waiting: no route
    assert names(connected(switch, conn_id)) == ["EventError"]
    failed = TRouteFailed(reference_id=2, conn_id=conn_id, dn=RP, error_code=83)
    assert names(send(switch, failed)) == ["EventError"]
    assert refused(route(switch, conn_id)).request == "TRouteCall"
    present(switch, conn_id)
    assert names(present(switch, conn_id)) == ["EventError"]  # presented once
    route(switch, conn_id)
    assert names(route(switch, conn_id)) == ["EventError"]  # routed already
    connected(switch, conn_id)
    assert names(present(switch, conn_id)) == ["EventError"]  # never again
    # a Network call is not an In-Front port's: TNetworkConnected on a port call is refused
    send(switch, TInboundCall(reference_id=5, dn=PORT))
    port_call = next(c for c in switch.view.calls() if not c.network)
    error = refused(
        send(switch, TNetworkConnected(reference_id=6, conn_id=port_call.conn_id, dn=PORT))
    )
    assert "not a Network call" in error.error_message


def test_an_in_front_call_still_routes_as_before() -> None:
    switch = make_switch()
    send(switch, TInboundCall(reference_id=1, dn=PORT))
    [call] = switch.view.calls()
    events = send(switch, TRouteRequest(reference_id=2, conn_id=call.conn_id, dn=PORT, route_dn=RP))
    assert isinstance(events[0], EventRouteRequest) and events[0].other_dn == PORT
    events = route(switch, call.conn_id)
    assert names(events) == ["RequestRouteCall", "EventRouteUsed"]
    assert isinstance(events[0], RequestRouteCall)
    snap = switch.view.call(call.conn_id)
    assert snap is not None and not snap.network and not snap.routed
