"""A reload that would strand live calls is refused unless forced (an emptied file, say).

In-process (``IvrServer.request_reload`` and ``POST /api/v1/reload``) and with the real command
(``ivr-server reload`` sends SIGHUP, ``reload --force`` SIGUSR2). Each test keeps a canary
session of another IVR making complete calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ivr_server.api import ApiServer
from ivr_server.config import parse_config
from ivr_server.runtime import IvrServer
from ivr_server.wire import messages as m
from tests.integration.conftest import LOOPBACK_0, start, stop
from tests.integration.rawlink import RawLink, start_call
from tests.integration.test_cli import ivr_server

StartServer = Callable[..., Awaitable[IvrServer]]

TOKEN = "reload-token"
DNS = ("4001", "4002", "4003", "4004", "4005")


def config_text(
    a_ports: str = '{ number = "1", dn = "4001" }, { number = "2", dn = "4002" }',
    a_enabled: str = "true",
    dns: tuple[str, ...] = DNS,
    listen: str = "127.0.0.1:0",
) -> str:
    dn_list = ", ".join(f'{{ number = "{dn}", type = "voice-treatment-port" }}' for dn in dns)
    return f"""
[server]
listen = ["{listen}"]

[api]
token = "{TOKEN}"

[[switches]]
name = "SW"
dns = [{dn_list}]

[[tservers]]
name = "TS"
switch = "SW"

[[ivrs]]
name = "IVR_A"
enabled = {a_enabled}
tservers = ["TS"]
legacy-mode = false
ports = [{a_ports}]

[[ivrs]]
name = "IVR_B"
tservers = ["TS"]
legacy-mode = false
ports = [{{ number = "1", dn = "4003" }}]
"""


async def canary_call(link: RawLink, call_id: str) -> None:
    """A complete call on the canary's IVR_B port 1."""
    await start_call(link, call_id, "1")
    await link.send(call_id, "<EndCall EndCause='Normal'/>")
    await link.send(call_id, "<CallInfoReq/>")
    assert (await link.recv_doc(timeout=10))[:2] == (call_id, m.CallError(FailedReq="NoSuchCall"))


async def call_is_live(link: RawLink, call_id: str) -> None:
    await link.send(call_id, "<CallInfoReq/>")
    got_id, answer, _ = await link.recv_doc(timeout=10)
    assert got_id == call_id and isinstance(answer, m.CallInfoResp), answer


async def test_an_emptied_file_is_refused_while_a_call_is_live_and_applied_by_force(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ivr.toml"
    path.write_text(config_text(), encoding="utf-8")
    server = await start_server(
        parse_config(config_text()), config_path=str(path), api=ApiServer, api_listen=LOOPBACK_0
    )
    link = await RawLink.open(server.port)
    await link.login("L", "IVR_A")
    canary = await RawLink.open(server.port)
    await canary.login("K", "IVR_B")
    await start_call(link, "C1", "1")
    await canary_call(canary, "K1")

    path.write_text("", encoding="utf-8")  # a mistaken truncation: a valid, empty configuration
    with caplog.at_level(logging.ERROR, logger="ivr_server.runtime"):
        outcome = server.request_reload()
    assert outcome.result == "refused" and outcome.report is None
    assert [(c.call_id, c.ivr, c.port, c.reason) for c in outcome.stranded] == [
        ("C1", "IVR_A", "1", "IVR IVR_A is removed")
    ]
    assert (
        "reload refused: it would strand 1 live call: IVR IVR_A is removed (calls C1 on port 1)"
        in (caplog.text)
    )
    # nothing changed: the IVRs are there, nobody was told anything, the call goes on
    assert [ivr.name for ivr in server.config.ivrs] == ["IVR_A", "IVR_B"]
    await link.expect_silence(0.3)
    await call_is_live(link, "C1")
    await canary_call(canary, "K2")

    url = server.api_addresses[0]
    base = f"http://{url[0]}:{url[1]}/api/v1/reload"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:

        async def post(body: Any, headers: dict[str, str]) -> tuple[int, Any]:
            async with http.post(base, json=body, headers=headers) as response:
                return response.status, await response.json()

        status, answer = await post({}, {})
        assert status == 401  # the token is needed
        status, answer = await post({}, auth)
        assert status == 409, answer
        assert answer["result"] == "refused" and answer["stranded_total"] == 1
        assert answer["stranded_calls"] == [
            {"call_id": "C1", "ivr": "IVR_A", "port": "1", "reason": "IVR IVR_A is removed"}
        ]
        assert "IVR IVR_A is removed" in answer["error"]
        await call_is_live(link, "C1")
        await canary_call(canary, "K3")

        status, answer = await post({"force": True}, auth)
    assert status == 200, answer
    assert answer["result"] == "applied" and answer["report"]["calls_ended"] == 1
    assert [c["call_id"] for c in answer["stranded_calls"]] == ["C1"]
    # the call was ended as its Call Timeout would have; the ports went away after
    assert (await link.recv_doc())[:2] == ("C1", m.EndCall(EndCause="Timeout"))
    seen = {(await link.recv_doc())[1] for _ in range(2)}
    assert seen == {
        m.MonitorInfo(Port=m.Port(PortNum=port, Status="Unavailable")) for port in ("1", "2")
    }
    assert server.config.ivrs == () and server.service.calls.calls == {}
    await link.close()
    await canary.close()


async def test_only_what_live_calls_run_on_is_guarded(start_server: StartServer) -> None:
    server = await start_server(parse_config(config_text()))
    link = await RawLink.open(server.port)
    await link.login("L", "IVR_A")
    canary = await RawLink.open(server.port)
    await canary.login("K", "IVR_B")
    await start_call(link, "C1", "1")
    refusals = {
        "port 1 of IVR IVR_A is removed": config_text(a_ports='{ number = "2", dn = "4002" }'),
        "port 1 of IVR IVR_A moves from DN 4001 to DN 4005 of switch SW": config_text(
            a_ports='{ number = "1", dn = "4005" }, { number = "2", dn = "4002" }'
        ),
        "DN 4001 is removed from switch SW": config_text(
            a_ports='{ number = "1", dn = "4005" }, { number = "2", dn = "4002" }',
            dns=("4002", "4003", "4004", "4005"),
        ),
    }
    for reason, text in refusals.items():
        outcome = server.request_reload(parse_config(text))
        assert outcome.result == "refused", (reason, outcome)
        assert [c.reason for c in outcome.stranded] == [reason]
    await link.expect_silence(0.2)
    await call_is_live(link, "C1")
    await canary_call(canary, "K1")
    # a port without a call may go; disabling the call's IVR strands nothing (it goes on)
    report = server.reload(parse_config(config_text(a_ports='{ number = "1", dn = "4001" }')))
    assert report is not None and report.calls_stranded == 0
    assert (await link.recv_doc())[1] == m.MonitorInfo(
        Port=m.Port(PortNum="2", Status="Unavailable")
    )
    report = server.reload(
        parse_config(config_text(a_ports='{ number = "1", dn = "4001" }', a_enabled="false"))
    )
    assert report is not None
    assert (await link.recv_doc())[1] == m.MonitorInfo(
        Port=m.Port(PortNum="1", Status="Unavailable")
    )
    await call_is_live(link, "C1")
    await link.send("C1", "<EndCall EndCause='Normal'/>")
    await canary_call(canary, "K2")
    assert server.service.calls.calls == {}
    await link.close()
    await canary.close()


async def test_reload_command_is_refused_and_reload_force_applies(tmp_path: Path) -> None:
    """``ivr-server reload`` (SIGHUP) and ``reload --force`` (SIGUSR2) against a real server."""
    path = tmp_path / "ivr.toml"
    path.write_text(config_text(), encoding="utf-8")
    pid_file = tmp_path / "ivr.pid"
    served = start("--config", str(path), "--pid-file", str(pid_file))
    loop = asyncio.get_running_loop()
    try:
        link = await RawLink.open(served.port)
        await link.login("L", "IVR_A")
        canary = await RawLink.open(served.port)
        await canary.login("K", "IVR_B")
        await start_call(link, "C1", "2")
        path.write_text("", encoding="utf-8")
        done = await loop.run_in_executor(None, ivr_server, "reload", "--pid-file", str(pid_file))
        assert done.returncode == 1 and "reload refused: it would strand" in done.stderr, done
        await link.expect_silence(1.0)
        await call_is_live(link, "C1")
        await canary_call(canary, "K1")
        done = await loop.run_in_executor(
            None, ivr_server, "reload", "--force", "--pid-file", str(pid_file)
        )
        assert done.returncode == 0 and "forced reload requested" in done.stdout, done
        assert "configuration reloaded: IVRs IVR_A, IVR_B removed" in done.stdout, done
        assert (await link.recv_doc(timeout=10))[:2] == ("C1", m.EndCall(EndCause="Timeout"))
        await link.close()
        await canary.close()
    finally:
        err = stop(served)
    assert (
        "reload refused: it would strand 1 live call: IVR IVR_A is removed (calls C1 on port 2)"
        in (err)
    ), err
    assert "configuration reloaded by force, after ending 1 live call" in err, err
    assert "Traceback" not in err
