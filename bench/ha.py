#!/usr/bin/env python3
"""High availability's cost and its fail-over (issue 25, MODES-AND-HA §3.7 H7-H8), in one run.

1. **Full calls** (bench/bench_fullcall.py's call flow: NewCall, CallInfoReq, UDataSet, UDataGet,
   RouteRequest, EndCall; every reply checked) against

   * one server with ``[ha] mode = "off"`` (the baseline);
   * a hot pair (``mode = "hot"``, a real ``redis-server`` without persistence) at
     ``durability = async``, ``primary`` and ``replica`` (with a real replica, ``--replicaof``).

   The driver of a pair sends every document to both nodes (the standby keeps them and trims
   them at the leader's marks, as it would in production): each load connection logs in to the
   leader and to the standby with the same session CallId, and every byte written to the leader
   is written to the standby too. For each: the most complete calls per second (closed loop,
   50 connections × 4 calls), per-request p50/p99 at 1,000 calls/s (open loop, 50 connections),
   and CPU per call of the leader, the standby and Redis.

2. **Takeover with 50,000 held calls**: a hot pair (``durability = primary``) of an IVR with
   50,000 ports; 200 mirrored sessions hold one call per port; the standby's RSS is read; the
   leader is killed (``kill -9``); the time until the standby leads (``/api/v1/ha``) and until it
   answers a CallInfoReq on a held call is measured; then its RSS, and a sample of 1,000 calls
   must all be answered. The calls are set up at 5,000/s; with ``--burst`` every session writes
   all its ``NewCall`` at once (50,000 unpaced), and the leader must keep its lease through it
   (same epoch, never fenced, the standby still standby: docs/performance.md §13).

Targets (issue 25): ``primary`` ≥ 60% of ``off``'s calls/s; p99 < 2 ms at 1,000 calls/s; takeover
< 3 s with 50,000 held calls; standby < 500 MB with 50,000 calls.

The leader (and the ``off`` server) run on CPU 0; the generator, the standby and Redis on CPU 1
(a machine with 2 cores: the standby and Redis compete with the generator, not with the
leader). Results: docs/performance.md §13.

    python3 bench/ha.py                 # everything (~3 minutes)
    python3 bench/ha.py --quick         # a smoke test (short runs, 5,000 held calls)
    python3 bench/ha.py --skip-full --burst   # the held calls set up in one unpaced burst
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, cast

from bench_fullcall import (
    CALL_INFO_REQ,
    CONFIG,
    LABELS,
    PORTS,
    REQUESTS,
    Generator,
    Result,
    Stats,
    connect,
    drain,
    login_frame,
    percentile,
    print_errors,
    process_cpu,
    request,
    watchdog,
)
from bench_fullcall import open_loop as fullcall_open_loop
from bench_held import Holder
from bench_held import config_text as held_config_text
from common import add_common_args, free_port, record, rss_bytes
from ivr_server.wire import FrameDecoder, GliType

HERE: Final = Path(__file__).resolve().parent
TARGET_SHARE: Final = 0.60
TARGET_P99: Final = 0.002
TARGET_TAKEOVER: Final = 3.0
TARGET_STANDBY_MB: Final = 500
OPEN_RATE: Final = 1000
SETUP_RATE: Final = 5000
"""Held calls started per second before the takeover."""
SETUP_STEP: Final = 0.5
MB: Final = 1024 * 1024
_REPLY: Final = re.compile(rb"<CallId>([^<]*)</CallId><([A-Za-z]+)")


# --------------------------------------------------------------------------- processes


def redis_binary() -> str:
    path = "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    path = path or shutil.which("redis-server")
    if path is None:
        sys.exit("bench/ha.py needs redis-server (apt-get install redis-server)")
    return path


def start_redis(
    tmp: Path, name: str, replica_of: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """A redis-server without persistence on a free port (on this process's CPU)."""
    port = free_port()
    argv = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp),
        "--logfile",
        "",
        "--repl-diskless-sync-delay",
        "0",
    ]
    if replica_of is not None:
        argv += ["--replicaof", "127.0.0.1", str(replica_of)]
    with (tmp / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    wait_port(proc, port, 10)
    return proc, port


def redis_cmd(port: int, *args: str) -> str:
    """One command through redis-cli-free RESP (the bench needs no client library)."""
    import socket

    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"".join(parts))
        return s.recv(65536).decode(errors="replace")


def wait_replica(primary: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "state=online" in redis_cmd(primary, "INFO", "replication"):
            return
        time.sleep(0.05)
    raise RuntimeError("the replica never came online")


def wait_port(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited ({proc.returncode})")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout:g} s")


@dataclass
class Server:
    """One ``ivr-server serve`` process of the benchmark."""

    proc: subprocess.Popen[bytes]
    port: int
    api: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def role(self) -> str | None:
        view = self.ha()
        return cast(str | None, view.get("role")) if view is not None else None

    def ha(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """``GET /api/v1/ha`` (``None`` when the API does not answer in ``timeout``)."""
        url = f"http://127.0.0.1:{self.api}/api/v1/ha"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return cast(dict[str, Any], json.loads(r.read()))
        except (OSError, ValueError):
            return None

    def wait_role(self, role: str, timeout: float) -> float:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.role() == role:
                return time.perf_counter() - t0
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"node on {self.port} not {role} within {timeout:g} s:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_node(config: Path, log: Path, *, cpu0: bool, wait_ivr: bool = True) -> Server:
    """``ivr-server serve`` with its API on a free port; ``cpu0``: pinned to CPU 0 (the
    others inherit this process's CPU 1)."""
    port, api = free_port(), free_port()
    cmd = [
        sys.executable,
        "-m",
        "ivr_server",
        "serve",
        "--config",
        str(config),
        "--listen",
        f"127.0.0.1:{port}",
        "--api-listen",
        f"127.0.0.1:{api}",
        "--log-level",
        "WARNING",
    ]
    if cpu0 and (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    env = {**os.environ, "IVR_SERVER_API_TOKEN": "bench"}
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    wait_port(proc, api, 120)
    if wait_ivr:
        wait_port(proc, port, 120)
    return Server(proc, port, api, log)


def ha_table(node: str, redis_port: int, durability: str, *, lease: float = 2.0) -> str:
    return f"""
[ha]
mode = "hot"
node-id = "{node}"
store = "redis://127.0.0.1:{redis_port}/0"
site = "bench"
lease = {lease}
poll = 0.2
durability = "{durability}"
replicas = 1
wait-timeout = 0.05
"""


@dataclass
class Pair:
    """A leader (CPU 0), a standby and Redis (CPU 1)."""

    leader: Server
    standby: Server
    redis: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        for server in (self.standby, self.leader):
            server.stop()
        for proc in self.redis:
            proc.kill()
            proc.wait(10)


def start_pair(tmp: Path, body: str, durability: str, *, lease: float = 2.0) -> Pair:
    redis, redis_port = start_redis(tmp, f"redis-{durability}")
    procs = [redis]
    if durability == "replica":
        replica, _ = start_redis(tmp, f"replica-{durability}", replica_of=redis_port)
        procs.append(replica)
        wait_replica(redis_port)
    configs = {}
    for node in ("a", "b"):
        configs[node] = tmp / f"{durability}-{node}.toml"
        configs[node].write_text(body + ha_table(node, redis_port, durability, lease=lease))
    leader = start_node(configs["a"], tmp / f"{durability}-a.log", cpu0=True)
    leader.wait_role("leader", 60)
    standby = start_node(configs["b"], tmp / f"{durability}-b.log", cpu0=False)
    standby.wait_role("standby", 60)
    return Pair(leader, standby, procs)


# --------------------------------------------------------------------------- mirrored sessions


class Sink(asyncio.Protocol):
    """The standby's side of a mirrored session: logged in with the leader's session CallId; it
    keeps what the standby sends, by CallId (the standby answers only the login until it
    leads)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder()
        self.replies: dict[bytes, list[bytes]] = {}
        self.arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        for gli_type, payload in self.decoder.feed(data):
            if gli_type != GliType.DATA:
                continue
            match = _REPLY.search(payload)
            if match is not None:
                self.replies.setdefault(match.group(1), []).append(match.group(2))
                self.arrived.set()


class Tee:
    """A transport that writes to the leader's connection and to the standby's, in order."""

    def __init__(self, first: asyncio.Transport, second: asyncio.Transport) -> None:
        self.first, self.second = first, second

    def write(self, data: bytes) -> None:
        self.first.write(data)
        self.second.write(data)

    def close(self) -> None:
        self.first.close()
        self.second.close()

    def is_closing(self) -> bool:
        return self.first.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.first.get_extra_info(name, default)


async def open_sinks(port: int, session_ids: list[bytes]) -> list[Sink]:
    """One logged-in standby connection per session CallId (LoginReq written, the replies
    kept)."""
    loop = asyncio.get_running_loop()
    sinks = []
    for session_id in session_ids:
        _, sink = await loop.create_connection(Sink, "127.0.0.1", port)
        assert sink.transport is not None
        sink.transport.write(login_frame(session_id))
        sinks.append(sink)
    return sinks


def mirrored_connector(standby_port: int) -> Callable[..., Coroutine[Any, Any, list[Generator]]]:
    """bench_fullcall's ``connect``, each session also logged in to the standby and every
    later byte written to both."""

    async def connector(
        port: int, count: int, per_conn: int, closed: bool, stats: Stats, exact: bool
    ) -> list[Generator]:
        sinks = await open_sinks(standby_port, [f"S{i}".encode() for i in range(count)])
        gens = await connect(port, count, per_conn, closed, stats, exact)
        for gen, sink in zip(gens, sinks, strict=True):
            assert gen.transport is not None and sink.transport is not None
            gen.transport = cast(asyncio.Transport, Tee(gen.transport, sink.transport))
        return gens

    return connector


async def closed_loop(
    port: int, connections: int, calls_per_conn: int, seconds: float, connector: Any
) -> Result:
    """bench_fullcall's closed loop with a connector of one's own (mirrored sessions)."""
    from bench_fullcall import CpuMeter

    stats = Stats()
    gens = await connector(port, connections, PORTS // connections, True, stats, True)
    dog = asyncio.create_task(watchdog(gens))
    now = time.perf_counter()
    for gen in gens:
        for _ in range(calls_per_conn):
            gen.start_call(now)
        gen.flush()
    await asyncio.sleep(min(1.0, seconds / 5))
    stats.completed = 0
    stats.latencies = {r: [] for r in REQUESTS}
    meter, t0 = CpuMeter(os.getpid()), time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - t0
    cpu = meter.stop()
    done, latencies = stats.completed, stats.latencies
    stats.latencies = {r: [] for r in REQUESTS}
    left = await drain(gens)
    dog.cancel()
    stats.completed, stats.latencies = done, latencies
    return Result(f"{connections} conn × {calls_per_conn} calls", elapsed, stats, cpu, left)


# --------------------------------------------------------------------------- part 1: full calls


@dataclass
class Row:
    who: str
    rate: float
    errors: int
    cpu_us: dict[str, float]
    p50: float
    p99: float
    worst: str
    open_errors: int


@contextlib.contextmanager
def cpu_of(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """CPU seconds each process used inside the block (filled in on exit)."""
    before = {name: process_cpu(pid) for name, pid in pids.items()}
    used: dict[str, float] = {}
    yield used
    for name, pid in pids.items():
        used[name] = process_cpu(pid) - before[name]


def full_calls(who: str, port: int, pids: dict[str, int], seconds: float, connector: Any) -> Row:
    # The generator's own garbage collections would count as the server's latency (bench/
    # stalls.py): off while it measures, as in bench_fullcall.py, what is left frozen first.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return _full_calls(who, port, pids, seconds, connector)
    finally:
        gc.enable()
        gc.unfreeze()


def _full_calls(who: str, port: int, pids: dict[str, int], seconds: float, connector: Any) -> Row:
    with cpu_of(pids) as used:
        closed = asyncio.run(closed_loop(port, 50, 4, seconds, connector))
    calls = max(1, closed.stats.completed)
    # the closed loop's warm-up and drain are inside the CPU window: per call, over the calls
    # completed in the measured window, an upper bound
    cpu_us = {name: used[name] / calls * 1e6 for name in pids}
    opened = asyncio.run(
        fullcall_open_loop(port, 0, 50, OPEN_RATE, max(seconds, 2.0), connector=connector)
    )
    p = {n: sorted(v) for n, v in opened.stats.latencies.items()}
    worst = max(p, key=lambda n: percentile(p[n], 0.99))
    p50 = max(percentile(v, 0.50) for v in p.values())
    p99 = percentile(p[worst], 0.99)
    row = Row(
        who,
        closed.rate,
        closed.stats.errors + closed.in_flight,
        cpu_us,
        p50,
        p99,
        LABELS[worst],
        opened.stats.errors + opened.in_flight,
    )
    for run in (closed, opened):
        print_errors(run)
    cpu_text = ", ".join(f"{n} {v:.0f} µs" for n, v in cpu_us.items())
    print(
        f"  {who:<18}{row.rate:>9,.0f} calls/s{row.errors:>4} err | at {OPEN_RATE:,}/s: "
        f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms ({row.worst}){row.open_errors:>4} err "
        f"| CPU per call: {cpu_text}"
    )
    return row


def part_full_calls(tmp: Path, seconds: float) -> list[Row]:
    print(
        "full calls: closed loop 50 conn × 4 calls; open loop "
        f"{OPEN_RATE:,} calls/s over 50 conn (p50/p99: the worst request type)"
    )
    body = CONFIG.read_text(encoding="utf-8")
    rows = []
    off_cfg = tmp / "off.toml"
    off_cfg.write_text(body)
    off = start_node(off_cfg, tmp / "off.log", cpu0=True)
    try:
        rows.append(full_calls("off", off.port, {"server": off.pid}, seconds, connect))
    finally:
        off.stop()
    for durability in ("async", "primary", "replica"):
        pair = start_pair(tmp, body, durability)
        try:
            pids = {"leader": pair.leader.pid, "standby": pair.standby.pid}
            pids |= {f"redis{i or ''}": p.pid for i, p in enumerate(pair.redis)}
            rows.append(
                full_calls(
                    f"hot, {durability}",
                    pair.leader.port,
                    pids,
                    seconds,
                    mirrored_connector(pair.standby.port),
                )
            )
        finally:
            pair.stop()
    base = rows[0].rate
    for row in rows:
        share = row.rate / base if base else 0.0
        target = row.who == "hot, primary"
        record(
            "ha",
            f"complete calls/s, {row.who}",
            row.rate,
            "/s",
            f">= {TARGET_SHARE:.0%} of off" if target else "",
            (share >= TARGET_SHARE and not row.errors) if target else None,
        )
        record(
            "ha",
            f"p99 at {OPEN_RATE:,} calls/s, {row.who} ({row.worst})",
            row.p99 * 1e3,
            "ms",
            f"< {TARGET_P99 * 1e3:.0f} ms",
            row.p99 < TARGET_P99 and not row.open_errors,
        )
        for name, value in row.cpu_us.items():
            record("ha", f"CPU per call, {row.who}, {name}", value, "µs")
        print(f"  {row.who}: {share:.0%} of off's calls/s")
    return rows


# --------------------------------------------------------------------------- part 2: takeover


async def hold_and_kill(
    pair: Pair, calls: int, connections: int, burst: bool = False
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    per_conn = calls // connections
    sinks = await open_sinks(pair.standby.port, [b"S%d" % i for i in range(connections)])
    holders: list[Holder] = []
    for i in range(connections):
        _, h = await loop.create_connection(
            partial(Holder, i, range(i * per_conn + 1, (i + 1) * per_conn + 1)),
            "127.0.0.1",
            pair.leader.port,
        )
        holders.append(h)
    await asyncio.wait_for(asyncio.gather(*(h.logged_in for h in holders)), 60)
    for h, sink in zip(holders, sinks, strict=True):
        assert h.transport is not None and sink.transport is not None
        h.transport = cast(asyncio.Transport, Tee(h.transport, sink.transport))
    before = pair.leader.ha(10) or {}
    t0 = time.perf_counter()
    if burst:  # every session writes all its NewCalls at once: the leader must keep its lease
        for h in holders:
            h.start_calls(per_conn, 0)
    else:
        # Paced (SETUP_RATE calls/s, a group of sessions at a time), as calls arrive at a site.
        group = max(1, int(SETUP_RATE * SETUP_STEP) // per_conn)
        for first in range(0, connections, group):
            for h in holders[first : first + group]:
                h.start_calls(per_conn, 0)
            await asyncio.sleep(SETUP_STEP)
    try:
        await asyncio.wait_for(
            asyncio.gather(*(h.all_established for h in holders)), 60 + calls / 500
        )
    except (TimeoutError, ConnectionError) as exc:
        got = sum(h.established for h in holders)
        after = pair.leader.ha(10) or {}
        raise RuntimeError(
            f"{got:,} of {calls:,} calls established ({exc!r}); leader before {_lease(before)}, "
            f"after {_lease(after)}; the leader's log says why"
        ) from None
    setup = calls / (time.perf_counter() - t0)
    after = pair.leader.ha(10) or {}
    for h in holders:
        h.synced.cancel()  # never awaited here: the leader's death must not leave it failed
    errors = sum(h.errors for h in holders)
    await asyncio.sleep(3.0)  # the standby trims its journal at the leader's marks
    out = {
        "setup": setup,
        "lease_kept": float(
            after.get("role") == "leader"
            and after.get("epoch") == before.get("epoch")
            and after.get("fenced_count") == 0
            and pair.standby.role() == "standby"
        ),
        "errors": errors,
        "leader_mb": rss_bytes(pair.leader.pid) / MB,
        "standby_mb": rss_bytes(pair.standby.pid) / MB,
    }
    probe_call = holders[0].calls[0]
    killed = time.perf_counter()
    pair.leader.proc.kill()
    pair.leader.proc.wait(10)
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        # the standby takes the dead leader's core: in production it has a host of its own, not
        # the core of Redis and the load generator (all threads: the API's too)
        for task in os.listdir(f"/proc/{pair.standby.pid}/task"):
            os.sched_setaffinity(int(task), {0})
    # The probe goes to the standby only (the leader is dead): it answers once it leads.
    sink = sinks[0]
    assert sink.transport is not None
    sink.transport.write(request(probe_call, CALL_INFO_REQ))
    led = await asyncio.to_thread(pair.standby.wait_role, "leader", 60)
    out["role_s"] = time.perf_counter() - killed
    while b"CallInfoResp" not in sink.replies.get(probe_call, []):
        sink.arrived.clear()
        try:
            await asyncio.wait_for(sink.arrived.wait(), 30)
        except TimeoutError:
            out["answer_s"] = float("nan")
            break
    else:
        out["answer_s"] = time.perf_counter() - killed
    del led
    out["after_mb"] = rss_bytes(pair.standby.pid) / MB
    # A sample of the held calls, each answered by the new leader.
    sample = [h.calls[j] for h in holders for j in range(0, per_conn, max(1, per_conn // 5))]
    sample = sample[:1000]
    by_sink = {}
    for h, s in zip(holders, sinks, strict=True):
        for call_id in h.calls:
            by_sink[call_id] = s
    for call_id in sample:
        s = by_sink[call_id]
        assert s.transport is not None
        s.transport.write(request(call_id, CALL_INFO_REQ))
    deadline = time.perf_counter() + 30
    answered = 0
    while time.perf_counter() < deadline:
        answered = sum(1 for c in sample if b"CallInfoResp" in by_sink[c].replies.get(c, []))
        if answered == len(sample):
            break
        await asyncio.sleep(0.1)
    out["sample"] = len(sample)
    out["answered"] = answered
    for s in sinks:
        if s.transport is not None:
            s.transport.close()
    return out


def _lease(view: dict[str, Any]) -> str:
    return (
        f"{view.get('role')} at epoch {view.get('epoch')}, fenced {view.get('fenced_count')} "
        "time(s)"
        if view
        else "(no answer)"
    )


def part_takeover(
    tmp: Path, calls: int, connections: int, burst: bool, lease: float = 2.0
) -> dict[str, float]:
    ports = -(-calls // connections) * connections
    body = held_config_text(ports)
    setup = "in one unpaced burst" if burst else f"at {SETUP_RATE:,}/s"
    print(
        f"takeover: a hot pair (durability primary, lease {lease:g} s) of an IVR with {ports:,} ports; "
        f"{calls:,} calls set up {setup} and held over {connections} mirrored sessions; kill -9 "
        "of the leader"
    )
    pair = start_pair(tmp, body, "primary", lease=lease)
    try:
        got = asyncio.run(hold_and_kill(pair, calls, connections, burst))
    finally:
        pair.stop()
    kept = "kept" if got["lease_kept"] else "LOST"
    print(
        f"  set-up {got['setup']:,.0f} calls/s ({got['errors']:.0f} errors), the leader {kept} "
        f"its lease through it; RSS before: leader "
        f"{got['leader_mb']:.0f} MB, standby {got['standby_mb']:.0f} MB\n"
        f"  killed -> standby leads after {got['role_s']:.2f} s, answers a held call after "
        f"{got['answer_s']:.2f} s; its RSS then {got['after_mb']:.0f} MB; "
        f"{got['answered']:.0f} of {got['sample']:.0f} sampled calls answered"
    )
    big = calls >= 50_000
    if burst:
        record(
            "ha",
            f"leader kept its lease through a burst of {calls:,} NewCalls (set-up calls/s)",
            got["setup"],
            "/s",
            "lease kept",
            bool(got["lease_kept"]),
        )
    record(
        "ha",
        f"takeover, {calls:,} held calls (kill -9 -> a held call answered)",
        got["answer_s"],
        "s",
        f"< {TARGET_TAKEOVER:.0f} s" if big else "",
        got["answer_s"] < TARGET_TAKEOVER if big else None,
    )
    record(
        "ha",
        f"standby RSS with {calls:,} calls (before takeover)",
        got["standby_mb"],
        "MB",
        f"< {TARGET_STANDBY_MB} MB" if big else "",
        got["standby_mb"] < TARGET_STANDBY_MB if big else None,
    )
    record(
        "ha",
        f"new leader RSS with {calls:,} calls (after takeover)",
        got["after_mb"],
        "MB",
        f"< {TARGET_STANDBY_MB} MB" if big else "",
        got["after_mb"] < TARGET_STANDBY_MB if big else None,
    )
    record(
        "ha",
        f"sampled held calls answered after takeover ({got['sample']:.0f})",
        got["answered"],
        "",
        f"= {got['sample']:.0f}",
        got["answered"] == got["sample"],
    )
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--calls", type=int, default=None, help="held calls (default 50,000)")
    ap.add_argument("--skip-full", action="store_true", help="only the takeover")
    ap.add_argument("--skip-takeover", action="store_true", help="only the full calls")
    ap.add_argument(
        "--burst",
        action="store_true",
        help="set the held calls up in one unpaced burst (the leader must keep its lease)",
    )
    ap.add_argument(
        "--lease",
        type=float,
        default=2.0,
        help="the takeover pair's [ha] lease in seconds (default 2, the default of [ha])",
    )
    ap.add_argument(
        "--logs", type=Path, default=None, help="keep the nodes' and Redis' logs in this folder"
    )
    args, _ = ap.parse_known_args()
    seconds = args.seconds or (2.0 if args.quick else 8.0)
    calls = args.calls or (5_000 if args.quick else 50_000)
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # the generator, the standby and Redis; the leader on 0
    print(
        f"host: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
        f"{subprocess.run([redis_binary(), '--version'], capture_output=True, text=True).stdout.strip()}"
    )
    with tempfile.TemporaryDirectory(prefix="ivrs-bench-ha-") as name:
        tmp = Path(name)
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
            tmp = args.logs
        try:
            if not args.skip_full:
                part_full_calls(tmp, seconds)
            if not args.skip_takeover:
                part_takeover(tmp, calls, 200, args.burst, args.lease)
        except Exception:
            for log in sorted(tmp.glob("*.log")):
                print(f"--- {log.name} ---\n{log.read_text(errors='replace')[-2000:]}")
            raise


if __name__ == "__main__":
    main()
