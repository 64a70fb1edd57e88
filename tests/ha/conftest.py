"""High availability with real processes (issue 25, MODES-AND-HA §3.7 H1-H7): a real
``redis-server`` (:mod:`tests.redisproc`), two or three ``python -m ivr_server serve --config``
processes on free loopback ports with ``[ha]`` pointing at it, and the hot-standby driver
(:class:`~ivr_server.client.HotStandbyDriver`) that sends every request to both nodes.

Short leases (1 s, polled every 0.1 s) keep the tests quick. Every process is killed and every
port freed at the end (:class:`Cluster` is a context manager; ``kill -9`` of whatever is left);
every wait is bounded. A test module keeps its processes on one pytest-xdist worker
(``pytestmark = pytest.mark.xdist_group(__name__)``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.apihttp import api_request
from tests.redisproc import RedisProcess, free_port, require_redis

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOML = ROOT / "src/ivr_server/config/default.toml"
EXAMPLES = ROOT / "examples"
TOKEN = "ha-t0ken"
LEASE = 1.0
POLL = 0.1
START_S = 30.0
"""Longest wait for a node to start (a loaded 2-core machine; 50,000 ports take longer)."""
IVR = "IVR_1"
"""The default configuration's IVR with 32 ports (1..32 on DNs 4001..4032), legacy mode off."""


def ha_table(
    *,
    node_id: str,
    store: str,
    mode: str = "hot",
    lease: float = LEASE,
    poll: float = POLL,
    durability: str = "primary",
    replicas: int = 1,
    wait_timeout: float = 0.05,
    on_store_loss: str = "pause",
    store_timeout: float = 0.5,
    site: str = "t",
) -> str:
    """The ``[ha]`` table of one node."""
    return f"""
[ha]
mode = "{mode}"
node-id = "{node_id}"
store = "{store}"
site = "{site}"
lease = {lease}
poll = {poll}
durability = "{durability}"
replicas = {replicas}
wait-timeout = {wait_timeout}
on-store-loss = "{on_store_loss}"
store-timeout = {store_timeout}
"""


def default_body(*, timers: dict[str, str] | None = None) -> str:
    """The built-in default configuration (IVR_1, IVR_2, routing points 5000 and 5001), with a
    short drain and the given ``[server.timers]`` values."""
    text = DEFAULT_TOML.read_text(encoding="utf-8")
    for key, value in {"drain-time": "1s", **(timers or {})}.items():
        text, found = _sub_line(text, key, f'"{value}"')
        assert found, key
    return text


def _sub_line(text: str, key: str, value: str) -> tuple[str, bool]:
    new, found = re.subn(rf"(?m)^{key}\s*=\s*\S+", f"{key} = {value}", text, count=1)
    return new, bool(found)


def held_body(ports: int) -> str:
    """One in-front switch and IVR ``IVR_1`` of ``ports`` ports "1".. on DNs 100001.. (H7: tens
    of thousands of held calls). No routing point: a port numbered like one (port "5000") would
    get its NewCall taken as a routed call (bench/bench_held.py)."""
    dns = "\n".join(
        f'    {{ number = "{100001 + i}", type = "voice-treatment-port" }},' for i in range(ports)
    )
    port_list = "\n".join(
        f'    {{ number = "{i + 1}", dn = "{100001 + i}" }},' for i in range(ports)
    )
    return f"""\
[server]
log-level = "WARNING"
drain-time = "1s"

[[switches]]
name = "SW_Held"
type = "in-front"
dns = [
{dns}
]

[[tservers]]
name = "TServer_Held"
switch = "SW_Held"

[[ivrs]]
name = "{IVR}"
tservers = ["TServer_Held"]
legacy-mode = false
ports = [
{port_list}
]

[api]
listen = ["127.0.0.1:8021"]
"""


@dataclass
class Node:
    """One ``ivr-server serve`` process: its IVR port, API port, log and configuration."""

    name: str
    config: Path
    port: int
    api_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    stopped: bool = False

    # ------------------------------------------------------------------ life cycle

    def start(self, *, wait_ivr: bool = True) -> None:
        """Start the process; return once its API (and, with ``wait_ivr``, its IVR port)
        accepts connections."""
        env = {**os.environ, "IVR_SERVER_API_TOKEN": TOKEN}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ivr_server",
                    "serve",
                    "--config",
                    str(self.config),
                    "--listen",
                    f"127.0.0.1:{self.port}",
                    "--api-listen",
                    f"127.0.0.1:{self.api_port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self.stopped = False
        self.wait_port(self.api_port, START_S)
        if wait_ivr:
            self.wait_port(self.port, START_S)

    def wait_port(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"node {self.name} exited: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"node {self.name}: nothing on port {port} within {timeout:g} s\n"
                        f"{self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """``kill -9``: the node dies at once, without releasing its lease. A stopped node is
        killed stopped (no SIGCONT first: it would run for a moment, and could commit what it
        had read while paused)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def sigstop(self) -> None:
        """SIGSTOP, then wait until the kernel shows the process stopped: the signal is
        delivered asynchronously, and a node still running for a moment may read, commit and
        even answer what the test sends next."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True
        stat = Path(f"/proc/{self.proc.pid}/stat")
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if stat.read_text().rpartition(")")[2].split()[0] in ("T", "t"):
                    return
            time.sleep(0.001)
        raise AssertionError(f"node {self.name} not stopped 5 s after SIGSTOP")

    def sigcont(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def terminate(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (then SIGKILL). Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def rss_mb(self) -> float:
        """Resident memory (VmRSS), MB."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return -1.0

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return f"--- {self.name} log ---\n" + self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ API

    def request(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        return api_request(self.api_port, TOKEN, method, path, body, 5)

    def ha(self) -> dict[str, Any]:
        """``GET /api/v1/ha`` (helper D's view of the node's role)."""
        status, answer = self.request("GET", "ha")
        assert status == 200, f"{self.name}: GET /api/v1/ha -> {status} {answer!r}"
        assert isinstance(answer, dict), answer
        return answer

    def role(self) -> str | None:
        """The node's role as ``/api/v1/ha`` says (``None`` if the API does not answer)."""
        try:
            status, answer = self.request("GET", "ha")
        except OSError:
            return None
        if status != 200 or not isinstance(answer, dict):
            return None
        role = answer.get("role")
        return role if isinstance(role, str) else None

    def wait_role(self, role: str, timeout: float) -> float:
        """Wait until the node says it is ``role``; returns the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.role()
            if seen == role:
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(
            f"node {self.name} not {role} within {timeout:g} s (last: {seen})\n{self.log_tail()}"
        )

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/metrics", timeout=5) as r:
            return str(r.read().decode())


@dataclass
class Cluster:
    """The store and the nodes of one test; everything is killed on exit."""

    tmp: Path
    redis: RedisProcess
    replica: RedisProcess | None = None
    nodes: dict[str, Node] = field(default_factory=dict)

    def add(
        self, name: str, body: str, *, start: bool = True, wait_ivr: bool = True, **ha: Any
    ) -> Node:
        """Write node ``name``'s configuration (``body`` + its ``[ha]`` table) and start it."""
        ha.setdefault("store", self.redis.url)
        config = self.tmp / f"{name}.toml"
        config.write_text(body + ha_table(node_id=name, **ha), encoding="utf-8")
        node = Node(name, config, free_port(), free_port(), self.tmp / f"{name}.log")
        self.nodes[name] = node
        if start:
            node.start(wait_ivr=wait_ivr)
        return node

    def logs(self) -> str:
        return "\n".join(n.log_tail() for n in self.nodes.values())

    def close(self) -> None:
        for node in self.nodes.values():
            node.kill9()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh redis-server and room for nodes; every process killed after the test (the
    nodes' logs are printed: pytest shows them when the test failed)."""
    require_redis()
    redis = RedisProcess()
    made = Cluster(tmp_path, redis)
    try:
        yield made
    finally:
        made.close()
        print(made.logs())
        if made.replica is not None:
            made.replica.cleanup()
        redis.cleanup()


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """As :func:`cluster`, with a linked replica of the store (``durability = "replica"``)."""
    require_redis()
    redis = RedisProcess()
    made = Cluster(tmp_path, redis)
    try:
        made.replica = RedisProcess(replicaof=redis)
        made.replica.wait_replica_linked()
        redis.wait_replicas_online(1)
        yield made
    finally:
        made.close()
        print(made.logs())
        if made.replica is not None:
            made.replica.cleanup()
        redis.cleanup()


__all__ = [
    "IVR",
    "LEASE",
    "POLL",
    "TOKEN",
    "Cluster",
    "Node",
    "cluster",
    "default_body",
    "ha_table",
    "held_body",
    "replicated_cluster",
]
