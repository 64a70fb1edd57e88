"""Routing and treatments of In-Front calls over real TCP (PROTOCOL.md §3.3.2-§3.3.5, §3.4,
§6.2 rows 12-24, §7 Router Timeout, §10.2).

Three groups:

* state rules that need no router (routing point 5001 has none: the Router Timeout answers);
* the router's side played by the test itself, through the virtual switch's T-Library requests
  (``TApplyTreatment``, ``TRouteCall``) on routing point 5001, while a recorder on the switch's
  router slot records what the router would see (EventRouteRequest, EventTreatment*, …);
* the built-in rule router of the default configuration (routing point 5000), plus a rule with
  two treatments added on 5001 for those tests.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

import pytest

from ivr_server.config import ServerConfig, default_config, parse_config
from ivr_server.runtime import IvrServer
from ivr_server.switch import (
    EventError,
    Switch,
    SwitchEvent,
    SwitchRequest,
    TApplyTreatment,
    TRouteCall,
)
from ivr_server.wire import KvList, int_node, str_node
from tests.integration.rawlink import RawLink, server_doc, start_call

StartServer = Callable[..., Awaitable[IvrServer]]
Connect = Callable[[], Awaitable[RawLink]]

SWITCH = "SW_InFront"
RP = "5001"
"""A routing point no router serves: only the test (or the Router Timeout) answers there."""
TIMEOUT = 0.3
"""The Router Timeout of these tests' servers, seconds."""
BLOCKED = "<CallError FailedReq='Unknown' TlibErrCode='BLOCKED_REQ'/>"
INVALID = "<CallError FailedReq='Unknown' TlibErrCode='INVALID_REQ'/>"
DEFAULT = "<RouteResponse RouteType='Default'/>"
NO_SUCH_CALL = "<CallError FailedReq='NoSuchCall'/>"

_refs = itertools.count(9_000_000_001)


def with_timers(**timers: float) -> ServerConfig:
    """The default configuration with some ``[server.timers]`` values (seconds) replaced."""
    base = default_config()
    server = base.server.model_copy(update={"timers": base.server.timers.model_copy(update=timers)})
    return base.model_copy(update={"server": server})


class Recorder:
    """Sits in the switch's router slot: records every event, passes it on to the router that
    was there (if any), and answers nothing itself."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.events: list[SwitchEvent] = []

    def routing_points(self) -> frozenset[str]:
        points: frozenset[str] = (
            self.inner.routing_points() if self.inner is not None else frozenset()
        )
        return points

    def on_event(self, switch: Switch, event: SwitchEvent) -> None:
        self.events.append(event)
        if self.inner is not None:
            self.inner.on_event(switch, event)

    def seen(self, dn: str = RP) -> list[str]:
        """Names of the events seen on ``dn`` (EventError included), in order."""
        return [e.name for e in self.events if getattr(e, "dn", None) == dn]

    def last(self, name: str) -> Any:
        return next(e for e in reversed(self.events) if e.name == name)


class Env:
    """A server with a short Router Timeout, one logged-in link and the recorder."""

    def __init__(self, server: IvrServer, link: RawLink, recorder: Recorder) -> None:
        self.server = server
        self.link = link
        self.recorder = recorder
        self.switch = server.service.switches[SWITCH]

    async def expect(self, call_id: str, body: str, timeout: float = 3.0) -> None:
        got_id, _, raw = await self.link.recv_doc(timeout)
        assert (got_id, raw) == (call_id, server_doc(call_id, body))

    async def ask(self, call_id: str, request: str, answer: str) -> None:
        await self.link.send(call_id, request)
        await self.expect(call_id, answer)

    async def quiet(self, call_id: str, request: str) -> None:
        """Send a request that gets no answer; prove it by the next request's known answer."""
        await self.link.send(call_id, request)
        await self.barrier()

    async def routed_now(self, call_id: str, dest: str = "7002") -> None:
        """The call waits at RP: the router routes it and the IVR gets RouteResponse Normal."""
        await self.barrier()
        self.route(dest)
        await self.expect(
            call_id, f"<RouteResponse RouteType='Normal'><Dest>{dest}</Dest></RouteResponse>"
        )

    async def barrier(self) -> None:
        await self.ask("sync", "<CallInfoReq/>", NO_SUCH_CALL)

    def conn_id(self, rp: str = RP) -> str:
        (waiting,) = self.switch.view.waiting_calls(rp)
        return waiting.conn_id

    def route(
        self,
        dest: str | None = "7002",
        route_type: str = "Normal",
        extensions: KvList = (),
        rp: str = RP,
        conn_id: str | None = None,
    ) -> None:
        """Play the router: RequestRouteCall (TRouteCall) for the call waiting at ``rp``."""
        self.act(
            TRouteCall(
                reference_id=next(_refs),
                conn_id=conn_id or self.conn_id(rp),
                dn=rp,
                route_type=route_type,  # type: ignore[arg-type]
                dest=dest,
                extensions=extensions,
            )
        )

    def treat(
        self, treatment: str = "PlayApplication", parameters: KvList = (), rp: str = RP
    ) -> None:
        """Play the router: RequestApplyTreatment (TApplyTreatment) for the call at ``rp``."""
        self.act(
            TApplyTreatment(
                reference_id=next(_refs),
                conn_id=self.conn_id(rp),
                dn=rp,
                treatment_type=treatment,
                parameters=parameters,
            )
        )

    def act(self, request: SwitchRequest) -> None:
        self.switch.request(request)
        self.server.service._pump()
        self.server.flush()


@pytest.fixture
async def env(start_server: StartServer) -> AsyncIterator[Env]:
    server = await start_server(with_timers(router_timeout=TIMEOUT))
    recorder = Recorder(server.service.routers.get(SWITCH))
    server.service.routers = {**server.service.routers, SWITCH: recorder}
    link = await RawLink.open(server.port)
    await link.login("L")
    await start_call(link, "C", "1", "<DNIS>800</DNIS><ANI>555</ANI>")
    yield Env(server, link, recorder)
    await link.close()


def assert_no_leaks(server: IvrServer) -> None:
    calls = server.service.calls
    assert calls.calls == {}
    assert calls.timer_count() == 0
    assert calls.pending_count() == 0
    assert list(server.service.switches[SWITCH].view.calls()) == []


async def elapsed_until(env: Env, call_id: str, body: str) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await env.expect(call_id, body)
    return loop.time() - start


PLAY_APP = "<TreatCall Type='PlayApplication'><Parameters><Node Name='APP_ID' Type='Int' Val='1'/></Parameters></TreatCall>"


# ---------------------------------------------------------------------------------- no router


async def test_route_request_needs_a_routing_point(env: Env) -> None:
    for request_body in (
        "<RouteRequest/>",
        "<RouteRequest><CED>12</CED></RouteRequest>",
        "<RouteRequest RouteDN=''/>",
        "<RouteRequest RouteDN='4001'/>",  # the port's own DN
        "<RouteRequest RouteDN='7001'/>",  # an extension
        "<RouteRequest RouteDN='6000'/>",  # an ACD queue
        "<RouteRequest RouteDN='9999'/>",  # no such DN
        "<RouteRequest RouteDN='5001 '/>",  # DNs compare exactly
    ):
        await env.ask("C", request_body, INVALID)
    assert env.switch.view.waiting_calls(RP) == []
    await env.link.expect_silence(TIMEOUT + 0.05)  # no routing started, no timer
    # the call is still STARTED: a good RouteRequest is accepted
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.expect("C", DEFAULT)


async def test_route_dn_in_the_guides_spelling_is_accepted(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDn='{RP}'/>")
    await env.routed_now("C")


async def test_router_timeout_gives_route_response_default_and_ends_the_dialog(
    env: Env,
) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'><CED>1442914432</CED></RouteRequest>")
    await env.barrier()
    assert len(env.switch.view.waiting_calls(RP)) == 1
    request = env.recorder.last("EventRouteRequest")
    assert (request.collected_digits, request.other_dn) == ("1442914432", "4001")
    assert await elapsed_until(env, "C", DEFAULT) >= TIMEOUT - 0.1
    assert env.switch.view.waiting_calls(RP) == []
    assert env.recorder.seen() == ["EventRouteRequest", "EventRouteUsed"]
    await env.link.expect_silence(TIMEOUT + 0.05)


async def test_second_route_request_while_routing_is_blocked(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.ask("C", f"<RouteRequest RouteDN='{RP}'/>", BLOCKED)
    await env.ask("C", "<RouteRequest RouteDN='5000'/>", BLOCKED)
    await env.ask("C", "<RouteRequest/>", BLOCKED)
    await env.expect("C", DEFAULT)  # the first one's timeout; exactly one answer
    await env.link.expect_silence(TIMEOUT + 0.05)


@pytest.mark.parametrize(
    "request_body",
    [
        "<TreatStatus Status='Started'/>",
        "<TreatStatus Status='NotStarted'/>",
        "<TreatStatus Status='Completed' CED='1'/>",
        "<CancelCompleted/>",
        "<Failure FailureCause='Busy'/>",
    ],
)
async def test_treatment_and_failure_messages_out_of_state_are_blocked(
    env: Env, request_body: str
) -> None:
    await env.ask("C", request_body, BLOCKED)  # STARTED
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.ask("C", request_body, BLOCKED)  # ROUTING: no TreatCall, no RouteResponse yet
    await env.routed_now("C")  # the routing went on undisturbed


async def test_connected_while_routing_aborts_the_routing(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.quiet("C", "<Connected/>")
    assert env.switch.view.waiting_calls(RP) == []
    assert env.recorder.seen() == ["EventRouteRequest", "EventRouteUsed"]
    await env.link.expect_silence(TIMEOUT + 0.1)  # no Router Timeout any more
    # back in STARTED: a new RouteRequest is accepted
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.expect("C", DEFAULT)


async def test_route_requests_after_route_response_and_connected(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.expect("C", DEFAULT)
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")  # ROUTED (Default): allowed
    await env.routed_now("C")
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")  # ROUTED (Normal): allowed
    await env.routed_now("C")
    await env.quiet("C", "<Connected/>")  # ROUTED -> CONNECTED, no answer
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")  # CONNECTED: allowed
    await env.routed_now("C")
    await env.link.expect_silence(TIMEOUT + 0.05)


async def test_failure_after_route_response_routes_again(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.expect("C", DEFAULT)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    await env.quiet("C", "<Failure FailureCause='Busy'/>")
    error = env.recorder.last("EventError")
    assert isinstance(error, EventError)
    assert (error.dn, error.error_code) == (RP, 83)
    await env.expect("C", DEFAULT)  # the restarted Router Timeout
    assert loop.time() - sent >= TIMEOUT - 0.1
    await env.link.expect_silence(TIMEOUT + 0.05)


async def test_failure_causes_reach_the_router_as_error_codes(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.routed_now("C")
    for cause, code in (
        ("Busy", 83),
        ("NoAnswer", 232),
        ("ConnectFailed", 234),
        ("ConnectionFailed", 234),  # the guide's spelling (PROTOCOL.md §3.11 row 8)
    ):
        await env.quiet("C", f"<Failure FailureCause='{cause}'/>")
        error = env.recorder.last("EventError")
        assert isinstance(error, EventError)
        assert (error.dn, error.error_code) == (RP, code)
        await env.routed_now("C")  # the router chose again


async def test_end_call_while_routing_sends_nothing_more(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.quiet("C", "<EndCall EndCause='Normal'/>")
    await env.link.expect_silence(TIMEOUT + 0.1)
    assert env.recorder.seen() == ["EventRouteRequest", "EventRouteUsed"]
    assert_no_leaks(env.server)


async def test_route_request_user_data_is_attached_with_replace(env: Env) -> None:
    await env.ask(
        "C",
        "<UDataSet Action='Add'><RequestId>1</RequestId><UDataEx>"
        "<Node Name='a' Type='Str' Val='1'/><Node Name='b' Type='Str' Val='2'/>"
        "<Node Name='a' Type='Str' Val='3'/></UDataEx></UDataSet>",
        "<UDataResp Result='Success'><RequestId>1</RequestId></UDataResp>",
    )
    await env.link.send(
        "C",
        f"<RouteRequest RouteDN='{RP}'><CED>77</CED><UDataEx><Node Name='a' Type='Int' Val='9'/>"
        "<Node Name='c' Type='Str' Val='new'/></UDataEx></RouteRequest>",
    )
    await env.ask(
        "C",
        "<UDataGetAll><RequestId>2</RequestId></UDataGetAll>",
        "<UDataResp Result='Success'><RequestId>2</RequestId><UDataEx>"
        "<Node Name='a' Type='Int' Val='9'/><Node Name='b' Type='Str' Val='2'/>"
        "<Node Name='c' Type='Str' Val='new'/></UDataEx></UDataResp>",
    )
    # the router saw the data already attached in EventRouteRequest
    request = env.recorder.last("EventRouteRequest")
    assert [item.Name for item in request.user_data] == ["a", "b", "c"]
    await env.expect("C", DEFAULT)


async def test_connected_without_routing_is_blocked(env: Env) -> None:
    await env.ask("C", "<Connected/>", BLOCKED)  # STARTED: nothing to abort


async def test_caller_hang_up_while_routing_ends_the_routing(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    assert env.server.service.hang_up(SWITCH, env.conn_id())
    env.server.flush()
    await env.expect("C", "<CallStatus Event='Released'/>")
    await env.link.expect_silence(TIMEOUT + 0.05)  # no RouteResponse for a released call
    assert env.recorder.seen() == ["EventRouteRequest", "EventRouteUsed"]
    await env.ask("C", "<TreatStatus Status='Started'/>", BLOCKED)
    await env.quiet("C", "<EndCall EndCause='Normal'/>")
    assert_no_leaks(env.server)


async def test_caller_hang_up_during_a_treatment(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    conn_id = env.conn_id()
    env.treat("Music")
    await env.expect("C", "<TreatCall Type='Music'/>")
    await env.quiet("C", "<TreatStatus Status='Started'/>")
    env.server.service.hang_up(SWITCH, conn_id)
    env.server.flush()
    await env.expect("C", "<CallStatus Event='Released'/>")
    await env.ask("C", "<TreatStatus Status='Completed'/>", BLOCKED)
    await env.ask("C", "<CancelCompleted/>", BLOCKED)
    await env.quiet("C", "<EndCall EndCause='Normal'/>")
    assert_no_leaks(env.server)


async def test_call_timeout_while_routing(start_server: StartServer) -> None:
    server = await start_server(with_timers(router_timeout=5.0, call_timeout=0.3))
    link = await RawLink.open(server.port)
    try:
        await link.login("L")
        await start_call(link, "C", "1")
        await link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
        got_id, _, raw = await link.recv_doc()
        assert (got_id, raw) == ("C", server_doc("C", "<EndCall EndCause='Timeout'/>"))
        assert server.service.switches[SWITCH].view.waiting_calls(RP) == []
        assert_no_leaks(server)
    finally:
        await link.close()


# ---------------------------------------------------------------------------------- test as router


async def test_immediate_route_response_from_the_router(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    env.route(
        "7002",
        extensions=(str_node("DN", "7002"), str_node("SWITCH", SWITCH), int_node("NVQ", 0)),
    )
    await env.expect(
        "C",
        "<RouteResponse RouteType='Normal'><Dest>7002</Dest><ExtnsEx>"
        "<Node Name='DN' Type='Str' Val='7002'/><Node Name='SWITCH' Type='Str' Val='SW_InFront'/>"
        "<Node Name='NVQ' Type='Int' Val='0'/></ExtnsEx></RouteResponse>",
    )
    assert env.recorder.seen()[-2:] == ["RequestRouteCall", "EventRouteUsed"]
    await env.link.expect_silence(TIMEOUT + 0.05)  # the Router Timeout was stopped
    await env.quiet("C", "<Connected/>")
    await env.quiet("C", "<EndCall EndCause='Normal'/>")
    assert_no_leaks(env.server)


async def test_default_route_with_a_destination(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    env.route("7003", route_type="Default")
    await env.expect("C", "<RouteResponse RouteType='Default'><Dest>7003</Dest></RouteResponse>")


async def test_version_1_calls_get_route_extensions_as_nvpairs(env: Env) -> None:
    await start_call(env.link, "V1", "2", version="1.0")
    await env.link.send("V1", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    env.route("7002", extensions=(str_node("k", "v"), int_node("n", 5)))
    await env.expect(
        "V1",
        "<RouteResponse RouteType='Normal'><Dest>7002</Dest><Extensions>"
        "<NVPair><NVName>k</NVName><NVVal>v</NVVal></NVPair>"
        "<NVPair><NVName>n</NVName><NVVal>5</NVVal></NVPair></Extensions></RouteResponse>",
    )


async def test_treatment_cycle_then_route_response(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'><CED>1442914432</CED></RouteRequest>")
    await env.barrier()
    env.treat("PlayApplication", (int_node("APP_ID", 1), str_node("LANGUAGE", "English(US)")))
    await env.expect(
        "C",
        "<TreatCall Type='PlayApplication'><Parameters><Node Name='APP_ID' Type='Int' Val='1'/>"
        "<Node Name='LANGUAGE' Type='Str' Val='English(US)'/></Parameters></TreatCall>",
    )
    await env.quiet("C", "<TreatStatus Status='Started'/>")
    applied = env.recorder.last("EventTreatmentApplied")
    assert applied.treatment_type == "PlayApplication"
    await env.link.expect_silence(TIMEOUT + 0.05)  # no Router Timeout while treating
    await env.quiet(
        "C",
        "<TreatStatus Status='Completed' CED='12'>"
        "<UDataEx><Node Name='Lang' Type='Str' Val='EN'/></UDataEx></TreatStatus>",
    )
    end = env.recorder.last("EventTreatmentEnd")
    assert (end.treatment_type, end.collected_digits) == ("PlayApplication", "12")
    await env.ask(
        "C",
        "<UDataGet Keys='Lang'><RequestId>u</RequestId></UDataGet>",
        "<UDataResp Result='Success'><RequestId>u</RequestId><UDataEx>"
        "<Node Name='Lang' Type='Str' Val='EN'/></UDataEx></UDataResp>",
    )
    env.route("5550800")
    await env.expect("C", "<RouteResponse RouteType='Normal'><Dest>5550800</Dest></RouteResponse>")
    assert env.recorder.seen() == [
        "EventRouteRequest",
        "RequestApplyTreatment",
        "EventTreatmentApplied",
        "EventTreatmentEnd",
        "RequestRouteCall",
        "EventRouteUsed",
    ]
    await env.link.expect_silence(TIMEOUT + 0.05)


async def test_router_timeout_restarts_after_treatment_completed(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    env.treat("Music")
    await env.expect("C", "<TreatCall Type='Music'/>")
    await env.quiet("C", "<TreatStatus Status='Started'/>")
    await env.link.expect_silence(TIMEOUT + 0.05)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    await env.quiet("C", "<TreatStatus Status='Completed'/>")
    await env.expect("C", DEFAULT)
    assert loop.time() - sent >= TIMEOUT - 0.1


async def test_treatment_not_started_returns_to_waiting_for_instructions(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    env.treat("PlayAnnounce", (str_node("MSG", "welcome"),))
    await env.expect(
        "C",
        "<TreatCall Type='PlayAnnounce'><Parameters><Node Name='MSG' Type='Str' Val='welcome'/>"
        "</Parameters></TreatCall>",
    )
    await env.quiet("C", "<TreatStatus Status='NotStarted'/>")
    assert env.recorder.seen()[-1] == "EventTreatmentNotApplied"
    # the router's next step: another treatment, then the NotStarted one is not waited for
    env.treat("CollectDigits", (int_node("MAX", 4),))
    await env.expect(
        "C",
        "<TreatCall Type='CollectDigits'><Parameters><Node Name='MAX' Type='Int' Val='4'/>"
        "</Parameters></TreatCall>",
    )
    await env.quiet("C", "<TreatStatus Status='NotStarted'/>")
    # silent router: the restarted Router Timeout answers
    await env.expect("C", DEFAULT)


@pytest.mark.parametrize("started", [False, True])
async def test_a_new_treatment_replaces_the_running_one_without_cancel(
    env: Env, started: bool
) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    env.treat("Music")
    await env.expect("C", "<TreatCall Type='Music'/>")
    if started:
        await env.quiet("C", "<TreatStatus Status='Started'/>")
    env.treat("PlayApplication", (int_node("APP_ID", 1),))
    await env.expect("C", PLAY_APP)  # no Cancel before it
    await env.quiet("C", "<TreatStatus Status='Started'/>")
    await env.quiet("C", "<TreatStatus Status='Completed'/>")
    env.route("7002")
    await env.expect("C", "<RouteResponse RouteType='Normal'><Dest>7002</Dest></RouteResponse>")


@pytest.mark.parametrize(
    "confirmation",
    [
        "<CancelCompleted/>",
        "<CancelCompleted></CancelCompleted>",
        "<TreatStatus Status='Completed'/>",  # the treatment ended while the Cancel was in flight
    ],
)
async def test_routing_during_a_treatment_cancels_it_and_holds_the_route_response(
    env: Env, confirmation: str
) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    env.treat("PlayApplication", (int_node("APP_ID", 1),))
    await env.expect("C", PLAY_APP)
    await env.quiet("C", "<TreatStatus Status='Started'/>")
    env.route("7001", extensions=(str_node("TARGET", "Agent@StatServer.A"),))
    await env.expect("C", "<Cancel/>")
    await env.link.expect_silence(TIMEOUT + 0.05)  # held until the IVR confirms; no timer
    await env.ask("C", "<TreatStatus Status='Started'/>", BLOCKED)  # still cancelling
    await env.link.send("C", confirmation)
    await env.expect(
        "C",
        "<RouteResponse RouteType='Normal'><Dest>7001</Dest><ExtnsEx>"
        "<Node Name='TARGET' Type='Str' Val='Agent@StatServer.A'/></ExtnsEx></RouteResponse>",
    )
    await env.ask("C", "<CancelCompleted/>", BLOCKED)  # nothing to confirm any more


async def test_routing_while_the_treatment_is_starting_also_cancels(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    env.treat("Music")
    await env.expect("C", "<TreatCall Type='Music'/>")
    await env.link.expect_silence(TIMEOUT + 0.05)  # no Router Timeout while starting either
    env.route("7004")
    await env.expect("C", "<Cancel/>")
    await env.link.send("C", "<CancelCompleted/>")
    await env.expect("C", "<RouteResponse RouteType='Normal'><Dest>7004</Dest></RouteResponse>")


async def test_end_call_during_a_treatment_sends_nothing_more(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    conn_id = env.conn_id()
    env.treat("Music")
    await env.expect("C", "<TreatCall Type='Music'/>")
    await env.quiet("C", "<TreatStatus Status='Started'/>")
    await env.quiet("C", "<EndCall EndCause='Normal'/>")
    env.route("7002", conn_id=conn_id)  # a late router: the call is gone on the switch
    await env.link.expect_silence(TIMEOUT + 0.05)
    assert_no_leaks(env.server)


async def test_failure_after_a_normal_route_lets_the_router_choose_again(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    env.route("7001")
    await env.expect("C", "<RouteResponse RouteType='Normal'><Dest>7001</Dest></RouteResponse>")
    await env.quiet("C", "<Failure FailureCause='NoAnswer'/>")
    assert env.recorder.last("EventError").error_code == 232
    assert len(env.switch.view.waiting_calls(RP)) == 1  # waiting for the router again
    env.route("7002")
    await env.expect("C", "<RouteResponse RouteType='Normal'><Dest>7002</Dest></RouteResponse>")
    await env.link.expect_silence(TIMEOUT + 0.05)


async def test_treat_status_accepts_ced_as_a_child_element(env: Env) -> None:
    await env.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await env.barrier()
    env.treat("CollectDigits")
    await env.expect("C", "<TreatCall Type='CollectDigits'/>")
    await env.quiet("C", "<TreatStatus Status='Started'/>")
    await env.quiet("C", "<TreatStatus Status='Completed'><CED>12</CED></TreatStatus>")
    assert env.recorder.last("EventTreatmentEnd").collected_digits == "12"


# ---------------------------------------------------------------------------------- rule router

TWO_STEPS = """
[[routing]]
dn = "5001"

[[routing.rules]]
name = "two-steps"
treatments = [
    { type = "PlayAnnounce", parameters = { MSG = "welcome" } },
    { type = "CollectDigits", parameters = { MAX = 4 } },
]
dn = "7003"
"""
"""Appended to the default configuration: a rule with two treatments on routing point 5001."""


class Rules:
    """A server running the built-in router of its configuration, with one logged-in link."""

    def __init__(self, server: IvrServer, link: RawLink) -> None:
        self.server = server
        self.link = link
        self.switch = server.service.switches[SWITCH]

    async def expect(self, call_id: str, body: str) -> None:
        # well before the Router Timeout (4 s): the router itself answered
        got_id, _, raw = await self.link.recv_doc(timeout=1.0)
        assert (got_id, raw) == (call_id, server_doc(call_id, body))

    async def quiet(self, call_id: str, request: str) -> None:
        await self.link.send(call_id, request)
        await self.link.send("sync", "<CallInfoReq/>")
        await self.expect("sync", NO_SUCH_CALL)

    def agent_dn(self, queue: str = "6000") -> str:
        """The DN of the longest-idle ready agent of ``queue``."""
        return next(a.dn for a in self.switch.view.ready_agents() if a.queue == queue)


def two_steps_config() -> ServerConfig:
    text = resources.files("ivr_server.config").joinpath("default.toml").read_text("utf-8")
    return parse_config(text + TWO_STEPS)


@pytest.fixture
async def rules(start_server: StartServer) -> AsyncIterator[Rules]:
    server = await start_server(two_steps_config())
    assert set(server.service.routers[SWITCH].routing_points()) == {"5000", RP}
    link = await RawLink.open(server.port)
    await link.login("L")
    await start_call(link, "C", "1", "<DNIS>800</DNIS><ANI>555</ANI>")
    yield Rules(server, link)
    await link.close()


async def test_rule_router_routes_a_plain_request_at_once(rules: Rules) -> None:
    await rules.link.send("C", "<RouteRequest RouteDN='5000'/>")
    await rules.expect("C", "<RouteResponse RouteType='Normal'><Dest>7002</Dest></RouteResponse>")
    assert rules.switch.view.waiting_calls("5000") == []
    await rules.link.expect_silence(0.2)


async def test_rule_router_treatment_then_the_longest_idle_agent_of_queue_6000(
    rules: Rules,
) -> None:
    agent = rules.agent_dn()
    await rules.link.send("C", "<RouteRequest RouteDN='5000'><CED>1</CED></RouteRequest>")
    await rules.expect("C", PLAY_APP)
    await rules.quiet("C", "<TreatStatus Status='Started'/>")
    await rules.link.send("C", "<TreatStatus Status='Completed' CED='1'/>")
    await rules.expect(
        "C", f"<RouteResponse RouteType='Normal'><Dest>{agent}</Dest></RouteResponse>"
    )


async def test_rule_router_goes_on_after_a_treatment_that_did_not_start(rules: Rules) -> None:
    agent = rules.agent_dn()
    await rules.link.send("C", "<RouteRequest RouteDN='5000'><CED>1</CED></RouteRequest>")
    await rules.expect("C", PLAY_APP)
    await rules.link.send("C", "<TreatStatus Status='NotStarted'/>")
    await rules.expect(
        "C", f"<RouteResponse RouteType='Normal'><Dest>{agent}</Dest></RouteResponse>"
    )


async def test_rule_router_skips_the_agent_rule_without_ready_agents(rules: Rules) -> None:
    ivr2 = await RawLink.open(rules.server.port)
    try:
        await ivr2.login("L2", name="IVR_2")
        for port in "1234":  # every agent of queue 6000 sits on an IVR_2 port: now busy
            await start_call(ivr2, f"busy{port}", port)
        assert [a for a in rules.switch.view.ready_agents() if a.queue == "6000"] == []
        await rules.link.send("C", "<RouteRequest RouteDN='5000'><CED>1</CED></RouteRequest>")
        await rules.expect(
            "C", "<RouteResponse RouteType='Normal'><Dest>7002</Dest></RouteResponse>"
        )
    finally:
        await ivr2.close()


async def test_rule_router_routes_gold_customers_to_7001_and_attaches_data(
    rules: Rules,
) -> None:
    await rules.link.send(
        "C",
        "<RouteRequest RouteDN='5000'><UDataEx><Node Name='Segment' Type='Str' Val='Gold'/>"
        "</UDataEx></RouteRequest>",
    )
    await rules.expect("C", "<RouteResponse RouteType='Normal'><Dest>7001</Dest></RouteResponse>")
    await rules.link.send("C", "<UDataGetAll><RequestId>1</RequestId></UDataGetAll>")
    await rules.expect(
        "C",
        "<UDataResp Result='Success'><RequestId>1</RequestId><UDataEx>"
        "<Node Name='Segment' Type='Str' Val='Gold'/><Node Name='RoutedBy' Type='Str' Val='vip'/>"
        "</UDataEx></UDataResp>",
    )
    # the route failed: the next rule that applies, then none is left
    await rules.link.send("C", "<Failure FailureCause='Busy'/>")
    await rules.expect("C", "<RouteResponse RouteType='Normal'><Dest>7002</Dest></RouteResponse>")
    await rules.link.send("C", "<Failure FailureCause='NoAnswer'/>")
    await rules.expect("C", DEFAULT)


async def test_rule_router_runs_treatments_one_after_the_other(rules: Rules) -> None:
    await rules.link.send("C", f"<RouteRequest RouteDN='{RP}'/>")
    await rules.expect(
        "C",
        "<TreatCall Type='PlayAnnounce'><Parameters><Node Name='MSG' Type='Str' Val='welcome'/>"
        "</Parameters></TreatCall>",
    )
    await rules.link.send("C", "<TreatStatus Status='NotStarted'/>")  # the next step
    await rules.expect(
        "C",
        "<TreatCall Type='CollectDigits'><Parameters><Node Name='MAX' Type='Int' Val='4'/>"
        "</Parameters></TreatCall>",
    )
    await rules.quiet("C", "<TreatStatus Status='Started'/>")
    await rules.link.send("C", "<TreatStatus Status='Completed' CED='1234'/>")
    await rules.expect("C", "<RouteResponse RouteType='Normal'><Dest>7003</Dest></RouteResponse>")


async def test_rule_router_calls_leave_nothing_behind(rules: Rules) -> None:
    for n in range(5):
        call_id = f"R{n}"
        await start_call(rules.link, call_id, str(n + 2))
        await rules.link.send(call_id, "<RouteRequest RouteDN='5000'/>")
        await rules.expect(
            call_id, "<RouteResponse RouteType='Normal'><Dest>7002</Dest></RouteResponse>"
        )
        await rules.quiet(call_id, "<EndCall EndCause='Normal'/>")
    await rules.quiet("C", "<EndCall EndCause='Normal'/>")
    assert_no_leaks(rules.server)
