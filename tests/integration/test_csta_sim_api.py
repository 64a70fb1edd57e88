"""The CSTA simulator's asyncio side and HTTP API in this process (so they are measured): every
endpoint, the timer (an answer delay, a delayed refusal), a scenario, a link drop, and the
command's refusal of a bad configuration."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from ivr_server.cli.sim import csta_sim
from ivr_server.config import ListenAddress
from ivr_server.sim.app import run_simulator
from ivr_server.sim.config import default_sim_config
from ivr_server.sim.operations import Deliver, SetDn
from ivr_server.sim.scenario import Step
from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.events import (
    EventReceived,
    RequestFailed,
    ResponseReceived,
    SessionEvent,
    SessionLost,
    SessionStarted,
)
from ivr_server.switch.csta.session import CstaSession

pytestmark = pytest.mark.xdist_group("csta-sim")

ANY_PORT = ListenAddress(host="127.0.0.1", port=0)


class Running:
    """The simulator running in this loop: its addresses, an HTTP client, its stop event."""

    def __init__(self, csta: tuple[str, int], api: str, http: aiohttp.ClientSession) -> None:
        self.csta, self.api, self.http = csta, api, http

    async def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        async with self.http.request(method, self.api + path, json=body) as response:
            return response.status, await response.json()


@contextlib.asynccontextmanager
async def simulator(steps: list[Step] | None = None) -> AsyncIterator[Running]:
    started: asyncio.Future[tuple[tuple[str, int], tuple[str, int]]] = (
        asyncio.get_running_loop().create_future()
    )
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_simulator(
            default_sim_config(),
            listen=ANY_PORT,
            api_listen=ANY_PORT,
            steps=steps,
            on_started=lambda csta, api: started.set_result((csta, api)),
            stop=stop,
        )
    )
    csta, (host, port) = await asyncio.wait_for(started, 10)
    async with aiohttp.ClientSession() as http:
        yield Running(csta, f"http://{host}:{port}/api/v1", http)
    stop.set()
    await asyncio.wait_for(task, 10)


class App:
    """Our CSTA client session over an asyncio stream to the simulator."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.session = CstaSession(application_id="ivr-server")

    @classmethod
    async def connect(cls, running: Running, *dns: str) -> App:
        app = cls(*await asyncio.open_connection(*running.csta))
        app.session.connect(0.0)
        assert isinstance((await app.read(1))[0], SessionStarted)
        for dn in dns:
            app.session.monitor_start(dn, 0.0)
        assert [type(e) for e in await app.read(len(dns))] == [ResponseReceived] * len(dns)
        return app

    async def read(self, count: int, timeout: float = 2.0) -> list[SessionEvent]:
        self.writer.write(self.session.data_to_send())
        events: list[SessionEvent] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(events) < count and loop.time() < deadline:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), deadline - loop.time())
            except TimeoutError:
                break
            events += self.session.receive_data(data, 0.0)
            if not data:
                break
        return events

    def close(self) -> None:
        self.writer.close()


def kinds(events: list[SessionEvent]) -> list[str]:
    return [type(e.event).__name__ for e in events if isinstance(e, EventReceived)]


async def test_every_endpoint() -> None:
    async with simulator() as running:
        app = await App.connect(running, "3001", "3081")
        status, call = await running.call("POST", "/calls", {"from": "555", "to": "3081"})
        assert (status, call["state"]) == (201, "alerting")
        assert kinds(await app.read(1)) == ["DeliveredEvent"]
        assert (await running.call("POST", f"/calls/{call['id']}/answer"))[1][
            "state"
        ] == "connected"
        assert kinds(await app.read(1)) == ["EstablishedEvent"]
        assert (await running.call("POST", "/calls/99/answer"))[0] == 404
        assert (await running.call("GET", "/calls/99"))[0] == 404
        assert (await running.call("GET", f"/calls/{call['id']}"))[1]["to"] == "3081"
        status, hung = await running.call("POST", f"/calls/{call['id']}/hangup")
        assert (status, hung["state"]) == (200, "cleared")
        assert (await running.call("POST", f"/calls/{call['id']}/hangup"))[0] == 409
        assert len((await running.call("GET", "/calls"))[1]["calls"]) == 1
        delayed = {"from": "555", "to": "3001", "answer_after": 0.2}
        status, later = await running.call("POST", "/calls", delayed)
        assert (status, later["state"]) == (201, "alerting")
        assert kinds(await app.read(3)) == [
            "ConnectionClearedEvent",
            "CallClearedEvent",
            "DeliveredEvent",
        ]
        assert kinds(await app.read(1)) == ["EstablishedEvent"]  # after its delay
        status, busy = await running.call("POST", "/calls", {"from": "556", "to": "3001"})
        assert (status, busy["state"]) == (409, "busy")
        assert (await running.call("POST", "/calls", {"from": "1", "to": "3085"}))[0] == 422
        assert (await running.call("POST", "/calls", [1, 2]))[0] == 400
        batch = {
            "calls": [
                {"from": "7", "to": "3003"},
                {"from": "8", "to": "3003"},
                {"from": "9", "to": "1"},
            ]
        }
        status, answer = await running.call("POST", "/calls/batch", batch)
        assert status == 200
        assert [(c["status"], c.get("state")) for c in answer["calls"]] == [
            (201, "connected"),
            (409, "busy"),
            (404, None),
        ]
        assert (await running.call("POST", "/calls/batch", {"calls": [{"to": "1"}]}))[0] == 400
        assert (await running.call("POST", "/calls/batch", {"calls": []}))[1] == {"calls": []}
        await app.read(2, timeout=0.3)
        assert (await running.call("PUT", "/dns/3002", {"in_service": False}))[1][
            "in_service"
        ] is False
        assert (await running.call("PUT", "/dns/9", {"busy": True}))[0] == 404
        assert (await running.call("PUT", "/dns/3002", {"answer_delay": -1}))[0] == 400
        assert len((await running.call("GET", "/dns"))[1]["dns"]) == 13
        rule = {"request": "GetAgentState", "error": "resourceBusy", "delay": 0.2, "count": 1}
        assert (await running.call("POST", "/refusals", rule))[0] == 201
        assert (await running.call("GET", "/refusals"))[1]["refusals"][0]["count"] == 1
        app.session.send_request(m.GetAgentState(device="3081"), 0.0)
        [refused] = await app.read(1)
        assert isinstance(refused, RequestFailed)
        [session] = (await running.call("GET", "/sessions"))[1]["sessions"]
        assert session["monitors"] == {"1": "3001", "2": "3081"}
        health = (await running.call("GET", "/health"))[1]
        assert (health["sessions"], health["calls"], health["link_refused"]) == (1, 2, False)
        status, dropped = await running.call("POST", "/link/drop", {"down_for": 0.3})
        assert (status, dropped["dropped"]) == (200, 1)
        assert await app.read(1) == [SessionLost(reason="the PBX closed the link")]
        assert (await running.call("GET", "/health"))[1]["link_refused"] is True
        app.close()
        refused_app = App(*await asyncio.open_connection(*running.csta))
        assert await refused_app.reader.read() == b""
        refused_app.close()
        await asyncio.sleep(0.35)
        (await App.connect(running, "3001")).close()


async def test_a_scenario_runs_and_a_failing_step_does_not_stop_it() -> None:
    steps = [
        Step(0.0, SetDn(dn="9999", busy=True)),
        Step(0.05, Deliver(from_="555", to="3002", call="c")),
    ]
    async with simulator(steps) as running:
        for _ in range(50):
            calls = (await running.call("GET", "/calls"))[1]["calls"]
            if calls:
                break
            await asyncio.sleep(0.05)
        assert [(c["to"], c["state"]) for c in calls] == [("3002", "connected")]


def test_the_command_reports_a_bad_configuration(tmp_path: Path) -> None:
    bad = tmp_path / "pbx.toml"
    bad.write_text("[simulator]\nbogus = 1\n")
    result = CliRunner().invoke(csta_sim, ["--config", str(bad)])
    assert result.exit_code == 1
    assert "simulator.bogus: unknown key 'bogus'" in result.output
    scenario = tmp_path / "s.toml"
    scenario.write_text('[[step]]\nop = "fly"\n')
    result = CliRunner().invoke(csta_sim, ["--scenario", str(scenario)])
    assert result.exit_code == 1
    assert "step[0]" in result.output
