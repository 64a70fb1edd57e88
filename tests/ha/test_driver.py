"""The pair drivers themselves (:mod:`ivr_server.client.pair`), against two ordinary servers
(``mode = "off"``, in this process): both answer everything, which is what lets these tests see
the driver send every document to both, in the same order, record who answered what, and
reconnect to a node that went away. The fail-over scenarios are in ``test_failover.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ivr_server.client import (
    ConnectFailed,
    HotStandbyDriver,
    NodeAddress,
    WarmStandbyClient,
)
from ivr_server.config import ListenAddress, default_config
from ivr_server.runtime import IvrServer
from ivr_server.wire import Node
from ivr_server.wire import messages as m
from tests.redisproc import free_port

IVR = "IVR_1"


async def _server(port: int = 0) -> IvrServer:
    server = IvrServer(
        default_config(), listen=(ListenAddress(host="127.0.0.1", port=port),), api_listen=()
    )
    await server.start()
    return server


@pytest.fixture
async def servers() -> AsyncIterator[list[IvrServer]]:
    started = [await _server(), await _server()]
    yield started
    for server in started:
        await server.stop()


def _addresses(servers: list[IvrServer]) -> list[NodeAddress]:
    return [NodeAddress(name, "127.0.0.1", s.port) for name, s in zip("ab", servers, strict=True)]


async def test_every_request_goes_to_both_nodes_in_order_and_every_answer_is_recorded(
    servers: list[IvrServer],
) -> None:
    async with await HotStandbyDriver.open(_addresses(servers), IVR) as driver:
        assert driver.connected == ("a", "b")
        assert [n for n, r, _ in driver.logins] in (["a", "b"], ["b", "a"])
        assert {r.call_id for _, r, _ in driver.logins} == {driver.session_call_id}
        call = driver.new_call_id("H")
        assert driver.send(call, m.NewCall(CallControlMode="Network", CalledNum="1")) == (
            "a",
            "b",
        )
        for node in ("a", "b"):
            got = await driver.expect(call, types=m.CallStatus, node=node)
            assert got.message == m.CallStatus(Event="Ringing")
        data = (Node(Name="k", Type="Str", Val="v"),)
        answer = await driver.request(
            call, m.UDataSet(Action="Replace", RequestId="1", UDataEx=data), expect=m.UDataResp
        )
        assert answer.message == m.UDataResp(Result="Success", RequestId="1")
        exchange = driver.exchanges[-1]
        for _ in range(100):  # the second node's answer is recorded when it comes
            if len(exchange.answers) == 2:
                break
            await asyncio.sleep(0.01)
        assert set(exchange.answers) == {"a", "b"}
        assert exchange.index == 1 and exchange.sent_to == ("a", "b")
        assert exchange.first is not None and driver.primary in ("a", "b")
        assert all(not t.login for t in driver.sent_by("a"))
        driver.send(call, m.EndCall(EndCause="Normal"))


async def test_a_node_that_goes_away_is_reconnected_and_logged_in_again() -> None:
    port = free_port()
    first = await _server(port)
    other = await _server()
    try:
        nodes = [NodeAddress("a", "127.0.0.1", port), NodeAddress("b", "127.0.0.1", other.port)]
        async with await HotStandbyDriver.open(nodes, IVR) as driver:
            await first.stop()
            for _ in range(200):
                if driver.connected == ("b",):
                    break
                await asyncio.sleep(0.01)
            assert driver.connected == ("b",)
            answer = await driver.request(
                "X1", m.CallInfoReq(), expect=(m.CallInfoResp, m.CallError)
            )
            assert isinstance(answer.message, m.CallError)
            assert driver.exchanges[-1].sent_to == ("b",)
            first = await _server(port)
            await driver.wait_connected("a", 10)
            assert [n for n, _, _ in driver.logins].count("a") == 2
    finally:
        await first.stop()
        await other.stop()


async def test_the_warm_client_logs_in_to_whichever_node_listens() -> None:
    server = await _server()
    try:
        nodes = [
            NodeAddress("a", "127.0.0.1", free_port()),
            NodeAddress("b", "127.0.0.1", server.port),
        ]
        async with WarmStandbyClient(nodes, IVR, connect_timeout=0.5) as warm:
            assert await warm.connect(timeout=5) == "b"
            answer = await warm.request("X1", m.CallInfoReq(), expect=(m.CallInfoResp, m.CallError))
            assert isinstance(answer.message, m.CallError)
        with pytest.raises(ConnectFailed):
            await WarmStandbyClient(nodes[:1], IVR, connect_timeout=0.2).connect(timeout=0.5)
    finally:
        await server.stop()
