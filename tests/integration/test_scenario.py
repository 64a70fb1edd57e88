"""A whole day in the life, only through the public interfaces: IVR sessions over GLI, the HTTP
API and its event stream, /metrics. An external router routes calls; an agent is logged in and
made ready over the API; statistics move as calls wait and are routed; an outbound call goes out
and its outcome comes back; the metrics count what happened."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from ivr_server.api import ApiServer
from ivr_server.config import ServerConfig, default_config
from ivr_server.runtime import IvrServer
from ivr_server.wire import messages as m
from tests.integration.conftest import LOOPBACK_0
from tests.integration.rawlink import RawLink, server_doc, start_call

StartServer = Callable[..., Awaitable[IvrServer]]
TOKEN = "scenario-token"


def config() -> ServerConfig:
    base = default_config()
    timers = base.server.timers.model_copy(update={"router_timeout": 5.0})
    api = base.api.model_copy(update={"token": TOKEN, "listen": ()})
    return base.model_copy(
        update={"server": base.server.model_copy(update={"timers": timers}), "api": api}
    )


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


async def test_full_scenario_through_public_interfaces(start_server: StartServer) -> None:
    server = await start_server(config(), api=ApiServer, api_listen=LOOPBACK_0)
    host, port = server.api_addresses[0]
    base = f"http://{host}:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:

        async def api(method: str, path: str, body: Any = None, status: int = 200) -> Any:
            async with http.request(method, base + path, json=body, headers=auth) as response:
                answer = await response.json()
                assert response.status == status, (path, response.status, answer)
                return answer

        async def stat(name: str) -> Any:
            stats = await api("GET", "/api/v1/stats")
            return {s["name"]: s["value"] for s in stats["statistics"]}[name]

        events = await http.ws_connect(
            base.replace("http", "ws") + "/api/v1/events?dn=5000", headers=auth
        )

        # an external router takes over routing point 5000
        await api("PUT", "/api/v1/routing-points/SW_InFront/5000/router", {"router": "external"})
        # an agent logs in on extension 7001 and becomes ready
        await api(
            "POST", "/api/v1/agents/SW_InFront/7001/login", {"agent_id": "A7", "queue": "6000"}
        )
        await api("POST", "/api/v1/agents/SW_InFront/7001/ready", {"queue": "6000"})
        assert await stat("ReadyAgents_6000") == 5  # IVR_2's four auto-logged-in agents + A7

        ivr = await RawLink.open(server.port)
        await ivr.login("L")
        await start_call(ivr, "C1", "1", "<ANI>5550100</ANI>")
        await start_call(ivr, "C2", "2", "<ANI>5550101</ANI>")
        for cid in ("C1", "C2"):
            await ivr.send(cid, "<RouteRequest RouteDN='5000'><CED>42</CED></RouteRequest>")
        waiting: list[dict[str, Any]] = []
        while len(waiting) < 2:
            event = json.loads((await events.receive(timeout=3)).data)
            if event["event"] == "EventRouteRequest":
                waiting.append(event)
        assert [w["collected_digits"] for w in waiting] == ["42", "42"]
        assert await stat("Waiting_5000") == 2

        # the external router routes the first call to the agent, the second by default
        first, second = waiting
        await api(
            "POST",
            f"/api/v1/routing-points/SW_InFront/5000/calls/{first['conn_id']}/route",
            {"dest": "7001", "extensions": [{"name": "AGENT", "value": "A7"}]},
        )
        got_id, routed, raw = await ivr.recv_doc()
        assert got_id == "C1" and isinstance(routed, m.RouteResponse)
        assert raw == server_doc(
            "C1",
            "<RouteResponse RouteType='Normal'><Dest>7001</Dest><ExtnsEx>"
            "<Node Name='AGENT' Type='Str' Val='A7'/></ExtnsEx></RouteResponse>",
        )
        assert await stat("Waiting_5000") == 1
        await api(
            "POST",
            f"/api/v1/routing-points/SW_InFront/5000/calls/{second['conn_id']}/route",
            {"route_type": "Default"},
        )
        assert (await ivr.recv_doc())[1] == m.RouteResponse(RouteType="Default")
        assert await stat("Waiting_5000") == 0
        await events.close()

        # an outbound call from routing point 5001, registered by the IVR
        await ivr.send("L", "<DialOutRegistry Command='Add' DN='5001'/>")
        assert (await ivr.recv_doc())[1] == m.DialOutRegistryResp(Result="Success")

        async def answer_dial_out() -> None:
            _, dial_out, _ = await ivr.recv_doc()
            assert isinstance(dial_out, m.DialOut) and dial_out.DestNum == "5559999"
            await ivr.send(
                "OUT",
                f"<DialOutInit RefID='{dial_out.RefID}'><CalledNum>3</CalledNum></DialOutInit>",
            )
            assert (await ivr.recv_doc())[1] == m.CallStatus(Event="Dialing")
            await ivr.send("OUT", "<CallStatus Event='Established'/>")
            assert (await ivr.recv_doc())[1] == m.CallStatus(Event="Ringing")
            assert (await ivr.recv_doc())[1] == m.CallStatus(Event="Established")

        side = asyncio.create_task(answer_dial_out())
        outcome = await api("POST", "/api/v1/dial-out", {"dn": "5001", "dest": "5559999"})
        await side
        assert outcome["result"] == "established" and outcome["call_id"] == "OUT"

        for cid in ("C1", "C2", "OUT"):
            await ivr.send(cid, "<EndCall EndCause='Normal'/>")
        await ivr.send("C1", "<CallInfoReq/>")
        assert (await ivr.recv_doc())[1] == m.CallError(FailedReq="NoSuchCall")
        assert await api("GET", "/api/v1/calls") == []

        async with http.get(base + "/metrics") as response:
            text = await response.text()
        assert metric(text, "ivr_server_calls_started_total") == 3
        assert metric(text, "ivr_server_calls_completed_total") == 3
        assert metric(text, "ivr_server_calls_active") == 0
        assert metric(text, "ivr_server_routing_total", route_type="Normal") == 1
        assert metric(text, "ivr_server_routing_total", route_type="Default") == 1
        assert metric(text, "ivr_server_messages_in_total", type="NewCall") == 2
        assert metric(text, "ivr_server_messages_out_total", type="DialOut") == 1
        assert metric(text, "ivr_server_link_up", switch="SW_InFront") == 1
        await ivr.close()
