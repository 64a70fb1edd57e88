"""Agent control on the premise port DNs (MODES-AND-HA row B16): the IVR's AgentLogin, Ready,
NotReady, Query and Logout go to the PBX as SetAgentState/GetAgentState, and the PBX's agent
events come back as ``MonitorInfo/Agent`` with the request's ``ReqId``; the simulator's own view
of the DN follows. (With the link down: tests/behind/test_link.py.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest

from ivr_server.wire.messages import MonitorInfo
from tests.behind.conftest import Ivr, Site, running_site

pytestmark = pytest.mark.xdist_group(__name__)  # the module's processes on one worker

Open = Callable[..., Awaitable[Ivr]]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("agents")) as running:
        yield running


async def agent_status(ivr: Ivr, req_id: str) -> str:
    """The status of the next ``MonitorInfo/Agent`` answering ``req_id`` (port 2)."""
    info = await ivr.expect(ivr.session, MonitorInfo, where=lambda m: m.ReqId == req_id)
    assert info.Agent is not None and info.Agent.PortNum == "2", info
    return info.Agent.Status


def sim_agent(site: Site) -> dict[str, str] | None:
    """The agent the simulator has on DN 3002 (``GET /dns``), if any."""
    agent = site.sim.dn("3002")["agent"]
    return None if agent is None else dict(agent)


async def test_agent_control_through_the_pbx(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    send = ivr.send
    send(ivr.session, "<AgentQuery ReqId='1' PortNum='2'/>")
    assert await agent_status(ivr, "1") in ("LoggedOut", "Unknown")

    send(ivr.session, "<AgentLogin ReqId='2' PortNum='2' Queue='3085' AgentId='4711' Password=''/>")
    assert await agent_status(ivr, "2") == "LoggedIn"
    agent = sim_agent(site)
    assert agent is not None and agent["agent_id"] == "4711", agent

    send(ivr.session, "<AgentReady ReqId='3' PortNum='2' Queue='3085' WorkMode='ManualIn'/>")
    assert await agent_status(ivr, "3") == "Ready"
    send(ivr.session, "<AgentQuery ReqId='4' PortNum='2'/>")
    assert await agent_status(ivr, "4") == "Ready"

    send(ivr.session, "<AgentNotReady ReqId='5' PortNum='2' Queue='3085'/>")
    assert await agent_status(ivr, "5") == "NotReady"

    send(ivr.session, "<AgentLogout ReqId='6' PortNum='2' Queue='3085'/>")
    assert await agent_status(ivr, "6") == "LoggedOut"
    assert sim_agent(site) is None
