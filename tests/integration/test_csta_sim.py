"""``ivr-server csta-sim`` as its own process: the project's CSTA client session over a real socket,
calls delivered and hung up through the HTTP API, a refusal after a delay, a link drop, a scenario,
and bad input that leaves the simulator up."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import encode
from ivr_server.switch.csta.events import (
    EventReceived,
    RequestFailed,
    ResponseReceived,
    SessionEvent,
    SessionLost,
    SessionStarted,
)
from ivr_server.switch.csta.framing import encode_frame
from ivr_server.switch.csta.session import CstaSession
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.xdist_group("csta-sim")

PBX = ROOT / "examples/pbx.toml"
_BANNER = re.compile(r"CSTA on (\S+):(\d+), HTTP API on (http://\S+/api/v1)/")


class Sim:
    """A running simulator process, its CSTA address and its API's base URL."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "ivr_server", "csta-sim", "--listen", "127.0.0.1:0"),
                *("--api-listen", "127.0.0.1:0", *args),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = _BANNER.search(line)
        if found is None:
            self.proc.kill()
            raise AssertionError(f"csta-sim did not start: {line!r} {self.proc.communicate()}")
        self.csta = (found.group(1), int(found.group(2)))
        self.api = found.group(3)
        self.apps: list[App] = []

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data: bytes | None = body if isinstance(body, bytes) else json.dumps(body).encode()
        if body is None:
            data = None
        request = urllib.request.Request(self.api + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def stop(self) -> str:
        for app in self.apps:
            app.close()
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0, err
        return err


class App:
    """The project's CSTA client session over a real socket to the simulator."""

    def __init__(self, sim: Sim, application_id: str = "ivr-server") -> None:
        self.sock = socket.create_connection(sim.csta, timeout=5)
        sim.apps.append(self)
        self.session = CstaSession(application_id=application_id)
        self.session.connect(time.monotonic())
        self.flush()

    def flush(self) -> None:
        data = self.session.data_to_send()
        if data:
            self.sock.sendall(data)

    def read(self, seconds: float = 0.5, until: int | None = None) -> list[SessionEvent]:
        """Events within ``seconds`` (or as soon as ``until`` of them came)."""
        events: list[SessionEvent] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (until is None or len(events) < until):
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionError:
                data = b""
            events += self.session.receive_data(data, time.monotonic())
            self.flush()
            if not data:
                break
        return events

    def ask(self, request: m.CstaRequest) -> None:
        self.session.send_request(request, time.monotonic())
        self.flush()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sim() -> Iterator[Sim]:
    sim = Sim("--config", str(PBX))
    yield sim
    if sim.proc.poll() is None:
        sim.stop()


def started(sim: Sim, *dns: str) -> App:
    app = App(sim)
    assert isinstance(app.read(until=1)[0], SessionStarted)
    for dn in dns:
        app.session.monitor_start(dn, time.monotonic())
    app.flush()
    assert [type(e) for e in app.read(until=len(dns))] == [ResponseReceived] * len(dns)
    return app


def kinds(events: list[SessionEvent]) -> list[str]:
    return [type(e.event).__name__ for e in events if isinstance(e, EventReceived)]


def test_a_call_delivered_through_the_api_reaches_the_monitor(sim: Sim) -> None:
    app = started(sim, "3001")
    status, call = sim.call("POST", "/calls", {"from": "5551234", "to": "3001", "dnis": "8000"})
    assert (status, call["state"]) == (201, "connected")
    events = app.read(until=2)
    assert kinds(events) == ["DeliveredEvent", "EstablishedEvent"]
    delivered = events[0]
    assert isinstance(delivered, EventReceived) and delivered.dn == "3001"
    assert isinstance(delivered.event, m.DeliveredEvent)
    assert delivered.event.connection == m.ConnectionID(call_id=call["id"], device_id="3001")
    assert (delivered.event.calling_device, delivered.event.called_device) == ("5551234", "8000")
    assert sim.call("GET", f"/calls/{call['id']}")[1]["state"] == "connected"
    status, hung = sim.call("POST", f"/calls/{call['id']}/hangup", {})
    assert (status, hung["state"], hung["cleared_by"]) == (200, "cleared", "5551234")
    assert kinds(app.read(until=2)) == ["ConnectionClearedEvent", "CallClearedEvent"]
    [session] = sim.call("GET", "/sessions")[1]["sessions"]
    assert (session["application"], session["monitors"]) == ("ivr-server", {"1": "3001"})
    assert sim.call("GET", "/health")[1]["status"] == "ok"
    assert len(sim.call("GET", "/calls")[1]["calls"]) == 1
    app.close()


def test_busy_unknown_and_bad_requests_get_documented_answers(sim: Sim) -> None:
    status, dn = sim.call("PUT", "/dns/3002", {"busy": True})
    assert (status, dn["busy"]) == (200, True)
    status, busy = sim.call("POST", "/calls", {"from": "1", "to": "3002"})
    assert (status, busy["state"]) == (409, "busy")
    assert sim.call("POST", "/calls", {"from": "1", "to": "9999"})[0] == 404
    assert sim.call("POST", "/calls", {"from": "1"})[0] == 400
    assert sim.call("POST", "/calls", b"{not json")[0] == 400
    assert sim.call("POST", "/calls/77/answer", {})[0] == 404
    assert sim.call("POST", "/refusals", {"request": "Fly", "error": "generic"})[0] == 400
    dns = {d["number"]: d for d in sim.call("GET", "/dns")[1]["dns"]}
    assert dns["3085"]["type"] == "acd-queue" and dns["3002"]["busy"] is True
    status, ringing = sim.call("POST", "/calls", {"from": "1", "to": "3081"})
    assert (status, ringing["state"]) == (201, "alerting")
    assert sim.call("POST", f"/calls/{ringing['id']}/answer", {})[1]["state"] == "connected"


def test_a_refusal_comes_after_its_delay(sim: Sim) -> None:
    app = started(sim, "3001")
    rule = {"request": "SingleStepTransferCall", "error": "invalidDestination", "delay": 0.6}
    assert sim.call("POST", "/refusals", rule)[0] == 201
    connection = m.ConnectionID(call_id="1", device_id="3001")
    asked = time.monotonic()
    app.ask(m.SingleStepTransferCall(active_call=connection, transferred_to="3081"))
    [failed] = app.read(2.0, until=1)
    assert time.monotonic() - asked >= 0.55
    assert isinstance(failed, RequestFailed)
    assert failed.error == m.CSTAErrorCode(category="operation", value="invalidDestination")
    app.ask(m.SingleStepTransferCall(active_call=connection, transferred_to="3081"))
    [served] = app.read(until=1)  # the rule is used up: the service itself answers (no call 1)
    assert isinstance(served, RequestFailed)
    assert served.error == m.CSTAErrorCode(category="operation", value="invalidCallID")
    assert sim.call("GET", "/refusals")[1] == {"refusals": []}


def test_a_link_drop_closes_the_session_and_refuses_connections_for_a_while(sim: Sim) -> None:
    app = started(sim, "3001")
    dropped_at = time.monotonic()
    assert sim.call("POST", "/link/drop", {"down_for": 1.0})[1]["dropped"] == 1
    assert app.read(until=1) == [SessionLost(reason="the PBX closed the link")]
    refused = App(sim)
    assert refused.read(1.0) == [SessionLost(reason="the PBX closed the link")]
    time.sleep(max(0.0, dropped_at + 1.1 - time.monotonic()))
    again = started(sim, "3001")
    assert sim.call("GET", "/health")[1]["sessions"] == 1
    again.close()


def test_bad_input_leaves_the_simulator_up(sim: Sim) -> None:
    app = started(sim)
    doctype = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><MonitorStart/>'
    for document in (doctype, b"\xff" * 65000, encode(m.UnknownDocument(tag="DeflectCall"))):
        app.sock.sendall(encode_frame(5, document))
    values = []
    for _ in range(3):
        app.sock.settimeout(2)
        header = app.sock.recv(8, socket.MSG_WAITALL)
        body = app.sock.recv(int.from_bytes(header[2:4], "big") - 8, socket.MSG_WAITALL)
        values.append(re.search(rb"<(?:\w+:)?operation>(\w+)<", body).group(1))  # type: ignore[union-attr]
    assert values == [b"generic", b"generic", b"serviceNotSupported"]
    app.sock.sendall(b"\x00\x00\x00\x09ABCDx")  # not a frame: the link is closed
    app.sock.settimeout(2)
    assert app.sock.recv(100) == b""
    assert sim.call("GET", "/health")[1]["status"] == "ok"
    started(sim, "3001").close()


def test_a_scenario_plays_from_the_start(tmp_path: Path) -> None:
    scenario = tmp_path / "steps.toml"
    scenario.write_text(
        '[[step]]\nat = 0.2\nop = "deliver"\nfrom = "5551234"\nto = "3001"\ncall = "c"\n'
        '[[step]]\nat = 0.4\nop = "hangup"\ncall = "c"\n'
    )
    sim = Sim("--scenario", str(scenario))
    try:
        deadline = time.monotonic() + 5
        calls: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            calls = sim.call("GET", "/calls")[1]["calls"]
            if calls and calls[0]["state"] == "cleared":
                break
            time.sleep(0.1)
        assert [(c["to"], c["state"]) for c in calls] == [("3001", "cleared")]
    finally:
        sim.stop()


def test_a_bad_configuration_is_reported_by_key(tmp_path: Path) -> None:
    bad = tmp_path / "pbx.toml"
    bad.write_text('[simulator]\nlisten = "nowhere"\n[[dns]]\nnumber = "1"\ntype = "fax"\n')
    done = subprocess.run(
        [sys.executable, "-m", "ivr_server", "csta-sim", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 1
    assert "2 problem(s)" in done.stderr
    assert "simulator.listen: invalid address 'nowhere'" in done.stderr
    assert "dns[0].type:" in done.stderr
