"""Limits an operator expects: the descriptor limit, the cap on IVR connections, TCP keep-alive.

Connections over the cap are refused cleanly (a GLI Error frame, code 7, then a close) and
logged at a bounded rate, while a session already logged in keeps making calls and the HTTP API
keeps answering. In-process with the default event loop, and in a real ``ivr-server serve``
(uvloop) started with a low file-descriptor limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import resource
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr_server.config import ServerConfig, default_config
from ivr_server.runtime import IvrServer
from ivr_server.wire import messages as m
from tests.integration.conftest import free_port, launch
from tests.integration.rawlink import RawLink, start_call

StartServer = Callable[..., Awaitable[IvrServer]]

SERVER_FULL = bytes.fromhex("0002000402000007")
"""GLI Error frame, code 7: too many connections."""


def config_with(**server: Any) -> ServerConfig:
    base = default_config()
    return base.model_copy(update={"server": base.server.model_copy(update=server)})


async def call_completes(link: RawLink, call_id: str, port: str = "1") -> None:
    """A complete call on ``link``'s IVR: NewCall, Ringing, Established, EndCall (port freed)."""
    await start_call(link, call_id, port)
    await link.send(call_id, "<EndCall EndCause='Normal'/>")
    await link.send(call_id, "<CallInfoReq/>")
    assert (await link.recv_doc(timeout=10))[:2] == (call_id, m.CallError(FailedReq="NoSuchCall"))


async def refused(link: RawLink, timeout: float = 10.0) -> bool:
    """Was ``link`` refused at the cap (Error frame code 7 then closed)? ``False``: it stays
    open and silent (admitted) for 2 s (callers wait for many links at once)."""
    try:
        data = await asyncio.wait_for(link.reader.read(64), 2.0)
    except TimeoutError:
        return False
    assert data == SERVER_FULL, data
    assert await asyncio.wait_for(link.reader.read(), timeout) == b""  # then closed
    return True


async def test_connections_over_max_connections_are_refused_cleanly(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(config_with(max_connections=3))
    canary = await RawLink.open(server.port)
    await canary.login("K", "IVR_2")
    held = [await RawLink.open(server.port) for _ in range(2)]
    with caplog.at_level(logging.WARNING, logger="ivr_server.runtime"):
        extra = [await RawLink.open(server.port) for _ in range(5)]
        assert all(await asyncio.gather(*(refused(link) for link in extra)))
    assert not any(await asyncio.gather(*(refused(link) for link in held)))
    await call_completes(canary, "K1")
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert lines and len(lines) <= 2, lines  # the first at once, the rest counted later
    assert "connection from 127.0.0.1 refused: 3 IVR connections are open" in lines[0]
    assert server.gate.refused == 5
    # a place freed is taken again
    await held[0].close()
    for _ in range(100):
        if server.gate.open == 2:
            break
        await asyncio.sleep(0.02)
    again = await RawLink.open(server.port)
    await again.login("A", "IVR_1")
    await call_completes(again, "A1")
    await call_completes(canary, "K2")
    for link in [canary, *held, *extra, again]:
        await link.close()


async def test_refusals_in_a_burst_are_summed_up_in_one_later_line(
    start_server: StartServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await start_server(config_with(max_connections=1))
    server.gate.log_interval = 1.0
    canary = await RawLink.open(server.port)
    await canary.login("K", "IVR_2")
    with caplog.at_level(logging.WARNING, logger="ivr_server.runtime"):
        links = [await RawLink.open(server.port) for _ in range(20)]
        assert all(await asyncio.gather(*(refused(link) for link in links)))
        for _ in range(100):  # the last refusals are summed up once the interval is over
            if "20 refused since start" in caplog.text:
                break
            await asyncio.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert lines[0].startswith("connection from 127.0.0.1 refused: 1 IVR connections are open")
    counts = [1] + [int(line.split()[0]) for line in lines[1:]]
    assert all(line.split()[1:4] == ["IVR", "connections", "refused"] for line in lines[1:])
    assert sum(counts) == 20 and 2 <= len(lines) <= 4, lines
    assert "20 refused since start" in lines[-1]
    await call_completes(canary, "K1")
    for link in [canary, *links]:
        await link.close()


async def test_accepted_connections_have_tcp_keep_alive(start_server: StartServer) -> None:
    keep_alive = default_config().server.tcp_keep_alive.model_copy(
        update={"idle": 30.0, "interval": 7.0, "count": 4}
    )
    server = await start_server(config_with(tcp_keep_alive=keep_alive))
    link = await RawLink.open(server.port)
    await link.login("L")
    (protocol,) = server.protocols.values()
    assert protocol.transport is not None
    sock = protocol.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 7
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
    await link.close()


# -- a real server with a low descriptor limit -------------------------------------------------

FD_SOFT, FD_HARD = 200, 256
TOKEN = "limits-token"


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_SOFT, FD_HARD))


@pytest.fixture
def low_limit_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, int, Path]]:
    """``ivr-server serve`` (built-in configuration, uvloop) under a limit of 200 (soft) / 256
    (hard) descriptors: ``(process, IVR port, API port, log file)``."""
    api_port = free_port()
    log_file = tmp_path / "server.log"
    with log_file.open("w") as err:
        served = launch(
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--api-listen",
            f"127.0.0.1:{api_port}",
            "--log-level",
            "INFO",
            wait_for=api_port,
            stderr=err,
            preexec_fn=_low_fd_limit,
            env={**os.environ, "IVR_SERVER_API_TOKEN": TOKEN},
        )
    proc, port = served.proc, served.port
    try:
        yield proc, port, api_port, log_file
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _api_get(api_port: int, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def _keep_alive_timers(port: int) -> list[float]:
    """Seconds left on the keep-alive timer of each established socket on local ``port``
    (``ss`` writes them ``timer:(keepalive,1min,0)``, ``59sec``, ``1min2sec``, ``900ms``)."""
    out = subprocess.run(
        ["ss", "-tnoH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    units = {"min": 60.0, "sec": 1.0, "ms": 0.001}
    return [
        sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(min|sec|ms)", text))
        for text in re.findall(r"timer:\(keepalive,([^,]+),", out)
    ]


async def test_at_the_descriptor_limit_ivr_connections_are_refused_and_the_api_answers(
    low_limit_server: tuple[subprocess.Popen[str], int, int, Path],
) -> None:
    proc, port, api_port, log_file = low_limit_server
    canary = await RawLink.open(port)
    await canary.login("K", "IVR_2")
    await call_completes(canary, "K0")
    # the soft limit was raised to the hard one: 256 - 160 reserved = 96 IVR connections
    links = [await RawLink.open(port) for _ in range(132)]
    outcomes = list(await asyncio.gather(*(refused(link) for link in links)))
    assert outcomes.count(False) == 95 and outcomes.count(True) == 37, outcomes
    for i in range(3):
        await call_completes(canary, f"K{i + 1}")
    loop = asyncio.get_running_loop()
    sessions = await loop.run_in_executor(None, _api_get, api_port, "/api/v1/sessions")
    assert len(sessions) == 96
    for _ in range(5):  # several API connections, one after the other
        await loop.run_in_executor(None, _api_get, api_port, "/api/v1/ivrs")
    # TCP keep-alive on accepted IVR and API connections (60 s idle by default, not the
    # system's 2 h)
    if shutil.which("ss"):
        timers = _keep_alive_timers(port)
        assert len(timers) >= 95 and max(timers) <= 60, timers  # (the canary's may be busy)
        with socket.create_connection(("127.0.0.1", api_port), timeout=5):
            await asyncio.sleep(0.3)
            timers = _keep_alive_timers(api_port)
        assert timers and max(timers) <= 60, timers
    # places freed are taken again
    admitted = [link for link, was_refused in zip(links, outcomes, strict=True) if not was_refused]
    for link in admitted[:5]:
        await link.close()
    await asyncio.sleep(0.5)
    again = await RawLink.open(port)
    await again.login("A", "IVR_1")
    await call_completes(again, "A1")
    await call_completes(canary, "K9")
    for link in [canary, *links, again]:
        await link.close()
    assert proc.poll() is None
    proc.terminate()
    proc.wait(10)
    log = log_file.read_text()
    assert "file-descriptor limit raised from 200 to 256" in log, log
    assert "up to 96 IVR connections at once of 256 file descriptors" in log, log
    refusals = [line for line in log.splitlines() if "refused: 96 IVR connections are open" in line]
    assert 1 <= len(refusals) <= 3, refusals
    assert "Traceback" not in log and "EMFILE" not in log and "Too many open files" not in log
