#!/usr/bin/env python3
"""Round trips per second against a real server on loopback: LoginReq and AgentQuery.

The server runs in its own process (pinned to CPU 0 when the machine has more than one); the load
comes from this process (pinned to CPU 1) over C connections, each sending one request and waiting
for its answer before the next (closed loop). Requests are pre-encoded and answers are cut by the
GLI header only, so the load generator stays cheap.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any

from common import add_common_args, free_port, record, start_server

HEADER = struct.Struct(">HHBB")
PROLOG = '<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE GctiMsg SYSTEM "IServer.dtd">\n'


def frame(call_id: str, body: str) -> bytes:
    payload = f"{PROLOG}<GctiMsg><CallId>{call_id}</CallId>{body}</GctiMsg>\n".encode()
    return HEADER.pack(3, len(payload) + 2, 2, 0) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(6)
    _, length, _, _ = HEADER.unpack(header)
    return await reader.readexactly(length - 2)


async def worker(port: int, n: int, kind: str, seconds: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    login = frame(f"L{n}", '<LoginReq Version="4.0" ClientName="IVR_1"></LoginReq>')
    writer.write(login)
    await read_frame(reader)
    await read_frame(reader)
    if kind == "login":
        request, replies = login, 2
    else:
        request, replies = frame(f"L{n}", f"<AgentQuery ReqId='{n}' PortNum='1'/>"), 1
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        writer.write(request)
        for _ in range(replies):
            await read_frame(reader)
        done += 1
    counts[n] = done
    writer.close()


async def measure(port: int, kind: str, connections: int, seconds: float) -> float:
    counts = [0] * connections
    start = time.perf_counter()
    await asyncio.gather(*(worker(port, i, kind, seconds, counts) for i in range(connections)))
    return sum(counts) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_common_args(ap)
    args, _ = ap.parse_known_args()  # bench/run.py passes every benchmark's options
    seconds = args.seconds or (0.5 if args.quick else 3.0)
    port = free_port()
    server = start_server(port)
    try:
        runner: Callable[[Coroutine[Any, Any, float]], float] = asyncio.run
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
        print(f"{'round trips (closed loop)':<36}{'per second':>12}")
        for kind in ("login", "agentquery"):
            for connections in (1, 10):
                rate = runner(measure(port, kind, connections, seconds))
                label = f"{'LoginReq' if kind == 'login' else 'AgentQuery'}, {connections} conn"
                print(f"  {label:<34}{rate:>12,.0f}")
                record("roundtrip", f"{label}, not pipelined", rate, "/s")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
