"""Call control on the In-Front virtual switch over real TCP, on the default configuration (issue
23, "In-Front"): a site without a PBX transfers to its agents. OneStepXfer to an agent's DN: the
IVR gets ``XferComplete``, the call leaves the port and rings at the agent's DN with its user
data, as an agent desktop sees it on the server's event stream (``/api/v1/events``); a
consultation answered at the agent's DN and completed, or to a busy agent and retrieved;
conferences, single-step and by consultation, and the agent leaving one; unknown and busy
destinations refused with the call left on the port; and nothing left behind after EndCall. The
agents' side (answering, hanging up) is played with the switch's own T-Library requests."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from ivr_server.api import ApiServer
from ivr_server.config import default_config
from ivr_server.runtime import IvrServer
from ivr_server.switch.requests import SwitchRequest, TAnswerCall, TReleaseCall
from ivr_server.wire import messages as m
from tests.integration.conftest import LOOPBACK_0
from tests.integration.rawlink import RawLink, start_call

SWITCH = "SW_InFront"
TOKEN = "in-front-transfers"
AGENT, OTHER = "7001", "7002"
"""Agents' extensions of the default configuration."""
END_CALL = "<EndCall EndCause='Normal'/>"
_refs = itertools.count(8_000_000_001)
CALLER_DATA = "<ANI>5550100</ANI><UDataEx><Node Name='Segment' Type='Str' Val='Gold'/></UDataEx>"


class Site:
    """The server (default configuration, an API with a token), an IVR link, an HTTP client."""

    def __init__(self, server: IvrServer, link: RawLink, http: aiohttp.ClientSession) -> None:
        self.server, self.link, self.http = server, link, http
        api = server.api
        assert isinstance(api, ApiServer)
        self.url = api.url

    async def events(self, dn: str) -> aiohttp.ClientWebSocketResponse:
        """The event stream of ``dn``, as an agent desktop watches its extension."""
        return await self.http.ws_connect(
            f"{self.url.replace('http', 'ws')}/api/v1/events?dn={dn}",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )

    async def next(self, call_id: str, timeout: float = 3.0) -> Any:
        got, message, _ = await self.link.recv_doc(timeout)
        assert got == call_id, (got, message)
        return message

    async def statuses(self, call_id: str, count: int) -> list[str]:
        events: list[str] = []
        for _ in range(count):
            message = await self.next(call_id)
            assert isinstance(message, m.CallStatus), message
            events.append(message.Event)
        return events

    async def conn_id(self, call_id: str) -> str:
        await self.link.send(call_id, "<CallInfoReq/>")
        info = await self.next(call_id)
        assert isinstance(info, m.CallInfoResp) and info.ConnId, info
        return info.ConnId

    async def consulting(self, call_id: str, port: str, request: str) -> str:
        """A call on ``port``, in consultation (``request``: InitXfer or InitConf) with the agent
        at :data:`OTHER`, who answers: Held, Dialing, Established. The original's ConnId."""
        await start_call(self.link, call_id, port, CALLER_DATA)
        original = await self.conn_id(call_id)
        desktop = await self.events(OTHER)
        await self.link.send(call_id, f"<{request} DestDN='{OTHER}'/>")
        assert await self.statuses(call_id, 2) == ["Held", "Dialing"]
        consultation = (await receive(desktop, "EventRinging"))["conn_id"]
        assert consultation != original
        await desktop.close()
        self.answer(consultation, OTHER)
        assert await self.statuses(call_id, 1) == ["Established"]
        return original

    def answer(self, conn_id: str, dn: str) -> None:
        """The agent at ``dn`` picks up (TAnswerCall on the switch)."""
        self.act(TAnswerCall(reference_id=next(_refs), conn_id=conn_id, dn=dn))

    def act(self, request: SwitchRequest) -> None:
        """A request of the agent's side to the switch (an agent desktop's T-Library)."""
        self.server.service.switches[SWITCH].request(request)
        self.server.service._pump()
        self.server.flush()

    def calls_at(self, dn: str) -> list[str]:
        """ConnIds of the switch's calls ``dn`` is a party of."""
        view = self.server.service.switches[SWITCH].view
        return [c.conn_id for c in view.calls() if dn in c.parties]


@pytest.fixture
async def site(
    start_server: Callable[..., Awaitable[IvrServer]], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Site]:
    monkeypatch.delenv("IVR_SERVER_API_TOKEN", raising=False)
    base = default_config()
    config = base.model_copy(update={"api": base.api.model_copy(update={"token": TOKEN})})
    server = await start_server(config, api=ApiServer, api_listen=LOOPBACK_0)
    link = await RawLink.open(server.port)
    await link.login("L")
    async with aiohttp.ClientSession() as http:
        yield Site(server, link, http)
    await link.close()


async def receive(ws: aiohttp.ClientWebSocketResponse, event: str) -> dict[str, Any]:
    """The next event named ``event`` on the stream (others skipped)."""
    while True:
        message = await ws.receive(3.0)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        decoded: dict[str, Any] = json.loads(message.data)
        if decoded["event"] == event:
            return decoded


def data(event: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item["value"] for item in event["user_data"] or ()}


async def test_one_step_transfer_rings_the_agent_with_the_user_data(site: Site) -> None:
    await start_call(site.link, "C1", "1", CALLER_DATA)
    conn_id = await site.conn_id("C1")
    desktop = await site.events(AGENT)

    await site.link.send(
        "C1",
        f"<OneStepXfer DestDN='{AGENT}'><UDataEx>"
        "<Node Name='Case' Type='Str' Val='A-17'/></UDataEx></OneStepXfer>",
    )
    assert await site.statuses("C1", 1) == ["XferComplete"]
    ringing = await receive(desktop, "EventRinging")
    assert (ringing["dn"], ringing["conn_id"]) == (AGENT, conn_id)
    assert data(ringing) == {"Segment": "Gold", "Case": "A-17"}, ringing
    assert site.calls_at(AGENT) == [conn_id] and site.calls_at("4001") == []

    await site.link.send("C1", END_CALL)
    await site.link.expect_silence(0.2)
    assert site.server.service.calls.calls == {}
    assert site.calls_at(AGENT) == [conn_id]  # the agent's call is not the IVR's to end
    site.answer(conn_id, AGENT)
    established = await receive(desktop, "EventEstablished")
    assert established["conn_id"] == conn_id and data(established)["Case"] == "A-17"
    await desktop.close()

    # The port takes the next call.
    await start_call(site.link, "C2", "1")


async def test_a_transfer_to_an_unknown_dn_is_refused_and_the_call_stays(site: Site) -> None:
    await start_call(site.link, "C1", "2", CALLER_DATA)
    conn_id = await site.conn_id("C1")
    await site.link.send("C1", "<OneStepXfer DestDN='99999'/>")
    error = await site.next("C1")
    assert isinstance(error, m.CallError), error
    assert (error.FailedReq, error.TlibErrCode) == ("OneStepXfer", "71")  # TERR_INV_CALD_DN
    assert await site.conn_id("C1") == conn_id
    assert site.calls_at("4002") == [conn_id]
    await site.link.send("C1", END_CALL)
    await site.link.expect_silence(0.2)
    assert site.calls_at("4002") == []


async def test_consultation_answered_then_transferred(site: Site) -> None:
    await site.consulting("C1", "3", "InitXfer")

    await site.link.send("C1", "<CompleteXfer/>")
    assert await site.statuses("C1", 1) == ["XferComplete"]
    await site.link.send("C1", END_CALL)
    await site.link.expect_silence(0.2)
    assert site.calls_at("4003") == []
    assert len(site.calls_at(OTHER)) == 1  # the caller with the agent


async def test_consultation_to_a_busy_agent_then_retrieve(site: Site) -> None:
    # The agent already has a call: the transferred one.
    await start_call(site.link, "C1", "4", CALLER_DATA)
    await site.link.send("C1", f"<OneStepXfer DestDN='{AGENT}'/>")
    assert await site.statuses("C1", 1) == ["XferComplete"]
    await site.link.send("C1", END_CALL)

    await start_call(site.link, "C2", "5")
    await site.link.send("C2", f"<OneStepXfer DestDN='{AGENT}'/>")
    error = await site.next("C2")
    assert isinstance(error, m.CallError), error
    assert (error.FailedReq, error.TlibErrCode) == ("OneStepXfer", "166")  # TERR_RES_UNAVAIL
    await site.link.send("C2", f"<InitXfer DestDN='{AGENT}'/>")
    assert await site.statuses("C2", 3) == ["Held", "Dialing", "Busy"]
    await site.link.send("C2", "<RetrieveCall/>")
    assert await site.statuses("C2", 1) == ["Retrieved"]
    await site.link.send("C2", "<CompleteXfer/>")
    error = await site.next("C2")
    assert isinstance(error, m.CallError), error
    assert (error.FailedReq, error.TlibErrCode) == ("CompleteXfer", "BLOCKED_REQ")
    await site.link.send("C2", END_CALL)
    await site.link.expect_silence(0.2)
    assert site.calls_at("4005") == []


async def test_single_step_conference_then_the_agent_leaves(site: Site) -> None:
    await start_call(site.link, "C1", "6", CALLER_DATA)
    conn_id = await site.conn_id("C1")
    await site.link.send("C1", f"<OneStepConf DestDN='{OTHER}'/>")
    assert await site.statuses("C1", 1) == ["ConfPartyAdd"]
    assert site.calls_at(OTHER) == [conn_id] and site.calls_at("4006") == [conn_id]
    site.act(TReleaseCall(reference_id=next(_refs), conn_id=conn_id, dn=OTHER))
    assert await site.statuses("C1", 1) == ["ConfPartyDel"]
    assert site.calls_at("4006") == [conn_id] and site.calls_at(OTHER) == []
    await site.link.send("C1", END_CALL)
    await site.link.expect_silence(0.2)
    assert site.calls_at("4006") == []


async def test_consultation_conference(site: Site) -> None:
    original = await site.consulting("C1", "7", "InitConf")
    await site.link.send("C1", "<CompleteConf/>")
    assert await site.statuses("C1", 2) == ["Retrieved", "ConfPartyAdd"]
    assert site.calls_at(OTHER) == [original] and site.calls_at("4007") == [original]
    await site.link.send("C1", END_CALL)
    await site.link.expect_silence(0.2)
    assert site.calls_at("4007") == [] and site.calls_at(OTHER) == [original]
