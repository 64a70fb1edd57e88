"""Logs can neither stop the server nor fill a disk (issue 19 item 4), in real subprocesses.

A log output that nobody reads (standard error a pipe whose reader stopped) must not hold up the
event loop: records go through a bounded queue to a writer thread and are dropped and counted when
it is full. An IVR's ``LogMsg`` texts are cut to ``logmsg-max-length`` and rate-limited per
session. Throughout, a well-behaved canary session makes calls and must be served on time.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from ivr_server.wire import messages as m
from tests.integration.conftest import ROOT, Served, start
from tests.integration.rawlink import RawLink, doc, frame, new_call_body, server_doc

DEFAULT_TOML = ROOT / "src/ivr_server/config/default.toml"
REPLY_S = 10.0
"""Longest wait for any one reply of the canary: generous on a loaded 2-core machine; a server
blocked on its log output never answers at all."""


def config_with(tmp_path: Path, **server_options: str) -> Path:
    """The built-in default configuration with these ``[server]`` keys (snake_case) changed."""
    text = DEFAULT_TOML.read_text(encoding="utf-8")
    for name, value in server_options.items():
        key = name.replace("_", "-")
        text, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
        assert count == 1, key
    path = tmp_path / "ivr.toml"
    path.write_text(text, encoding="utf-8")
    return path


def api_url(served: Served) -> str:
    found = re.search(r"HTTP API, metrics and web view on (http://\S+/)", served.banner)
    assert found, served.banner
    return found.group(1)


async def scrape(served: Served) -> str:
    def get() -> str:
        with urllib.request.urlopen(api_url(served) + "metrics", timeout=REPLY_S) as response:
            return str(response.read().decode("utf-8"))

    return await asyncio.to_thread(get)


def sample(metrics: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


async def reply(link: RawLink) -> tuple[str | None, m.Message, bytes]:
    return await link.recv_doc(timeout=REPLY_S)


async def answered_query(link: RawLink, call_id: str, req_id: str) -> None:
    """AgentQuery: its MonitorInfo comes after everything sent before it was handled."""
    await link.send(call_id, f"<AgentQuery ReqId='{req_id}' PortNum='3'/>")
    while True:
        _, answer, _ = await reply(link)
        if isinstance(answer, m.MonitorInfo) and answer.ReqId == req_id:
            return


async def canary_round(port: int, n: int) -> float:
    """Connect, log in, make a call on port ``n`` and end it, ask something: each reply on
    time. Returns the seconds the round took."""
    started = time.monotonic()
    link = await RawLink.open(port)
    try:
        session = f"canary-{n}"
        await link.send(session, '<LoginReq Version="4.0" ClientName="IVR_1" ReportStatus="true"/>')
        assert isinstance((await reply(link))[1], m.LoginResp)
        assert isinstance((await reply(link))[1], m.FlowControl)
        call_id = f"canary-call-{n}"
        await link.send(call_id, new_call_body(str(n)))
        for event in ("Ringing", "Established"):
            got_id, _, raw = await reply(link)
            assert (got_id, raw) == (call_id, server_doc(call_id, f"<CallStatus Event='{event}'/>"))
        await link.send(call_id, "<EndCall EndCause='Normal'/>")
        await answered_query(link, session, f"q{n}")
    finally:
        await link.close()
    return time.monotonic() - started


async def canary(port: int, rounds: range, stop: asyncio.Event | None = None) -> list[float]:
    """Canary rounds one after the other (until ``stop`` is set, if given)."""
    took = []
    for n in rounds:
        took.append(await asyncio.wait_for(canary_round(port, n), 4 * REPLY_S))
        if stop is not None and stop.is_set():
            break
    return took


async def flood(port: int, count: int, text_chars: int) -> tuple[RawLink, float]:
    """A session sending ``count`` LogMsgs of ``text_chars`` characters as fast as it can, then
    an AgentQuery answered once the server has handled them all; returns the link (still open)
    and the seconds from the first LogMsg to that answer."""
    link = await RawLink.open(port)
    await link.send("F", '<LoginReq Version="4.0" ClientName="IVR_1" ReportStatus="true"/>')
    await reply(link)
    await reply(link)
    one = frame(doc("F", f"<LogMsg MsgType='Standard' Msg='{'x' * text_chars}'/>"))
    started = time.monotonic()
    for _ in range(count // 50):
        await link.send_bytes(one * 50)
    await answered_query(link, "F", "flood-done")
    return link, time.monotonic() - started


async def flood_beside_canary(
    port: int, rounds: range, count: int, text_chars: int
) -> tuple[list[float], RawLink, float]:
    """:func:`flood` while the canary makes rounds (until the flood is over); the first failure
    of either ends both."""
    stop = asyncio.Event()

    async def flooding() -> tuple[RawLink, float]:
        try:
            return await flood(port, count, text_chars)
        finally:
            stop.set()

    async with asyncio.TaskGroup() as group:
        during = group.create_task(canary(port, rounds, stop))
        flooded = group.create_task(flooding())
    return (during.result(), *flooded.result())


def stop_stuck(served: Served) -> str:
    """SIGTERM while standard error is still not read: the server must end anyway (on time, with
    status 0, no fatal error from a writer thread stuck in a write); then what it wrote."""
    served.proc.send_signal(signal.SIGTERM)
    try:
        served.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        raise AssertionError("the server did not end with its log output stuck") from None
    _, err = served.proc.communicate(timeout=10)
    assert served.proc.returncode == 0, err[-2000:]
    return err


async def test_a_log_pipe_nobody_reads_never_stops_the_server(tmp_path: Path) -> None:
    # No LogMsg limits here, and DEBUG: the log output falls behind at once and stays behind.
    config = config_with(tmp_path, logmsg_rate="0", logmsg_max_length="0", log_queue_size="2000")
    served = start("--config", str(config), "--log-level", "DEBUG")
    try:
        before = await canary(served.port, range(1, 3))
        took, flooder, _ = await flood_beside_canary(served.port, range(3, 30), 3000, 8000)
        # the output was really stuck: records were dropped, not written
        metrics = await scrape(served)
        assert sample(metrics, "ivr_server_log_records_dropped_total") > 0
        took += await canary(served.port, range(30, 32))  # still stuck, still served
        await flooder.close()
        assert len(took) >= 3 and max(before + took) < 4 * REPLY_S
    except BaseException:
        served.proc.kill()
        raise
    err = stop_stuck(served)
    assert "Fatal Python error" not in err and "Traceback" not in err


async def test_log_msg_flood_is_cut_rate_limited_summed_up_and_counted() -> None:
    served = start()  # the default configuration: logmsg-max-length 4096, rate 100/s, burst 500
    output = served.proc.stderr
    assert output is not None
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(output), daemon=True)
    reader.start()
    try:
        sent = 2000  # of 10,000 characters: 20 MB of LogMsg text
        _, flooder, seconds = await flood_beside_canary(served.port, range(1, 30), sent, 10_000)
        await flooder.close()
        await canary(served.port, range(30, 31))  # its close is handled before this login
        metrics = await scrape(served)
    finally:
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(timeout=30)
        reader.join(10)
        served.proc.communicate(timeout=10)  # closes the pipes
    assert served.proc.returncode == 0
    text = "".join(chunks)
    lines = [json.loads(line) for line in text.splitlines()]

    logged = [line for line in lines if line["logger"] == "ivr_server.service.ivr"]
    cut = "x" * 4096 + "... [LogMsg cut: 10000 characters in all]"
    assert logged and all(line["message"] == cut for line in logged)
    # the burst, plus what the rate refilled while the flood lasted; far from all
    assert 500 <= len(logged) <= 500 + 100 * (seconds + 1) and len(logged) < sent
    dropped = sent - len(logged)
    assert len(text) < len(logged) * 4400 + 256 * 1024  # bounded: not the 20 MB sent

    flood_session = logged[0]["session"]
    about = [line["message"] for line in lines if line.get("session") == flood_session]
    assert sum("LogMsg over the rate limit (100/s, burst 500)" in s for s in about) == 1
    summed = [
        int(found.group(1))
        for s in about
        if (
            found := re.fullmatch(
                rf"session {flood_session}: (\d+) LogMsg dropped \(rate limit\)", s
            )
        )
    ]
    assert summed and sum(summed) == dropped

    assert sample(metrics, 'ivr_server_logmsg_dropped_total{reason="rate_limit"}') == dropped
    assert sample(metrics, "ivr_server_logmsg_truncated_total") == len(logged)
    assert sample(metrics, "ivr_server_log_records_dropped_total") == 0
    assert any(line["message"].startswith("stopping") for line in lines)  # last lines written
