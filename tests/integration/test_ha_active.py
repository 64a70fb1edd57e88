"""Active nodes (``[ha] mode = "active"``, issue 25): two or three real servers in this process
sharing one store (``memory://``, and a real ``redis-server`` from :mod:`tests.redisproc`), a
driver logged in to each over TCP. A port busy on one node is busy on the others; an agent
logged in through one node is seen at the others, its events told there, its control forwarded
to its node; routing-point and queue statistics count every node's waits; the built-in router
routes to another node's agent once it is reserved, and to nobody else's call meanwhile; both
APIs list the same calls with the node holding each; a node that dies (its lease lapses) has its
calls adopted by exactly one survivor, which answers them (runtime/ha_active.py,
service/peers_state.py, routing/rules.py)."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ivr_server.api import ApiServer
from ivr_server.config import default_config
from ivr_server.config.ha import HaConfig
from ivr_server.runtime import IvrServer
from ivr_server.runtime.ha_active import ActiveMode
from ivr_server.service.peers_state import PeerState
from ivr_server.switch import ReadyAgent
from ivr_server.wire import messages as m
from tests.integration.conftest import LOOPBACK_0
from tests.integration.rawlink import RawLink, new_call_body, server_doc, start_call
from tests.redisproc import RedisProcess, free_port, redis_server

__all__ = ["redis_server"]

pytestmark = pytest.mark.timeout(60)

TOKEN = "active-t0ken"
LEASE = 0.6
POLL = 0.05
IVR = "IVR_1"
_SITES = itertools.count()

StartNode = Callable[..., Awaitable[IvrServer]]


@pytest.fixture
async def start_node() -> AsyncIterator[StartNode]:
    """Start nodes on one store: ``await start_node("A", store, site)`` (``mode``: active by
    default). Nodes started within one second get ConnIDs apart by their node ids
    (``conn_id_seed``): the adoption tests below have a call on every node."""
    servers: list[IvrServer] = []

    async def start(node_id: str, store: str, site: str, mode: str = "active") -> IvrServer:
        base = default_config()
        ha = HaConfig(
            mode=mode,
            node_id=node_id,
            store=store,
            site=site,
            lease=LEASE,
            poll=POLL,
            durability="primary",
            store_timeout=1.0,
        )
        config = base.model_copy(
            update={"ha": ha, "api": base.api.model_copy(update={"token": TOKEN})}
        )
        server = IvrServer(config, listen=LOOPBACK_0, api=ApiServer, api_listen=LOOPBACK_0)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def active(server: IvrServer) -> ActiveMode:
    assert server.ha is not None and isinstance(server.ha.active, ActiveMode)
    return server.ha.active


async def until(what: Callable[[], Any], timeout: float = 3.0) -> Any:
    """Wait (bounded) until ``what()`` is truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def driver(server: IvrServer) -> RawLink:
    link = await RawLink.open(server.port)
    await link.login("L")
    return link


async def get(server: IvrServer, path: str, token: bool = True) -> Any:
    host, port = server.api_addresses[0]
    headers = {"Authorization": f"Bearer {TOKEN}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{host}:{port}{path}", headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


def agent(port: str, status: str, req_id: str | None = None) -> m.MonitorInfo:
    return m.MonitorInfo(ReqId=req_id, Agent=m.Agent(PortNum=port, Status=status))  # type: ignore[arg-type]


def agent_error(code: str, req_id: str) -> m.CallError:
    return m.CallError(FailedReq="AgentControl", TlibErrCode=code, ReqId=req_id)


def unsolicited(message: m.Message) -> bool:
    """An agent event told without a request (``MonitorInfo Agent`` without ``ReqId``)."""
    return isinstance(message, m.MonitorInfo) and message.Agent is not None and not message.ReqId


async def reply(link: RawLink) -> tuple[str | None, m.Message, bytes]:
    """The next document but the agent events the other nodes' facts bring at any poll."""
    while True:
        got = await link.recv_doc()
        if not unsolicited(got[1]):
            return got


async def told_until(link: RawLink, last: m.MonitorInfo) -> None:
    """Unsolicited agent events (those of another node's agent, from its facts: what one poll
    saw, so a quick login and ready may come as LoggedIn then Ready) until ``last``."""
    while (got := (await link.recv_doc())[1]) != last:
        assert unsolicited(got), got


def new_site() -> str:
    return f"active{next(_SITES)}"


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    redis: RedisProcess = request.getfixturevalue("redis_server")
    return redis.url


async def test_ports_agents_and_calls_are_seen_across_nodes(
    start_node: StartNode, store_url: str
) -> None:
    site = new_site()
    a = await start_node("A", store_url, site)
    b = await start_node("B", store_url, site)
    la, lb = await driver(a), await driver(b)
    await start_call(la, "C1", port="1", extra="<ANI>5551234</ANI>")
    await la.send(
        "C1",
        "<UDataSet Action='Add'><RequestId>1</RequestId><UDataEx>"
        "<Node Name='account' Type='Str' Val='42'/></UDataEx></UDataSet>",
    )
    assert (await la.recv_doc())[1].tag == "UDataResp"

    # port 1 has a call at A: a NewCall on it at B is refused as a port with a call is
    await until(lambda: active(b).peers.port_holder(IVR, "1") == "A")
    await lb.send("C2", new_call_body("1"))
    got_id, _, raw = await lb.recv_doc()
    assert (got_id, raw) == ("C2", server_doc("C2", "<EndCall EndCause='Resources'/>"))
    await start_call(lb, "C3", port="2")  # another port is free
    await lb.send("C3", "<RouteRequest RouteDN='5001'/>")  # 5001 has no router: it waits
    await until(lambda: active(a).peers.port_holder(IVR, "2") == "B")

    # an agent logged in through A is seen at B
    await la.send("L", "<AgentLogin ReqId='1' PortNum='5' Queue='6000' AgentId='77' Password=''/>")
    assert (await la.recv_doc())[1] == agent("5", "LoggedIn", "1")
    assert (await la.recv_doc())[1] == agent("5", "NotReady", "1")
    await la.send("L", "<AgentReady ReqId='2' PortNum='5' Queue='6000' WorkMode='ManualIn'/>")
    assert (await la.recv_doc())[1] == agent("5", "Ready", "2")
    await told_until(lb, agent("5", "Ready"))  # B's session is told A's agent's events
    await lb.send("L", "<AgentQuery ReqId='3' PortNum='5'/>")
    assert (await lb.recv_doc())[1] == agent("5", "Ready", "3")
    # agent control on A's agent at B: forwarded to A, whose switch does it; B's IVR session
    # gets what a single server's would, A's is told as a single server's other session is
    await lb.send("L", "<AgentNotReady ReqId='4' PortNum='5' Queue='6000'/>")
    assert (await lb.recv_doc())[1] == agent("5", "NotReady", "4")
    assert (await la.recv_doc())[1] == agent("5", "NotReady")
    assert a.service.switches["SW_InFront"].view.agent_dn("77") == "4005"
    assert b.service.switches["SW_InFront"].view.agent_dn("77") is None
    await lb.send("L", "<AgentLogin ReqId='40' PortNum='5' Queue='6000' AgentId='78' Password=''/>")
    assert (await lb.recv_doc())[1] == agent_error("50", "40")  # A's switch: logged in already
    await lb.send("L", "<AgentReady ReqId='41' PortNum='5' Queue='6000' WorkMode='ManualIn'/>")
    assert (await lb.recv_doc())[1] == agent("5", "Ready", "41")
    assert (await la.recv_doc())[1] == agent("5", "Ready")
    await until(  # A's facts as last published, and B's mirror of them, have it Ready again
        lambda: (
            any(x.dn == "4005" and x.state == "Ready" for x in active(a).state.facts["A"].agents)
            and (found := active(b).peers.agent("SW_InFront", "4005"))
            and found[1].state == "Ready"
        )
    )
    await lb.send("L", "<AgentLogin ReqId='5' PortNum='6' Queue='6000' AgentId='77' Password=''/>")
    assert (await lb.recv_doc())[1] == agent_error("1704", "5")  # logged in through A
    await lb.send("L", "<AgentQuery ReqId='6' PortNum='6'/>")  # B's own DN: its switch answers
    assert (await lb.recv_doc())[1] == agent("6", "Unknown", "6")

    # both APIs: the same nodes and the same calls, with the node holding each
    await until(lambda: set(active(a).state.facts) == {"A", "B"} == set(active(b).state.facts))
    await until(lambda: active(a).state.facts["B"].waiting == [("SW_InFront", "5001", 1)])
    queues: list[dict[tuple[str, str], Any]] = []
    for server in (a, b):
        nodes = await get(server, "/api/v1/nodes", token=False)
        assert nodes["mode"] == "active"
        this = nodes["this"]
        assert this["role"] == "leader" and this["epoch"] >= 1 and this["store_state"] == "ok"
        assert set(this["commit_latency"]) == {"last", "p50", "p99"}
        assert this["commit_latency"]["last"] is not None and this["batches"] > 0
        assert {n["id"]: (n["role"], n["calls"]) for n in nodes["nodes"]} == {
            "A": ("leader", 1),
            "B": ("leader", 1),
        }
        # IVR_2's 4 LegacyMode agents are logged in by every node: each DN counted once
        assert nodes["totals"]["calls"] == 2 and nodes["totals"]["ready"] == 4 + 1
        assert nodes["routing_points"] == [{"switch": "SW_InFront", "dn": "5001", "waiting": 1}]
        assert {n["id"]: n["waiting"] for n in nodes["nodes"]} == {"A": 0, "B": 1}
        # the statistic of an IVR's calls counts every node's, those of queues and agent
        # groups every node's agents (A's agent 77 is Ready in queue 6000, seen at B too)
        stats = await get(server, "/api/v1/stats", token=False)
        assert {i["name"]: i["calls"] for i in stats["ivrs"]}[IVR] == 2
        queues.append({(q["switch"], q["dn"]): q for q in stats["queues"]})
    assert queues[0] == queues[1]
    assert queues[0][("SW_InFront", "6000")]["ready"] >= 1
    seen = []
    for server in (a, b):
        listing = await get(server, "/api/v1/nodes/calls")
        assert listing["total"] == 2 and not listing["redacted"]
        seen.append(sorted((c["call_id"], c["node"], c["port"]) for c in listing["calls"]))
        c1 = next(c for c in listing["calls"] if c["call_id"] == "C1")
        assert c1["ani"] == "5551234"
        assert {"name": "account", "type": "Str", "value": "42"}.items() <= c1["user_data"][
            0
        ].items()
    assert seen[0] == seen[1] == [("C1", "A", "1"), ("C3", "B", "2")]
    public = await get(a, "/api/v1/nodes/calls", token=False)
    assert public["redacted"] and all(
        c["user_data"] is None and c["ani"] is None for c in public["calls"]
    )
    for link in (la, lb):
        await link.close()


PEEK = "<PeekStatReq><RequestId>{}</RequestId><StatName>{}</StatName></PeekStatReq>"


async def peek(link: RawLink, call_id: str, name: str, request_id: int = 1) -> float:
    """``PeekStatReq`` of statistic ``name`` inside call ``call_id``: its value."""
    await link.send(call_id, PEEK.format(request_id, name))
    got_id, reply, raw = await link.recv_doc()
    assert got_id == call_id and isinstance(reply, m.StatResp), raw
    assert reply.ResultCode == "Success" and reply.Result is not None, raw
    return float(reply.Result.Value)


async def until_peek(link: RawLink, call_id: str, name: str, wanted: float) -> None:
    """Ask ``name`` until it is ``wanted`` (the other node's facts take up to two polls)."""
    deadline = time.monotonic() + 5.0
    while (value := await peek(link, call_id, name)) != wanted:
        assert time.monotonic() < deadline, f"{name} = {value}, not {wanted}"
        await asyncio.sleep(POLL)


async def test_routing_point_and_queue_statistics_count_every_nodes_calls(
    start_node: StartNode, store_url: str
) -> None:
    """``PeekStatReq`` at one node counts the calls waiting at the other's routing points and
    for its queues, and its expected wait averages the other's routed waits."""
    site = new_site()
    a = await start_node("A", store_url, site)
    b = await start_node("B", store_url, site)
    la, lb = await driver(a), await driver(b)
    await start_call(la, "A1", port="1")
    await start_call(lb, "B1", port="2")
    # at B: rule "agents" of 5000 (CED 1): a treatment, the call waits for queue 6000's agents
    await lb.send("B1", "<RouteRequest RouteDN='5000'><CED>1</CED></RouteRequest>")
    assert isinstance((await lb.recv_doc())[1], m.TreatCall)
    assert await peek(lb, "B1", "Waiting_5000") == 1  # B's own
    await until_peek(la, "A1", "Waiting_5000", 1)  # A counts B's call
    await until_peek(la, "A1", "Waiting_6000", 1)
    for server in (a, b):
        stats = await get(server, "/api/v1/stats", token=False)
        points = {(p["switch"], p["dn"]): p for p in stats["routing_points"]}
        assert points[("SW_InFront", "5000")]["waiting"] == 1
        assert points[("SW_InFront", "5000")]["max_wait"] >= 0
    # B's call is routed after its treatment: nobody waits; A's estimate is B's routed wait
    await asyncio.sleep(0.3)
    await lb.send("B1", "<TreatStatus Status='Started'/>")
    await lb.send("B1", "<TreatStatus Status='Completed'/>")
    routed = (await lb.recv_doc())[1]
    assert isinstance(routed, m.RouteResponse), routed
    await until_peek(la, "A1", "Waiting_5000", 0)
    await until_peek(la, "A1", "Waiting_6000", 0)
    here = await peek(lb, "B1", "EWT_6000")
    assert 0.3 <= here < 5.0
    await until_peek(la, "A1", "EWT_6000", here)
    for link in (la, lb):
        await link.close()


async def post(server: IvrServer, path: str, body: Any) -> Any:
    host, port = server.api_addresses[0]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://{host}:{port}{path}",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def no_legacy_agents(server: IvrServer) -> None:
    """Log out IVR_2's four LegacyMode agents (queue 6000, Ready on every node), so that the
    only agent of queue 6000 is the one a test logs in."""
    for dn in ("4101", "4102", "4103", "4104"):
        await post(server, f"/api/v1/agents/SW_InFront/{dn}/logout", {})


async def queue_6000(server: IvrServer) -> dict[str, int]:
    """Queue 6000's agents as ``server``'s statistics count them."""
    stats = await get(server, "/api/v1/stats", token=False)
    (queue,) = [q for q in stats["queues"] if (q["switch"], q["dn"]) == ("SW_InFront", "6000")]
    return {key: queue[key] for key in ("ready", "busy", "logged_in")}


def ready_anywhere(server: IvrServer) -> list[ReadyAgent]:
    """The routing targets of ``server``'s built-in router: its ready agents, then the other
    nodes' (their facts)."""
    return [
        *server.service.switches["SW_InFront"].view.ready_agents(),
        *active(server).peers.elsewhere("SW_InFront"),
    ]


async def routed_with_agents_rule(link: RawLink, call_id: str) -> m.RouteResponse:
    """Rule "agents" of 5000 (CED 1): its treatment, then the route."""
    await link.send(call_id, "<RouteRequest RouteDN='5000'><CED>1</CED></RouteRequest>")
    treat = (await link.recv_doc())[1]
    assert isinstance(treat, m.TreatCall), treat
    await link.send(call_id, "<TreatStatus Status='Started'/>")
    await link.send(call_id, "<TreatStatus Status='Completed'/>")
    routed = (await link.recv_doc())[1]
    assert isinstance(routed, m.RouteResponse), routed
    return routed


async def test_the_router_routes_to_another_nodes_agent_once_reserved(
    start_node: StartNode, store_url: str
) -> None:
    """The built-in router of A routes to B's only ready agent after reserving it in the store;
    while A's call holds it, neither A nor B routes another call to it (the rule's target has
    nobody: Default); once A's call ends it is free again, for B's own router too."""
    site = new_site()
    a = await start_node("A", store_url, site)
    b = await start_node("B", store_url, site)
    for server in (a, b):
        await no_legacy_agents(server)
    la, lb = await driver(a), await driver(b)
    await lb.send("L", "<AgentLogin ReqId='1' PortNum='5' Queue='6000' AgentId='77' Password=''/>")
    assert (await lb.recv_doc())[1] == agent("5", "LoggedIn", "1")
    assert (await lb.recv_doc())[1] == agent("5", "NotReady", "1")
    await lb.send("L", "<AgentReady ReqId='2' PortNum='5' Queue='6000' WorkMode='ManualIn'/>")
    assert (await lb.recv_doc())[1] == agent("5", "Ready", "2")
    await told_until(la, agent("5", "Ready"))  # A's session is told B's agent's events
    # the one agent of queue 6000 ready anywhere, as A sees it: B's, on DN 4005
    await until(
        lambda: (
            [x.dn for x in ready_anywhere(a)] == ["4005"]
            and [x.dn for x in ready_anywhere(b)] == ["4005"]
        )
    )
    await start_call(la, "A1", port="1")
    routed = await routed_with_agents_rule(la, "A1")
    assert (routed.RouteType, routed.Dest) == ("Normal", "4005"), routed
    assert set(active(a).reserved) == {("SW_InFront", "4005")}
    holder = await a.ha.store.holder("SW_InFront:4005@agent")  # type: ignore[union-attr]
    assert holder is not None and holder.node == "A"
    # A's call holds B's agent: both nodes' statistics count it busy, not ready
    for server in (a, b):
        deadline = time.monotonic() + 3.0
        while (queue := await queue_6000(server)) != {"ready": 0, "busy": 1, "logged_in": 1}:
            assert time.monotonic() < deadline, queue
            await asyncio.sleep(POLL)

    # A's call holds the agent: neither A's next call nor B's own sees it ready (the rule's
    # target has nobody: the rule is skipped, the catch-all routes)
    await start_call(la, "A2", port="2")
    await la.send("A2", "<RouteRequest RouteDN='5000'><CED>1</CED></RouteRequest>")
    held = (await la.recv_doc())[1]
    assert held == m.RouteResponse(RouteType="Normal", Dest="7002"), (held, ready_anywhere(a))
    await start_call(lb, "B1", port="3")
    await lb.send("B1", "<RouteRequest RouteDN='5000'><CED>1</CED></RouteRequest>")
    held = (await lb.recv_doc())[1]
    assert held == m.RouteResponse(RouteType="Normal", Dest="7002"), (held, ready_anywhere(b))

    # A's call ends: the agent is given back, B's router gets it
    await la.send("A1", "<EndCall EndCause='Normal'/>")
    await until(lambda: not active(a).reserved)
    await until(lambda: not a.service.calls.port_busy(IVR, "1"))
    await until(lambda: not active(b).peers.held)  # A's facts without the hold, at B
    await start_call(lb, "B2", port="4")
    routed = await routed_with_agents_rule(lb, "B2")
    assert (routed.RouteType, routed.Dest) == ("Normal", "4005"), routed
    assert set(active(b).reserved) == {("SW_InFront", "4005")}
    for link in (la, lb):
        await link.close()


@pytest.mark.parametrize("count", [2, 3])
async def test_a_dead_nodes_calls_are_adopted_by_one_survivor(
    start_node: StartNode, store_url: str, count: int
) -> None:
    site = new_site()
    nodes = [await start_node(name, store_url, site) for name in "ABC"[:count]]
    a, survivors = nodes[0], nodes[1:]
    la = await driver(a)
    links = [await driver(s) for s in survivors]
    for n, link in enumerate(links):
        await start_call(link, f"S{n}", port=str(20 + n))  # ConnIDs of its own on every node
    await start_call(la, "C1", port="7")
    await la.send(
        "C1",
        "<UDataSet Action='Add'><RequestId>1</RequestId><UDataEx>"
        "<Node Name='account' Type='Str' Val='42'/></UDataEx></UDataSet>",
    )
    assert (await la.recv_doc())[1].tag == "UDataResp"  # committed: durability primary
    await la.send("L", "<AgentLogin ReqId='1' PortNum='9' Queue='6000' AgentId='99' Password=''/>")
    assert (await la.recv_doc())[1] == agent("9", "LoggedIn", "1")
    assert (await la.recv_doc())[1] == agent("9", "NotReady", "1")
    await until(lambda: all(active(s).peers.port_holder(IVR, "7") == "A" for s in survivors))
    await until(lambda: all(active(s).peers.agent("SW_InFront", "4009") for s in survivors))

    assert a.ha is not None
    a.ha.release_on_stop = False  # dies: its lease lapses, nobody is told
    died = time.monotonic()
    await a.stop()
    await la.close()
    await until(lambda: sum(active(s).adopted_calls for s in survivors) == 1, LEASE + 2.0)
    assert time.monotonic() - died < LEASE + 1.5
    await asyncio.sleep(3 * POLL)  # no second adoption
    adopters = [i for i, s in enumerate(survivors) if active(s).adopted_calls]
    assert len(adopters) == 1 and sum(active(s).adopted_calls for s in survivors) == 1
    adopter, link = survivors[adopters[0]], links[adopters[0]]
    assert active(adopter).adoptions[-1].slot == "A"
    host, port = adopter.api_addresses[0]
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{host}:{port}/metrics") as response,
    ):
        assert "ivr_server_ha_adopted_calls_total 1.0" in await response.text()

    # the driver re-sends the dead node's CallId to the adopter: answered, user data intact
    await link.send(
        "C1",
        "<UDataGet Keys='account'><RequestId>2</RequestId></UDataGet>",
    )
    got_id, answer, raw = await reply(link)
    assert got_id == "C1" and answer.tag == "UDataResp", raw
    assert b"Val='42'" in raw
    # the port's call is the adopter's now, everywhere
    assert adopter.ha is not None
    holder = adopter.ha.node_id
    for other in survivors:
        if other is not adopter:
            mirror = active(other).peers

            def holds(mirror: PeerState = mirror) -> bool:
                return mirror.port_holder(IVR, "7") == holder

            await until(holds)
    store = adopter.ha.store
    assert "A" not in await store.slots()
    moved = await store.load(adopter.ha.node_id)
    assert any(key.startswith("call:") and key.endswith("C1") for key in moved)
    # the agent A held is the adopter's now (its DN record moved), the others see it there
    assert "sw:SW_InFront:dn:4009" in moved
    await link.send("L", "<AgentQuery ReqId='7' PortNum='9'/>")
    assert (await reply(link))[1] == agent("9", "NotReady", "7")
    assert adopter.service.switches["SW_InFront"].view.agent_dn("99") == "4009"
    # the call ends normally at the adopter, its port free again
    await link.send("C1", "<EndCall EndCause='Normal'/>")
    await until(lambda: not adopter.service.calls.port_busy(IVR, "7"))
    for link in links:
        await link.close()


async def test_a_hot_pair_shows_the_same_nodes_and_calls_from_both(start_node: StartNode) -> None:
    """``/api/v1/nodes`` and ``/api/v1/nodes/calls`` of a hot-standby pair: the leader holds
    ``primary``; both list the standby (its presence record); both list the leader's calls."""
    site = new_site()
    a = await start_node("A", "memory://", site, "hot")
    b = await start_node("B", "memory://", site, "hot")
    assert a.ha is not None and b.ha is not None
    await until(lambda: a.ha.role == "leader" and b.ha.role == "standby")  # type: ignore[union-attr]
    la = await driver(a)
    await start_call(la, "H1", port="3")
    views = []
    for server in (a, b):
        nodes = await get(server, "/api/v1/nodes", token=False)
        assert nodes["mode"] == "hot"
        shown = {n["id"]: (n["role"], [s["slot"] for s in n["slots"]]) for n in nodes["nodes"]}
        # a standby holds no lease; every node lists it from its presence record (issue 25)
        expected = {"A": ("leader", ["primary"]), "B": ("standby", [])}
        assert shown == expected
        listing = await get(server, "/api/v1/nodes/calls")
        views.append([(c["call_id"], c["node"], c["slot"]) for c in listing["calls"]])
    assert views[0] == views[1] == [("H1", "A", "primary")]
    await la.close()


async def test_a_single_node_is_its_own_site(start_node: StartNode) -> None:
    """``mode = "off"``: no HA node, no mirror; the API says so."""
    config = default_config()
    server = IvrServer(
        config.model_copy(update={"api": config.api.model_copy(update={"token": TOKEN})}),
        listen=LOOPBACK_0,
        api=ApiServer,
        api_listen=LOOPBACK_0,
    )
    await server.start()
    try:
        assert server.ha is None and server.service._ctx.peers is None
        nodes = await get(server, "/api/v1/nodes", token=False)
        assert nodes["mode"] == "off" and [n["role"] for n in nodes["nodes"]] == ["single"]
        calls = await get(server, "/api/v1/nodes/calls")
        assert calls == {"mode": "off", "calls": [], "total": 0, "redacted": False}
    finally:
        await server.stop()


DEFAULT_TOML = Path(__file__).resolve().parents[2] / "src/ivr_server/config/default.toml"


def _http_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
        return str(response.read().decode())


async def _http_json(port: int, path: str) -> Any:
    return json.loads(await asyncio.to_thread(_http_text, port, path))


def _serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``python -m ivr_server serve --config config``, its log in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ivr_server", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


async def test_real_processes_kill_9_of_an_active_node(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    """Two ``ivr-server serve`` processes in active mode on a real redis-server: ``kill -9`` of
    one mid-call; the other adopts its call within the lease and answers it with its user data;
    its API lists the call as its own and /metrics count it."""
    text = DEFAULT_TOML.read_text(encoding="utf-8")
    ports = {n: (free_port(), free_port()) for n in ("a", "b")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, (ivr, api) in ports.items():
            body = text.replace('listen = ["127.0.0.1:3021"]', f'listen = ["127.0.0.1:{ivr}"]', 1)
            body = body.replace('listen = ["127.0.0.1:8021"]', f'listen = ["127.0.0.1:{api}"]', 1)
            body += (
                f'\n[ha]\nmode = "active"\nnode-id = "{name}"\nstore = "{redis_server.url}"\n'
                f'lease = {LEASE}\npoll = {POLL}\ndurability = "primary"\n'
            )
            config = tmp_path / f"{name}.toml"
            config.write_text(body, encoding="utf-8")
            procs[name] = _serve(config, tmp_path / f"{name}.log")
        deadline = time.monotonic() + 30
        while True:
            try:
                views = [await _http_json(api, "/api/v1/nodes") for _, api in ports.values()]
                if all(view["this"]["role"] == "leader" for view in views):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the nodes did not start"
            await asyncio.sleep(0.1)
        la = await RawLink.open(ports["a"][0])
        await la.login("L")
        lb = await RawLink.open(ports["b"][0])
        await lb.login("L")
        await start_call(lb, "B1", port="2")
        await start_call(la, "K1", port="7")
        await la.send(
            "K1",
            "<UDataSet Action='Add'><RequestId>1</RequestId><UDataEx>"
            "<Node Name='acct' Type='Str' Val='9'/></UDataEx></UDataSet>",
        )
        assert (await la.recv_doc())[1].tag == "UDataResp"
        procs["a"].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        b_api = ports["b"][1]
        while not (await _http_json(b_api, "/api/v1/nodes"))["this"]["adopted_calls"]:
            assert time.monotonic() - killed < LEASE + 3.0, "not adopted"
            await asyncio.sleep(0.05)
        assert time.monotonic() - killed < LEASE + 1.5
        await lb.send("K1", "<UDataGet Keys='acct'><RequestId>2</RequestId></UDataGet>")
        got_id, reply, raw = await lb.recv_doc()
        assert got_id == "K1" and reply.tag == "UDataResp" and b"Val='9'" in raw, raw
        listing = await _http_json(b_api, "/api/v1/nodes/calls")
        assert sorted((c["call_id"], c["node"]) for c in listing["calls"]) == [
            ("B1", "b"),
            ("K1", "b"),
        ]
        metrics = await asyncio.to_thread(_http_text, b_api, "/metrics")
        assert "ivr_server_ha_adopted_calls_total 1.0" in metrics
        await la.close()
        await lb.close()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
