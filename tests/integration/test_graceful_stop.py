"""Graceful stop (issue 20 item 11), with the real command in a subprocess.

On SIGTERM the server stops accepting IVR connections, tells 4.0 sessions ``FlowControl On`` and
monitoring ones ``MonitorInfo/Server Unavailable``, refuses new calls (``EndCall ServerPaused``)
and serves the calls in progress until they end or ``server.drain-time`` is over; then the rest
get ``EndCall EndCause='Timeout'``, and the last log line counts the calls and sessions that were
open. A second SIGTERM or SIGINT stops at once. docs/operations.md, "Stopping".
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ivr_server.wire import messages as m
from tests.integration.conftest import Served, start
from tests.integration.rawlink import RawLink, new_call_body, start_call

REPLY_S = 10.0
"""Longest wait for a reply (generous: a loaded 2-core machine)."""
LONG_DRAIN = "120s"
"""A drain time no test waits for: a server that ends before it ended early."""


def config_file(tmp_path: Path, drain_time: str) -> Path:
    path = tmp_path / "ivr.toml"
    path.write_text(
        f"""
[server]
listen = ["127.0.0.1:0"]
drain-time = "{drain_time}"

[[switches]]
name = "SW"
dns = [
  {{ number = "4001", type = "voice-treatment-port" }},
  {{ number = "4002", type = "voice-treatment-port" }},
  {{ number = "4003", type = "voice-treatment-port" }},
]

[[tservers]]
name = "TS"
switch = "SW"

[[ivrs]]
name = "IVR_A"
tservers = ["TS"]
legacy-mode = false
ports = [{{ number = "1", dn = "4001" }}, {{ number = "2", dn = "4002" }}]

[[ivrs]]
name = "IVR_B"
tservers = ["TS"]
legacy-mode = false
ports = [{{ number = "1", dn = "4003" }}]
""",
        encoding="utf-8",
    )
    return path


def wait_exit(served: Served, timeout: float) -> tuple[float, list[dict[str, Any]]]:
    """Seconds until the server process ended (at most ``timeout``), and its log lines."""
    began = time.monotonic()
    try:
        served.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        raise AssertionError(f"the server did not end within {timeout} s") from None
    took = time.monotonic() - began
    _, err = served.proc.communicate(timeout=10)
    assert served.proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    return took, [json.loads(line) for line in err.splitlines() if line.strip()]


def messages(lines: list[dict[str, Any]]) -> list[str]:
    return [str(line["message"]) for line in lines]


async def call_is_served(link: RawLink, call_id: str) -> None:
    await link.send(call_id, "<CallInfoReq/>")
    got_id, answer, _ = await link.recv_doc(timeout=REPLY_S)
    assert got_id == call_id and isinstance(answer, m.CallInfoResp), answer


async def refused_connection(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def test_sigterm_tells_sessions_refuses_new_calls_and_ends_early_when_calls_end(
    tmp_path: Path,
) -> None:
    served = start("--config", str(config_file(tmp_path, LONG_DRAIN)))
    try:
        monitor = await RawLink.open(served.port)
        await monitor.login("M", "IVR_A", monitor="set")
        assert (await monitor.recv_doc(timeout=REPLY_S))[:2] == (
            "M",
            m.MonitorInfo(Server=m.Server(Name="TS", Status="OK", Switch="SW")),
        )
        calls = await RawLink.open(served.port)
        await calls.login("L", "IVR_A")  # 4.0, not monitoring
        other = await RawLink.open(served.port)
        await other.login("K", "IVR_B")
        await start_call(calls, "C1", "1")
        await start_call(other, "K1", "1")

        served.proc.send_signal(signal.SIGTERM)
        # the monitoring session: the server is draining and its T-Server going away
        assert (await monitor.recv_doc(timeout=REPLY_S))[:2] == (
            "M",
            m.FlowControl(Status="On"),
        )
        assert (await monitor.recv_doc(timeout=REPLY_S))[:2] == (
            "M",
            m.MonitorInfo(Server=m.Server(Name="TS", Status="Unavailable", Switch="SW")),
        )
        # a 4.0 session that does not monitor is told FlowControl only
        assert (await calls.recv_doc(timeout=REPLY_S))[:2] == ("L", m.FlowControl(Status="On"))
        assert (await other.recv_doc(timeout=REPLY_S))[:2] == ("K", m.FlowControl(Status="On"))
        await calls.expect_silence(0.3)
        # no new connection, no new call; the calls in progress are served
        assert await refused_connection(served.port)
        await calls.send("C2", new_call_body("2"))
        assert (await calls.recv_doc(timeout=REPLY_S))[:2] == (
            "C2",
            m.EndCall(EndCause="ServerPaused"),
        )
        await call_is_served(calls, "C1")
        await call_is_served(other, "K1")
        await calls.send("C1", "<EndCall EndCause='Normal'/>")
        await call_is_served(other, "K1")
        assert served.proc.poll() is None  # K1 is still in progress
        await other.send("K1", "<EndCall EndCause='Normal'/>")
        took, lines = await asyncio.to_thread(wait_exit, served, 60)
    except BaseException:
        served.proc.kill()
        raise
    assert took < 60  # the drain time is 120 s: it ended when the last call did
    text = messages(lines)
    first = (
        "stopping (SIGTERM): 2 calls and 3 sessions open; new IVR connections and calls are "
        "refused; the calls get up to 120 s to end"
    )
    assert any(t.startswith(first) for t in text), text
    assert any("the server is stopping" in t for t in text), text  # why C2 was refused
    assert text[-1].startswith("stopped after "), text[-5:]
    assert text[-1].endswith("(every call ended): 0 calls and 3 sessions were open"), text[-1]
    await monitor.close()
    await calls.close()
    await other.close()


async def test_calls_still_up_at_the_end_of_the_drain_time_get_endcall_timeout(
    tmp_path: Path,
) -> None:
    served = start("--config", str(config_file(tmp_path, "1500ms")))
    try:
        link = await RawLink.open(served.port)
        await link.login("L", "IVR_A", version="3.0")  # no FlowControl for 3.0
        await start_call(link, "C1", "1", version="3.0")
        await start_call(link, "C2", "2", version="3.0")
        gone = await RawLink.open(served.port)
        await gone.login("G", "IVR_B")
        await start_call(gone, "G1", "1")
        await gone.close()  # an orphan: its IVR cannot come back, nobody waits for it
        await asyncio.sleep(0.3)

        began = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        await call_is_served(link, "C1")  # served during the drain
        ended = {(await link.recv_doc(timeout=REPLY_S))[:2] for _ in range(2)}
        waited = time.monotonic() - began
        assert ended == {
            ("C1", m.EndCall(EndCause="Timeout")),
            ("C2", m.EndCall(EndCause="Timeout")),
        }
        assert waited >= 1.4  # not before the drain time
        assert (await link.expect_closed(timeout=REPLY_S)) == b""
        _, lines = await asyncio.to_thread(wait_exit, served, 30)
    except BaseException:
        served.proc.kill()
        raise
    text = messages(lines)
    assert text[-1].startswith("stopped after "), text[-5:]
    assert text[-1].endswith(
        "(the drain time of 1.5 s is over): 3 calls and 1 session were open (the calls ended "
        "with EndCall EndCause='Timeout' to their IVR)"
    ), text[-1]
    await link.close()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
async def test_a_second_signal_stops_at_once(tmp_path: Path, second: signal.Signals) -> None:
    served = start("--config", str(config_file(tmp_path, LONG_DRAIN)))
    try:
        link = await RawLink.open(served.port)
        await link.login("L", "IVR_A")
        await start_call(link, "C1", "1")
        served.proc.send_signal(signal.SIGTERM)
        assert (await link.recv_doc(timeout=REPLY_S))[:2] == ("L", m.FlowControl(Status="On"))
        await call_is_served(link, "C1")
        served.proc.send_signal(second)
        assert (await link.recv_doc(timeout=REPLY_S))[:2] == (
            "C1",
            m.EndCall(EndCause="Timeout"),
        )
        took, lines = await asyncio.to_thread(wait_exit, served, 60)
    except BaseException:
        served.proc.kill()
        raise
    assert took < 60
    text = messages(lines)
    assert f"{second.name} again: stopping at once" in text, text
    assert text[-1].endswith(
        "(stopped at once on a second signal): 1 call and 1 session were open (the calls "
        "ended with EndCall EndCause='Timeout' to their IVR)"
    ), text[-1]
    await link.close()
