"""Active nodes with real processes (issue 25, "agents consistent across nodes" for routing): a
real ``redis-server`` and two ``ivr-server serve`` processes in ``[ha] mode = "active"``. The
built-in router of either node routes to the one ready agent of queue 6000, logged in through
node ``b``, only once the agent is reserved for the call in the store: two calls routed at the
same moment on the two nodes get the agent once (the other ``Default``); while the call holds it
both nodes count it busy and route their calls elsewhere; the agent is free again when its call
ends (routing/rules.py, runtime/ha_active.py).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ivr_server.wire import messages as m
from tests.ha.conftest import Cluster, default_body
from tests.ha.conftest import Node as Proc
from tests.integration.rawlink import RawLink, start_call

pytestmark = pytest.mark.xdist_group(__name__)

ROLE_S = 10.0
MIRROR_S = 10.0
"""Longest wait for a fact to reach the other node (two polls and a round trip, loaded)."""
AGENTS = "<RouteRequest RouteDN='5000'><CED>1</CED></RouteRequest>"
"""Rule "agents" of routing point 5000: a treatment, then the agent of queue 6000."""


def agent(port: str, status: str, req_id: str | None = None) -> m.MonitorInfo:
    return m.MonitorInfo(ReqId=req_id, Agent=m.Agent(PortNum=port, Status=status))  # type: ignore[arg-type]


def no_legacy_agents(node: Proc) -> None:
    """Log out IVR_2's LegacyMode agents (Ready in queue 6000 on every node) over the API."""
    for dn in ("4101", "4102", "4103", "4104"):
        status, answer = node.request("POST", f"agents/SW_InFront/{dn}/logout", {})
        assert status == 200, answer


async def told_until(link: RawLink, last: m.MonitorInfo) -> None:
    """Unsolicited agent events (another node's agent, from its facts: what one poll saw) until
    ``last``."""
    while (got := (await link.recv_doc(MIRROR_S))[1]) != last:
        assert isinstance(got, m.MonitorInfo) and got.Agent is not None and not got.ReqId, got


def queue_6000(node: Proc) -> dict[str, int]:
    """Queue 6000's ready and busy agents as ``node``'s statistics count them."""
    status, stats = node.request("GET", "stats")
    assert status == 200, stats
    (queue,) = [q for q in stats["queues"] if q["dn"] == "6000"]
    return {"ready": queue["ready"], "busy": queue["busy"]}


async def queue_becomes(nodes: tuple[Proc, ...], ready: int, busy: int, why: str = "") -> None:
    """Every node counts queue 6000's agents so (its own and the other nodes' facts)."""
    for node in nodes:
        deadline = time.monotonic() + MIRROR_S
        while (queue := queue_6000(node)) != {"ready": ready, "busy": busy}:
            assert time.monotonic() < deadline, (node.name, why, queue)
            await asyncio.sleep(0.1)


async def treated(link: RawLink, call_id: str) -> None:
    """The call asks routing point 5000 with CED 1 and gets the rule's treatment."""
    await link.send(call_id, AGENTS)
    treat = (await link.recv_doc(10.0))[1]
    assert isinstance(treat, m.TreatCall), treat


async def route_after_treatment(link: RawLink, call_id: str) -> m.RouteResponse:
    await link.send(call_id, "<TreatStatus Status='Started'/>")
    await link.send(call_id, "<TreatStatus Status='Completed'/>")
    routed = (await link.recv_doc(10.0))[1]
    assert isinstance(routed, m.RouteResponse), routed
    return routed


async def test_two_nodes_routing_at_once_get_one_agent_once(cluster: Cluster) -> None:
    body = default_body()
    a = cluster.add("a", body, mode="active")
    b = cluster.add("b", body, mode="active")
    a.wait_role("leader", ROLE_S)
    b.wait_role("leader", ROLE_S)
    for node in (a, b):
        no_legacy_agents(node)
    la, lb = await RawLink.open(a.port), await RawLink.open(b.port)
    try:
        await la.login("L")
        await lb.login("L")
        await lb.send(
            "L", "<AgentLogin ReqId='1' PortNum='5' Queue='6000' AgentId='77' Password=''/>"
        )
        assert (await lb.recv_doc(10.0))[1] == agent("5", "LoggedIn", "1")
        assert (await lb.recv_doc(10.0))[1] == agent("5", "NotReady", "1")
        await lb.send("L", "<AgentReady ReqId='2' PortNum='5' Queue='6000' WorkMode='ManualIn'/>")
        assert (await lb.recv_doc(10.0))[1] == agent("5", "Ready", "2")
        await told_until(la, agent("5", "Ready"))  # a's mirror of b's facts has it ready
        # and every node's mirror has the others' LegacyMode agents logged out (a mirror is as
        # old as the other node's last poll: a loaded run saw b route to a's agent 4104)
        await queue_becomes((a, b), 1, 0, "agent 77 the only one ready")

        # one call on each node waits in rule "agents"; both treatments end at once
        await start_call(la, "A1", port="1")
        await start_call(lb, "B1", port="2")
        await treated(la, "A1")
        await treated(lb, "B1")
        ra, rb = await asyncio.gather(
            route_after_treatment(la, "A1"), route_after_treatment(lb, "B1")
        )
        dests = sorted([ra.Dest or "", rb.Dest or ""])
        assert dests == ["", "4005"], (ra, rb)  # the agent once; the other call: Default
        loser = rb if ra.Dest == "4005" else ra
        assert loser == m.RouteResponse(RouteType="Default"), loser
        winner, link, other, other_link = (
            ("A1", la, "B1", lb) if ra.Dest == "4005" else ("B1", lb, "A1", la)
        )

        # while the winner's call holds the agent, every node counts it busy, and no other
        # call of either node gets it (the rule's target has nobody: the catch-all routes)
        await queue_becomes((a, b), 0, 1, winner)
        for lk, cid, port in ((la, "A2", "3"), (lb, "B2", "4")):
            await start_call(lk, cid, port=port)
            await lk.send(cid, AGENTS)
            assert (await lk.recv_doc(10.0))[1] == m.RouteResponse(RouteType="Normal", Dest="7002")

        # the winner's call ends: the agent is free again, for either node
        await link.send(winner, "<EndCall EndCause='Normal'/>")
        await other_link.send(other, "<EndCall EndCause='Normal'/>")
        await queue_becomes((a, b), 1, 0, "the agent free again")
        await start_call(la, "A9", port="9")
        await treated(la, "A9")
        assert (await route_after_treatment(la, "A9")).Dest == "4005"
    finally:
        await la.close()
        await lb.close()
