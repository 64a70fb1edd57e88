"""Active nodes with real processes (issue 25, "agents consistent across nodes"): a real
``redis-server`` and two ``ivr-server serve`` processes in ``[ha] mode = "active"``, an IVR
logged in to each over TCP. An agent control request on a DN whose agent the other node holds is
forwarded to that node over its HTTP API and answered as a single server answers it; an owner
that does not answer gets ``CallError TlibErrCode='57'`` within the lease; once the owner is dead
and its agent adopted, the survivor serves the agent itself (runtime/ha_active.py,
service/agents.py, service/peers_state.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
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


async def until_answer(
    link: RawLink, body: Callable[[int], str], wanted: Callable[[int], m.Message]
) -> None:
    """Send ``body(n)`` (a request with ReqId n) until its answer is ``wanted(n)`` (bounded)."""
    deadline = time.monotonic() + MIRROR_S
    n = 1000
    while True:
        n += 1
        await link.send("L", body(n))
        got = (await link.recv_doc(10.0))[1]
        if got == wanted(n):
            return
        assert time.monotonic() < deadline, f"last answer: {got}"
        await asyncio.sleep(0.1)


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
        # b sees a's agent (its AgentQuery is answered from the mirror of a's facts)
        await until_answer(
            lb,
            lambda n: f"<AgentQuery ReqId='{n}' PortNum='5'/>",
            lambda n: agent("5", "NotReady", str(n)),
        )

        # AgentReady at b: forwarded to a, whose switch holds the agent; b's session gets the
        # single server's answer, a's session the unsolicited event
        await lb.send("L", "<AgentReady ReqId='2' PortNum='5' Queue='6000' WorkMode='ManualIn'/>")
        assert (await lb.recv_doc(10.0))[1] == agent("5", "Ready", "2")
        assert (await la.recv_doc(10.0))[1] == agent("5", "Ready")
        await la.send("L", "<AgentQuery ReqId='3' PortNum='5'/>")
        assert (await la.recv_doc(10.0))[1] == agent("5", "Ready", "3")  # a's own switch

        # a's switch refuses: its error code, as a single server's
        await lb.send(
            "L", "<AgentLogin ReqId='4' PortNum='5' Queue='6000' AgentId='78' Password=''/>"
        )
        assert (await lb.recv_doc(10.0))[1] == agent_error("50", "4")  # logged in already

        # AgentLogout at b: done at a; the agent is gone from both
        await lb.send("L", "<AgentLogout ReqId='5' PortNum='5' Queue='6000'/>")
        assert (await lb.recv_doc(10.0))[1] == agent("5", "LoggedOut", "5")
        assert (await la.recv_doc(10.0))[1] == agent("5", "LoggedOut")

        # b's own IVR session saw nothing twice: the next document it gets answers its next request
        await lb.send("L", "<AgentQuery ReqId='6' PortNum='6'/>")
        assert (await lb.recv_doc(10.0))[1] == agent("6", "Unknown", "6")


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
        await until_answer(
            lb,
            lambda n: f"<AgentQuery ReqId='{n}' PortNum='9'/>",
            lambda n: agent("9", "NotReady", str(n)),
        )

        # a paused: b's mirror still says a holds the agent, a never answers: 57 after the lease
        a.sigstop()
        asked = time.monotonic()
        await lb.send("L", "<AgentReady ReqId='2' PortNum='9' Queue='6000' WorkMode='ManualIn'/>")
        got = (await lb.recv_doc(LEASE + 10.0))[1]
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
        assert (await lb.recv_doc(10.0))[1] == agent("9", "NotReady", "30")  # b's own switch
        await lb.send("L", "<AgentReady ReqId='3' PortNum='9' Queue='6000' WorkMode='ManualIn'/>")
        assert (await lb.recv_doc(10.0))[1] == agent("9", "Ready", "3")
        await lb.send("L", "<AgentQuery ReqId='4' PortNum='9'/>")
        assert (await lb.recv_doc(10.0))[1] == agent("9", "Ready", "4")
