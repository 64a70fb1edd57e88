"""Network-mode calls in memory (PROTOCOL.md §6.3 rows N1-N18, MODES-AND-HA §1.3 N-a..N-n): the
table as data, every row and refused pair through the whole service, what the router sees on the
routing DN, and a property that no sequence of inputs leaves anything behind once calls ended.

The server runs examples/network.toml (routing DNs 8000-8009, built-in rules: every call to
7002). Routing DN 8009 is handed to an external router that the tests play themselves
(``Control.route_call`` / ``apply_treatment``), as an API client would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr_server.calls.machine import CallInput, CallState, Refuse
from ivr_server.calls.network_table import (
    NETWORK_REFUSALS,
    NETWORK_STATES,
    NETWORK_TRANSITIONS,
    network_markdown_table,
)
from ivr_server.config import ServerConfig, load_config
from ivr_server.service.control import Control
from ivr_server.switch import SwitchEvent
from ivr_server.wire import messages as m
from tests.service.memory import MemoryServer

ROOT = Path(__file__).resolve().parents[2]
SWITCH = "SW_Network"
EXTERNAL = "8009"
"""The routing DN the tests route themselves (an external router)."""
BLOCKED = m.CallError(FailedReq="Unknown", TlibErrCode="BLOCKED_REQ")
UNSUP = m.CallError(FailedReq="Unknown", TlibErrCode="UNSUP_OPER")
TO_7002 = m.RouteResponse(RouteType="Normal", Dest="7002")


def network_config(**server: Any) -> ServerConfig:
    config = load_config(ROOT / "examples/network.toml")
    if server:
        config = config.model_copy(update={"server": config.server.model_copy(update=server)})
    return config


class Site:
    """A server on examples/network.toml, a session, the router's view of the switch."""

    def __init__(self, config: ServerConfig | None = None, login: bool = True) -> None:
        self.server = MemoryServer(config or network_config())
        self.service = self.server.service
        self.service.now = self.server.now
        self.control = Control(self.service)
        self.control.set_router(SWITCH, EXTERNAL, "external")
        self.events: list[SwitchEvent] = []
        self.service.listeners.append(lambda _switch, event: self.events.append(event))
        self.ivr = self.server.connect()
        if login:
            self.ivr.login("NetIVR")

    @property
    def switch(self) -> Any:
        return self.service.switches[SWITCH]

    def seen(self, dn: str | None = None) -> list[str]:
        """Names of the events since the last look (on ``dn`` only, if given)."""
        got = [e.name for e in self.events if dn is None or getattr(e, "dn", None) == dn]
        self.events.clear()
        return got

    def conn_id(self, call_id: str) -> str:
        conn_id = self.service.calls.find(call_id)[0].conn_id
        assert conn_id is not None
        return conn_id

    def state(self, call_id: str) -> str:
        return self.service.calls.find(call_id)[0].state.value

    def route(self, call_id: str, dest: str = "7001", route_type: Any = "Normal") -> Any:
        result = self.control.route_call(
            SWITCH, EXTERNAL, self.conn_id(call_id), route_type=route_type, dest=dest
        )
        self.server.shuttle()
        return result

    def treat(self, call_id: str, kind: str = "Music") -> Any:
        result = self.control.apply_treatment(
            SWITCH, EXTERNAL, self.conn_id(call_id), treatment_type=kind
        )
        self.server.shuttle()
        return result

    def assert_nothing_left(self) -> None:
        calls = self.service.calls
        assert calls.calls == {}
        assert calls.timer_count() == 0
        assert calls.pending_count() == 0
        assert list(self.switch.view.calls()) == []
        for router in self.service.routers.values():
            default = getattr(router, "default", router)
            assert getattr(default, "dialogs", list)() == []


def new_call(dn: str = "8000", mode: str = "Network", version: str = "4.0", extra: str = "") -> str:
    return (
        f"<NewCall CallControlMode='{mode}' Version='{version}'><CalledNum>{dn}</CalledNum>"
        f"<ANI>5551234</ANI>{extra}</NewCall>"
    )


END = "<EndCall EndCause='Normal'/>"


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site()
    yield site
    site.assert_nothing_left()


# -- the table as data ----------------------------------------------------------------------------


def test_docs_show_the_network_table_the_code_runs() -> None:
    text = (ROOT / "docs/calls.md").read_text(encoding="utf-8")
    generated = re.search(
        r"<!-- generated: calls\.network_table\.network_markdown_table\(\) -->\n(.*?)"
        r"<!-- end generated -->",
        text,
        re.S,
    )
    assert generated is not None and generated.group(1) == network_markdown_table()


def test_every_state_is_the_spec_s_and_ends_on_end_call_and_timeouts() -> None:
    assert [s.value for s in NETWORK_STATES] == [
        "STARTED",
        "WAITING",
        "TREAT_STARTING",
        "TREATING",
        "CANCELLING",
        "ROUTED",
        "CONNECTED",
    ]
    for state in NETWORK_STATES:
        for end in (CallInput.END_CALL, CallInput.CALL_TIMEOUT, CallInput.ORPHAN_TIMEOUT):
            assert NETWORK_TRANSITIONS[(state, end)].next_state is None
        # N18: one RouteRequest per call
        if state is not CallState.STARTED:
            assert (state, CallInput.ROUTE_REQUEST) not in NETWORK_TRANSITIONS
            assert (state, CallInput.ROUTE_REQUEST) not in NETWORK_REFUSALS  # BLOCKED_REQ
    assert {s for s, _ in NETWORK_TRANSITIONS} == set(NETWORK_STATES)
    # the Router Timeout runs only while the router owes instructions
    timeouts = [s for s, i in NETWORK_TRANSITIONS if i is CallInput.ROUTER_TIMEOUT]
    assert timeouts == [CallState.WAITING]


def test_refusals_never_shadow_a_row_and_call_control_is_unsupported() -> None:
    assert not set(NETWORK_REFUSALS) & set(NETWORK_TRANSITIONS)
    for state in NETWORK_STATES:
        assert NETWORK_REFUSALS[(state, CallInput.ONE_STEP_XFER)] is Refuse.UNSUP_OPER
        assert NETWORK_REFUSALS[(state, CallInput.RINGING)] is Refuse.IGNORE


def test_the_network_example_loads() -> None:
    config = network_config()
    ivr = config.ivr("NetIVR")
    assert ivr is not None and ivr.ports == ()
    [switch] = config.switches
    assert switch.type == "in-front"
    points = [dn.number for dn in switch.dns if dn.type.value == "routing-point"]
    assert points == [str(n) for n in range(8000, 8010)]
    assert "7002" in {dn.number for dn in switch.dns}
    assert {r.dn: [rule.dn for rule in r.rules] for r in config.routing} == {
        point: ["7002"] for point in points
    }


# -- the mode procedure and admission ---------------------------------------------------------------


def test_a_routing_dn_with_a_router_is_a_network_call_that_takes_no_port(site: Site) -> None:
    assert site.ivr.send("C1", new_call()) == []  # Network: nothing to the IVR
    assert site.ivr.send("C2", new_call()) == []  # two calls wait at one routing DN
    call = site.service.calls.find("C1")[0]
    assert call.network and call.dn == "8000" and call.ivr == "NetIVR"
    assert call.port == call.called_num == "8000"
    assert site.state("C1") == "STARTED"
    assert site.seen("8000") == ["EventQueued", "EventQueued"]
    snapshot = site.switch.view.call(site.conn_id("C1"))
    assert snapshot.network and snapshot.parties == ("8000",) and snapshot.routing_point is None
    for call_id in ("C1", "C2"):
        assert site.ivr.send(call_id, END) == []
    assert site.seen("8000") == ["EventAbandoned", "EventAbandoned"]


@pytest.mark.parametrize("mode", ["none", "external-gone"])
def test_a_routing_dn_without_a_live_router_refuses_the_call(site: Site, mode: str) -> None:
    if mode == "none":
        site.control.set_router(SWITCH, "8001", "none")
        dn = "8001"
    else:
        dn = EXTERNAL
        site.server.advance(site.service.config.api.external_router_window + 1)
    answer = site.ivr.request("C1", new_call(dn))
    assert answer == m.EndCall(EndCause="FeatureNotSupported")
    assert site.seen(dn) == []


def test_called_num_subset_takes_the_rightmost_digits() -> None:
    site = Site(network_config(called_num_subset=4))
    assert site.ivr.send("C1", new_call("+44208000")) == []
    call = site.service.calls.find("C1")[0]
    assert call.dn == "8000" and call.called_num == "+44208000"
    info = site.ivr.request("C1", "<CallInfoReq/>")
    assert isinstance(info, m.CallInfoResp) and info.CalledNum == "8000"
    assert site.ivr.send("C1", END) == []
    site.assert_nothing_left()


def test_genesys_control_is_network_only(site: Site) -> None:
    other = MemoryServer()  # the default configuration: In-Front ports
    ivr = other.connect()
    ivr.login()
    assert ivr.request("C", new_call("1", "Genesys")) == m.EndCall(EndCause="FeatureNotSupported")


def test_a_session_that_never_logged_in_owns_its_network_calls() -> None:
    site = Site(login=False)
    assert site.ivr.request("C1", new_call(mode="Genesys")) == TO_7002
    assert site.service.calls.find("C1")[0].ivr == ""
    assert site.ivr.request("C1", "<CallInfoReq/>").tag == "CallInfoResp"
    other = site.server.connect()  # another login-less session: not its call, not logged in
    assert other.request("C1", "<CallInfoReq/>") == m.CallError(
        FailedReq="Unknown", TlibErrCode="INVALID_REQ"
    )
    # no login: In-Front requests stay refused
    assert other.request("C9", new_call("1")).tag == "EndCall"
    site.ivr.login("NetIVR")  # a login later: the call stays the session's own
    assert site.ivr.request("C1", "<CallInfoReq/>").tag == "CallInfoResp"
    other.login("NetIVR")  # and no other session's, even of that IVR
    assert other.request("C1", "<CallInfoReq/>") == m.CallError(FailedReq="NoSuchCall")
    site.ivr.close()  # the owner goes: orphan-call-timeout, no adoption
    assert site.service.calls.find("C1")
    site.server.advance(site.service.calls.settings.orphan_call_timeout + 1)
    site.assert_nothing_left()


def test_flow_control_does_not_pause_network_calls(site: Site) -> None:
    site.service.set_flow_control(True)
    site.server.shuttle()
    site.ivr.take()
    assert site.ivr.send("C1", new_call()) == []
    assert site.ivr.send("C1", END) == []
    site.service.set_flow_control(False)
    site.server.shuttle()
    site.ivr.take()


# -- rows N1-N18 ------------------------------------------------------------------------------------


def test_simple_routing_network_control(site: Site) -> None:
    """N2, N3, N7, N8, N6 (connected): XMLG p.147."""
    site.ivr.send("C1", new_call())
    assert site.ivr.request("C1", "<RouteRequest RouteDN='9999'><CED>12</CED></RouteRequest>") == (
        TO_7002
    )
    assert site.state("C1") == "ROUTED"
    assert site.seen("8000") == ["EventQueued", "EventRouteRequest", "RequestRouteCall"]
    assert site.ivr.send("C1", "<Connected/>") == []
    assert site.state("C1") == "CONNECTED"
    assert site.seen("8000") == ["EventDiverted", "EventRouteUsed"]
    assert site.ivr.send("C1", END) == []
    assert site.seen("8000") == ["EventReleased"]


def test_simple_routing_genesys_control(site: Site) -> None:
    """N1, N7, N8 (no EventDiverted), N6."""
    assert site.ivr.request("C1", new_call(mode="Genesys")) == TO_7002
    assert site.seen("8000") == ["EventRouteRequest", "RequestRouteCall"]
    site.ivr.send("C1", "<Connected/>")
    assert site.seen("8000") == ["EventRouteUsed"]
    site.ivr.send("C1", END)


def test_treatments_and_a_route_during_one(site: Site) -> None:
    """N11-N17: TreatCall, TreatStatus Started/NotStarted/Completed, a second TreatCall, a
    route while treating (Cancel, CancelCompleted, the held RouteResponse)."""
    site.ivr.send("C1", new_call(EXTERNAL))
    site.ivr.send("C1", "<RouteRequest/>")
    assert site.state("C1") == "WAITING"
    site.treat("C1")
    assert site.ivr.messages() == [m.TreatCall(Type="Music")]
    assert site.ivr.send("C1", "<TreatStatus Status='NotStarted'/>") == []
    assert site.state("C1") == "WAITING"
    site.treat("C1", "PlayAnnounce")
    site.ivr.take()
    site.ivr.send("C1", "<TreatStatus Status='Started'/>")
    assert site.state("C1") == "TREATING"
    site.treat("C1", "Music")  # N13: a new TreatCall, no Cancel
    assert site.ivr.messages() == [m.TreatCall(Type="Music")]
    site.ivr.send("C1", "<TreatStatus Status='Started'/>")
    site.ivr.send("C1", "<TreatStatus Status='Completed'/>")
    assert site.state("C1") == "WAITING"
    site.treat("C1")
    site.ivr.send("C1", "<TreatStatus Status='Started'/>")
    site.route("C1", "7003")
    assert site.ivr.messages() == [m.Cancel()]
    assert site.state("C1") == "CANCELLING"
    assert site.ivr.request("C1", "<CancelCompleted/>") == m.RouteResponse(
        RouteType="Normal", Dest="7003"
    )
    assert site.state("C1") == "ROUTED"
    seen = site.seen(EXTERNAL)
    assert seen.count("EventTreatmentNotApplied") == 1 and "EventTreatmentEnd" in seen
    assert "EventTreatmentApplied" in seen
    site.ivr.send("C1", "<Connected/>")
    site.ivr.send("C1", END)


def test_failure_reroutes_and_a_connected_call_is_rerouted(site: Site) -> None:
    """N10 then N7 again; N9: the router's unsolicited reroute of a connected call."""
    site.ivr.send("C1", new_call(EXTERNAL))
    site.ivr.send("C1", "<RouteRequest/>")
    site.route("C1", "7001")
    assert site.ivr.messages() == [m.RouteResponse(RouteType="Normal", Dest="7001")]
    site.seen()
    assert site.ivr.send("C1", "<Failure FailureCause='NoAnswer'/>") == []
    assert site.state("C1") == "WAITING"
    errors = [e for e in site.events if e.name == "EventError"]
    assert [e.error_code for e in errors] == [232]  # type: ignore[attr-defined]
    site.route("C1", "7002")
    assert site.ivr.messages() == [TO_7002]
    site.ivr.send("C1", "<Connected/>")
    site.seen()
    site.route("C1", "7003", "Reroute")
    assert site.ivr.messages() == [m.RouteResponse(RouteType="Reroute", Dest="7003")]
    assert site.state("C1") == "ROUTED"
    site.ivr.send("C1", "<Connected/>")
    assert site.seen(EXTERNAL) == ["RequestRouteCall", "EventRouteUsed"]  # no EventDiverted
    site.ivr.send("C1", END)
    assert site.seen(EXTERNAL) == ["EventReleased"]


def test_router_silence_ends_the_call_with_its_data(site: Site) -> None:
    """N5: EndCall EndCause='Timeout' with the call's user data (N-l), EventRouteUsed."""
    udata = "<UDataEx><Node Name='Lang' Type='Str' Val='en'/></UDataEx>"
    site.ivr.send("C1", new_call(EXTERNAL, extra=udata))
    site.ivr.send("C1", "<RouteRequest/>")
    site.seen()
    site.server.advance(site.service.calls.settings.router_timeout + 0.01)
    [end] = site.ivr.messages()
    assert isinstance(end, m.EndCall) and end.EndCause == "Timeout"
    assert end.UDataEx is not None and end.UDataEx[0].Name == "Lang"
    assert site.seen(EXTERNAL) == ["EventRouteUsed", "EventReleased"]


def test_the_router_timeout_restarts_after_a_treatment(site: Site) -> None:
    timeout = site.service.calls.settings.router_timeout
    site.ivr.send("C1", new_call(EXTERNAL, mode="Genesys"))
    site.server.advance(timeout / 2)
    site.treat("C1")
    site.ivr.send("C1", "<TreatStatus Status='Started'/>")
    site.server.advance(timeout * 2)  # no router timer while the treatment plays
    assert site.state("C1") == "TREATING"
    site.ivr.send("C1", "<TreatStatus Status='Completed'/>")
    site.server.advance(timeout / 2)
    assert site.state("C1") == "WAITING"
    site.server.advance(timeout / 2 + 0.01)
    assert [msg.tag for msg in site.ivr.messages()] == ["EndCall"]


def test_end_call_never_connected_abandons(site: Site) -> None:
    """N6 before Connected: EventAbandoned (also while routed)."""
    site.ivr.send("C1", new_call(EXTERNAL))
    site.ivr.send("C1", "<RouteRequest/>")
    site.route("C1")
    site.ivr.take()
    site.seen()
    site.ivr.send("C1", END)
    assert site.seen(EXTERNAL) == ["EventAbandoned"]


@pytest.mark.parametrize(
    ("setup", "request_", "answer"),
    [
        ([], "<Connected/>", BLOCKED),  # Connected before a RouteResponse
        (["<RouteRequest/>"], "<RouteRequest/>", BLOCKED),  # N18: a second RouteRequest
        (["<RouteRequest/>", "<Connected/>"], "<Failure FailureCause='Busy'/>", BLOCKED),
        (["<RouteRequest/>", "<Connected/>"], "<RouteRequest/>", BLOCKED),
        ([], "<TreatStatus Status='Started'/>", BLOCKED),
        ([], "<CancelCompleted/>", BLOCKED),
        ([], "<OneStepXfer DestDN='7001'/>", UNSUP),  # G20
        ([], "<InitConf DestDN='7001'/>", UNSUP),
        ([], "<RetrieveCall/>", UNSUP),
        (
            [],
            "<UDataSet Action='Add'><RequestId>1</RequestId>"
            "<UDataEx><Node Name='a' Type='Str' Val='b'/></UDataEx></UDataSet>",
            m.UDataResp(Result="FeatureNotSupported", RequestId="1"),
        ),
        (
            [],
            "<UDataDel Action='DeleteAll'><RequestId>2</RequestId></UDataDel>",
            m.UDataResp(Result="FeatureNotSupported", RequestId="2"),
        ),
        (
            [],
            "<UDataSet Action='Replace'><RequestId>3</RequestId>"
            "<UDataEx><Node Name='a' Type='Str' Val='b'/></UDataEx></UDataSet>",
            m.UDataResp(Result="Success", RequestId="3"),
        ),
        (
            [],
            "<AccessNumGet DestDN='7001' Location='Remote'/>",
            m.AccessNumResp(Action="Get", Result="Failure"),
        ),
    ],
)
def test_requests_out_of_turn_get_documented_answers(
    site: Site, setup: list[str], request_: str, answer: m.Message
) -> None:
    site.ivr.send("C1", new_call())
    for step in setup:
        site.ivr.send("C1", step)
    state = site.state("C1")
    got = site.ivr.request("C1", request_)
    assert got == answer or (isinstance(answer, m.AccessNumResp) and got.tag == "AccessNumResp")
    assert site.state("C1") == state
    site.ivr.send("C1", END)


def test_make_call_from_a_routing_dn_is_unsupported(site: Site) -> None:
    answer = site.ivr.request("M1", "<MakeCall OrigNum='8000' DestNum='7001'/>")
    assert answer == UNSUP


@pytest.mark.parametrize(("version", "home"), [("2.0", None), ("3.0", SWITCH), ("4.0", SWITCH)])
def test_call_info_names_the_routing_dn(site: Site, version: str, home: str | None) -> None:
    site.ivr.send("C1", new_call(version=version))
    info = site.ivr.request("C1", "<CallInfoReq/>")
    assert info == m.CallInfoResp(
        ANI="5551234",
        CalledNum="8000",
        ConnId=site.conn_id("C1"),
        TSCallId=str(site.service.calls.find("C1")[0].switch_call_id),
        LastEvent="EventQueued",
        FirstHomeLocation=home,
    )
    site.ivr.send("C1", END)


def test_the_switch_clearing_the_call_ends_it_abandoned(site: Site) -> None:
    site.ivr.send("C1", new_call())
    site.control.release("C1")
    site.server.shuttle()
    assert site.ivr.messages() == [m.EndCall(EndCause="Abandoned")]


def test_call_timeout_and_the_operator_end_it(site: Site) -> None:
    site.ivr.send("C1", new_call())
    site.service.calls.end_by_operator(site.service.calls.find("C1")[0].key, site.server.now)
    site.server.shuttle()
    assert site.ivr.messages() == [m.EndCall(EndCause="Timeout")]
    site.ivr.send("C2", new_call(mode="Genesys"))
    site.ivr.take()
    site.ivr.send("C2", "<Connected/>")
    site.server.advance(site.service.calls.settings.call_timeout + 1)
    assert site.ivr.messages() == [m.EndCall(EndCause="Timeout")]


# -- nothing left behind ------------------------------------------------------------------------------

IVR_STEPS = [
    "<RouteRequest/>",
    "<Connected/>",
    "<Failure FailureCause='Busy'/>",
    "<TreatStatus Status='Started'/>",
    "<TreatStatus Status='NotStarted'/>",
    "<TreatStatus Status='Completed'/>",
    "<CancelCompleted/>",
    "<CallInfoReq/>",
    "<UDataSet Action='Replace'><RequestId>1</RequestId>"
    "<UDataEx><Node Name='k' Type='Str' Val='v'/></UDataEx></UDataSet>",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    genesys=st.booleans(),
    steps=st.lists(
        st.one_of(
            st.sampled_from(IVR_STEPS),
            st.sampled_from(["route", "reroute", "treat", "tick", "release"]),
        ),
        max_size=14,
    ),
    end=st.sampled_from(["EndCall", "timeout", "close"]),
)
def test_no_sequence_leaves_anything_behind(genesys: bool, steps: list[str], end: str) -> None:
    site = Site()
    site.ivr.send("C1", new_call(EXTERNAL, "Genesys" if genesys else "Network"))
    calls = site.service.calls
    for step in steps:
        if not calls.find("C1"):
            break
        if step.startswith("<"):
            site.ivr.send("C1", step)
        elif step == "tick":
            site.server.advance(calls.settings.router_timeout / 3)
        elif step == "release":
            site.control.release("C1")
            site.server.shuttle()
        elif step == "treat":
            site.control.apply_treatment(
                SWITCH, EXTERNAL, site.conn_id("C1"), treatment_type="Music"
            )
            site.server.shuttle()
        else:
            site.control.route_call(
                SWITCH,
                EXTERNAL,
                site.conn_id("C1"),
                route_type="Reroute" if step == "reroute" else "Normal",
                dest="7001",
            )
            site.server.shuttle()
        if calls.find("C1"):
            assert calls.find("C1")[0].state in NETWORK_STATES
    if calls.find("C1"):
        if end == "EndCall":
            site.ivr.send("C1", END)
        elif end == "timeout":
            site.server.advance(calls.settings.call_timeout + 1)
        else:
            site.ivr.close()
            site.server.advance(calls.settings.orphan_call_timeout + 1)
    site.assert_nothing_left()
