"""The switch registry and the Switch interface: what the layers above may rely on."""

from __future__ import annotations

import pytest

from ivr_server.errors import LocalProtocolError
from ivr_server.switch import (
    SWITCH_KINDS,
    DnType,
    EventError,
    EventLinkConnected,
    Switch,
    SwitchView,
    TErrorCode,
    TInboundCall,
    TOpenLink,
    build_switch,
)
from ivr_server.switch.virtual import VirtualSwitch

DNS = [("4001", DnType.VOICE_TREATMENT_PORT), ("5000", DnType.ROUTING_POINT)]


def test_the_virtual_kind_is_the_virtual_switch_behind_the_interface() -> None:
    switch: Switch = build_switch("virtual", "SW", "TS", DNS, first_conn_id=16, first_call_id=7)
    assert isinstance(switch, VirtualSwitch)
    assert (switch.name, switch.tserver) == ("SW", "TS")
    assert isinstance(switch.view, SwitchView)
    assert not switch.view.link_up
    assert [dn.number for dn in switch.view.dns()] == ["4001", "5000"]
    switch.request(TOpenLink(reference_id=1))
    switch.request(TInboundCall(reference_id=2, dn="4001"))
    # the view is current as soon as request() returns, before the events are drained
    (call,) = switch.view.calls()
    assert (call.conn_id, call.call_id, call.parties) == (f"{16:016x}", 7, ("4001",))
    events = switch.drain_events()
    assert events[0] == EventLinkConnected(switch="SW", tserver="TS")
    assert switch.drain_events() == []
    assert switch.compact() == 0  # a small table is left alone
    assert "virtual" in SWITCH_KINDS


def test_an_unknown_kind_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError, match="nonesuch"):
        build_switch("nonesuch", "SW", "TS", DNS)


def test_a_request_no_switch_handles_is_refused_as_unsupported() -> None:
    from ivr_server.switch.requests import SwitchRequest

    class TUnknown(SwitchRequest, frozen=True, kw_only=True):
        name = "TUnknown"

    switch = build_switch("virtual", "SW", "TS", DNS)
    switch.request(TUnknown(reference_id=5))
    (error,) = switch.drain_events()
    assert isinstance(error, EventError)
    assert (error.error_code, error.reference_id) == (TErrorCode.TERR_UNSUP_OPER, 5)
