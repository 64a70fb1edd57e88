"""Active nodes with real processes (issue 25, "agents consistent across nodes"): a real
``redis-server`` and two ``ivr-server serve`` processes in ``[ha] mode = "active"``, an IVR
logged in to each over TCP. The IVR's session on one node is told the agent events of the
other node's agents on its ports (``MonitorInfo Agent``, from the other node's facts); an agent
control request on a DN whose agent the other node holds is forwarded to that node over its
HTTP API and answered as a single server answers it, its events told once; an owner that does
not answer gets ``CallError TlibErrCode='57'`` within the lease; once the owner is dead and its
agent adopted, the survivor serves the agent itself (runtime/ha_active.py, service/agents.py,
service/monitoring.py, service/peers_state.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from ivr_server.wire import messages as m
from tests.ha.conftest import Cluster, default_body
from tests.ha.conftest import Node as Proc
from tests.integration.rawlink import RawLink

pytestmark = pytest.mark.xdist_group(__name__)

ROLE_S = 10.0
"""Longest wait for a node's first role (start-up, the first lease)."""
MIRROR_S = 10.0
"""Longest wait for a fact to reach the other node (two polls and a round trip, loaded)."""
LEASE = 3.0
"""Long enough that a stopped owner is still in the other node's mirror when it is asked."""


def agent(port: str, status: str, req_id: str | None = None) -> m.MonitorInfo:
    return m.MonitorInfo(ReqId=req_id, Agent=m.Agent(PortNum=port, Status=status))  # type: ignore[arg-type]


def agent_error(code: str, req_id: str) -> m.CallError:
    return m.CallError(FailedReq="AgentControl", TlibErrCode=code, ReqId=req_id)


def active_pair(cluster: Cluster, lease: float = LEASE) -> tuple[Proc, Proc]:
    body = default_body()
    a = cluster.add("a", body, mode="active", lease=lease)
    b = cluster.add("b", body, mode="active", lease=lease)
    a.wait_role("leader", ROLE_S)
    b.wait_role("leader", ROLE_S)
    return a, b


def adopted(node: Proc, slot: str) -> bool:
    """Has ``node`` adopted the dead node's slot ``slot``, and left it out of its mirror
    (``GET /api/v1/nodes``)?"""
    status, view = node.request("GET", "nodes")
    assert status == 200, view
    return any(
        done.get("slot") == slot for done in view["this"].get("adoptions") or ()
    ) and slot not in {n["id"] for n in view["nodes"]}


@asynccontextmanager
async def ivr(node: Proc) -> AsyncIterator[RawLink]:
    """An IVR_1 session (4.0, session CallId ``L``) on ``node``."""
    link = await RawLink.open(node.port)
    try:
        await link.login("L")
        yield link
    finally:
        await link.close()


async def answer(link: RawLink, timeout: float = 10.0) -> m.Message:
    """The next document but the unsolicited agent events (``MonitorInfo Agent`` without a
    ``ReqId``), which the other node's facts bring at any poll."""
    while True:
        got = (await link.recv_doc(timeout))[1]
        if not (isinstance(got, m.MonitorInfo) and got.Agent is not None and got.ReqId is None):
            return got


async def told(link: RawLink, *wanted: m.Message) -> None:
    """The next documents are ``wanted`` (the other node's facts: within a few polls)."""
    for one in wanted:
        assert (await link.recv_doc(MIRROR_S))[1] == one


async def nothing_more(link: RawLink, port: str) -> None:
    """Nothing was queued for ``link`` in the last second: the next document answers a query."""
    await asyncio.sleep(1.0)  # ten polls: a duplicate event from the facts would be here by now
    await link.send("L", f"<AgentQuery ReqId='q' PortNum='{port}'/>")
    got = (await link.recv_doc(10.0))[1]
    assert isinstance(got, m.MonitorInfo) and got.ReqId == "q", got


async def test_agent_control_on_the_other_nodes_agent_is_forwarded_to_it(
    cluster: Cluster,
) -> None:
    a, b = active_pair(cluster)
    async with ivr(a) as la, ivr(b) as lb:
        await la.send(
            "L", "<AgentLogin ReqId='1' PortNum='5' Queue='6000' AgentId='77' Password=''/>"
        )
        assert (await la.recv_doc(10.0))[1] == agent("5", "LoggedIn", "1")
        assert (await la.recv_doc(10.0))[1] == agent("5", "NotReady", "1")
        # b's session is told a's agent events, as a single server's other session is
        await told(lb, agent("5", "LoggedIn"), agent("5", "NotReady"))
        await lb.send("L", "<AgentQuery ReqId='2' PortNum='5'/>")  # from the mirror
        assert (await lb.recv_doc(10.0))[1] == agent("5", "NotReady", "2")

        # AgentReady at b: forwarded to a, whose switch holds the agent; b's session gets the
        # single server's answer, a's session the unsolicited event
        await lb.send("L", "<AgentReady ReqId='3' PortNum='5' Queue='6000' WorkMode='ManualIn'/>")
        assert (await lb.recv_doc(10.0))[1] == agent("5", "Ready", "3")
        assert (await la.recv_doc(10.0))[1] == agent("5", "Ready")
        await la.send("L", "<AgentQuery ReqId='4' PortNum='5'/>")
        assert (await la.recv_doc(10.0))[1] == agent("5", "Ready", "4")  # a's own switch
        await nothing_more(lb, "5")  # b's facts' diff does not tell the Ready again

        # a's switch refuses: its error code, as a single server's
        await lb.send(
            "L", "<AgentLogin ReqId='5' PortNum='5' Queue='6000' AgentId='78' Password=''/>"
        )
        assert (await lb.recv_doc(10.0))[1] == agent_error("50", "5")  # logged in already

        # AgentNotReady at a: b's session is told
        await la.send("L", "<AgentNotReady ReqId='6' PortNum='5' Queue='6000'/>")
        assert (await la.recv_doc(10.0))[1] == agent("5", "NotReady", "6")
        await told(lb, agent("5", "NotReady"))

        # AgentLogout at b: done at a; the agent is gone from both, told once
        await lb.send("L", "<AgentLogout ReqId='7' PortNum='5' Queue='6000'/>")
        assert (await lb.recv_doc(10.0))[1] == agent("5", "LoggedOut", "7")
        assert (await la.recv_doc(10.0))[1] == agent("5", "LoggedOut")
        await nothing_more(lb, "6")
        await nothing_more(la, "6")


async def test_an_owner_that_does_not_answer_gives_57_and_its_agent_is_adopted(
    cluster: Cluster,
) -> None:
    a, b = active_pair(cluster)
    async with ivr(a) as la, ivr(b) as lb:
        await la.send(
            "L",
            "<AgentLogin ReqId='1' PortNum='9' Queue='6000' AgentId='99' Password=''/>",
        )
        assert (await la.recv_doc(10.0))[1] == agent("9", "LoggedIn", "1")
        assert (await la.recv_doc(10.0))[1] == agent("9", "NotReady", "1")
        await told(lb, agent("9", "LoggedIn"), agent("9", "NotReady"))  # b's mirror has it

        # a paused: b's mirror still says a holds the agent, a never answers: 57 after the lease
        a.sigstop()
        asked = time.monotonic()
        await lb.send("L", "<AgentReady ReqId='2' PortNum='9' Queue='6000' WorkMode='ManualIn'/>")
        got = await answer(lb, LEASE + 10.0)  # a's facts may lapse meanwhile: LoggedOut told
        waited = time.monotonic() - asked
        assert got == agent_error("57", "2"), got
        assert LEASE * 0.9 <= waited < LEASE + 5.0, waited
        a.kill9()

        # a's lease lapsed: b adopts a's slot with the agent's DN record and serves it itself
        deadline = time.monotonic() + LEASE + 10.0
        while not adopted(b, "a"):
            assert time.monotonic() < deadline, b.request("GET", "nodes")
            await asyncio.sleep(0.1)
        await lb.send("L", "<AgentQuery ReqId='30' PortNum='9'/>")
        assert await answer(lb) == agent("9", "NotReady", "30")  # b's own switch
        await lb.send("L", "<AgentReady ReqId='3' PortNum='9' Queue='6000' WorkMode='ManualIn'/>")
        assert await answer(lb) == agent("9", "Ready", "3")
        await lb.send("L", "<AgentQuery ReqId='4' PortNum='9'/>")
        assert await answer(lb) == agent("9", "Ready", "4")
