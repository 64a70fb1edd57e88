"""What the web view's Agents and Statistics cards read, at the API level (docs/webview.md).

The page draws its Agents card from ``GET /api/v1/state``'s ``switches`` (every DN's agent, IVR
port or not) and its Statistics card from ``stats`` (lists of objects); it redraws when an event
arrives on ``/api/v1/events``. Here, without a browser: an agent logged in on extension 7001 (the
README's example, not an IVR port) is in the state, with and without the token, its events are on
the stream, and the statistics are there as the lists the page draws, following the agent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from ivr_server.api import TOKEN_ENV, ApiServer
from ivr_server.config import default_config
from ivr_server.runtime import IvrServer
from tests.integration.conftest import LOOPBACK_0

StartServer = Callable[..., Awaitable[IvrServer]]

TOKEN = "webview-state-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SWITCH = "SW_InFront"


@pytest.fixture
async def api(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    base = default_config()
    config = base.model_copy(
        update={"api": base.api.model_copy(update={"token": TOKEN, "listen": ()})}
    )
    server: IvrServer = await start_server(config, api=ApiServer, api_listen=LOOPBACK_0)
    assert isinstance(server.api, ApiServer)
    async with aiohttp.ClientSession() as http:
        yield server.api.url, http


async def get_state(url: str, http: aiohttp.ClientSession, *, token: bool) -> dict[str, Any]:
    async with http.get(f"{url}/api/v1/state", headers=AUTH if token else {}) as response:
        assert response.status == 200
        state: dict[str, Any] = await response.json()
        return state


def agents(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``"switch/dn"`` -> the agent, for every DN with one (what the Agents card lists)."""
    return {
        f"{sw['name']}/{dn['number']}": dn["agent"]
        for sw in state["switches"]
        for dn in sw["dns"]
        if dn["agent"] is not None
    }


async def test_agent_on_an_extension_and_list_statistics_are_in_the_state(
    api: tuple[str, aiohttp.ClientSession],
) -> None:
    url, http = api
    before = await get_state(url, http, token=False)
    assert set(agents(before)) == {f"{SWITCH}/{dn}" for dn in ("4101", "4102", "4103", "4104")}
    stats = before["stats"]
    for key in ("statistics", "routing_points", "queues", "agent_groups", "ivrs"):
        assert isinstance(stats[key], list) and stats[key], key
    (queue,) = stats["queues"]
    assert (queue["switch"], queue["dn"], queue["ready"], queue["logged_in"]) == (
        SWITCH,
        "6000",
        4,
        4,
    )

    ws = await http.ws_connect(url.replace("http", "ws") + "/api/v1/events", headers=AUTH)
    login = {"agent_id": "A1", "queue": "6000", "work_mode": "AutoIn"}
    async with http.post(
        f"{url}/api/v1/agents/{SWITCH}/7001/login", json=login, headers=AUTH
    ) as response:
        assert response.status == 200
    events = [json.loads((await ws.receive(timeout=3)).data) for _ in range(2)]
    await ws.close()
    assert [(e["event"], e["dn"], e["agent_id"]) for e in events] == [
        ("EventAgentLogin", "7001", "A1"),
        ("EventAgentReady", "7001", "A1"),
    ]

    for token in (True, False):  # agents and statistics are public, like the topology
        after = await get_state(url, http, token=token)
        assert agents(after)[f"{SWITCH}/7001"] == {
            "agent_id": "A1",
            "state": "Ready",
            "queue": "6000",
            "work_mode": "AutoIn",
        }
        (dn,) = (d for d in after["switches"][0]["dns"] if d["number"] == "7001")
        assert dn["type"] == "extension"
        stats = after["stats"]
        (queue,) = stats["queues"]
        assert (queue["ready"], queue["logged_in"]) == (5, 5)
        named = {item["name"]: item for item in stats["statistics"]}
        assert (named["ReadyAgents_6000"]["result"], named["ReadyAgents_6000"]["text"]) == (
            "Success",
            "5",
        )
