"""A real ``redis-server`` for the tests of high availability (issue 25): started as a
subprocess on a free loopback port, without persistence (``--save "" --appendonly no``), so a
:meth:`RedisProcess.restart` brings it back *empty*, as a Redis without persistence comes back
after a crash. Redis is never mocked: the store's fencing lives in a Redis function library, and
only a real server runs it.

Use the fixtures (registered by ``tests/store/conftest.py``; elsewhere, import them into your
``conftest.py``: ``from tests.redisproc import redis_pair, redis_server``):

- ``redis_server``: one :class:`RedisProcess` (also listening on a unix socket);
- ``redis_pair``: a :class:`RedisPair`, a primary and one replica (``--replicaof``), linked;
- ``redis_sentinel``: a :class:`SentinelSet`, a primary, its replica and one Sentinel
  (``redis-server <conf> --sentinel``, Debian's redis-server binary: no redis-sentinel package
  needed) monitoring the primary as ``ivrs``, quorum 1, down after 1 s.

Without ``/usr/bin/redis-server`` (or ``redis-server`` on ``PATH``) the tests skip, naming it,
except under CI (``CI`` set, as ``.ci/run`` is run), where they fail: CI must never pass without
them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

__all__ = [
    "RedisPair",
    "RedisProcess",
    "SentinelProcess",
    "SentinelSet",
    "free_port",
    "redis_pair",
    "redis_sentinel",
    "redis_server",
    "redis_server_path",
    "require_redis",
]

START_TIMEOUT = 10.0
"""Seconds a server gets to answer PING (a loaded 2-core machine)."""

_LIVE: set[RedisProcess] = set()


def redis_server_path() -> str | None:
    """Debian's ``/usr/bin/redis-server``, else the one on ``PATH``, else ``None``."""
    if os.access("/usr/bin/redis-server", os.X_OK):
        return "/usr/bin/redis-server"
    return shutil.which("redis-server")


def require_redis() -> str:
    """The redis-server to run; skips the test without one (fails it under CI)."""
    path = redis_server_path()
    if path is not None:
        return path
    if os.environ.get("CI"):
        pytest.fail("CI must run the tests against a real Redis, and redis-server is missing")
    pytest.skip("redis-server is not installed (apt-get install redis-server)")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """One ``redis-server`` subprocess. ``port`` is kept across :meth:`restart` (a node's store
    URL must stay valid); every start is empty. ``replicaof`` makes it a replica of that server.
    Also listens on the unix socket :attr:`unix_path` (``unix://`` URLs)."""

    def __init__(
        self,
        *,
        replicaof: RedisProcess | None = None,
        port: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.binary = require_redis()
        self.port = port if port is not None else free_port()
        self.replicaof = replicaof
        self.extra = extra
        self.dir = Path(tempfile.mkdtemp(prefix="ivrs-redis-"))
        self.unix_path = str(self.dir / "redis.sock")
        self.log_path = self.dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        for attempt in range(5):
            try:
                self.start()
                break
            except RuntimeError:
                # the free port was taken meanwhile (another xdist worker): try another
                if port is not None or attempt == 4:
                    shutil.rmtree(self.dir, ignore_errors=True)
                    raise
                self.port = free_port()

    # -- addresses

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """``unix://<dir>/redis.sock?db=0``."""
        return f"unix://{self.unix_path}?db=0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self, **kwargs: object) -> redis.Redis:
        """A synchronous redis-py client (for checks in tests; close it after)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, **kwargs)  # type: ignore[arg-type]

    # -- life cycle

    def _argv(self) -> list[str]:
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.dir),
            "--unixsocket",
            self.unix_path,
            "--unixsocketperm",
            "700",
            "--logfile",
            "",
            # a replica's first sync starts at once, not after the default 5 s
            "--repl-diskless-sync-delay",
            "0",
        ]
        if self.replicaof is not None:
            argv += ["--replicaof", "127.0.0.1", str(self.replicaof.port)]
        return argv + list(self.extra)

    def start(self) -> None:
        """Start the server (empty) and wait until it answers PING."""
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        _LIVE.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                self._proc.wait()
                raise RuntimeError(
                    f"redis-server on port {self.port} exited at start:\n{self.log()}"
                )
            with (
                contextlib.suppress(redis.RedisError, OSError),
                redis.Redis(
                    host="127.0.0.1", port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5
                ) as probe,
            ):
                try:
                    pid = int(probe.info("server")["process_id"])
                except redis.AuthenticationError:  # --requirepass: up, but wants AUTH
                    time.sleep(0.05)
                    pid = self._proc.pid if self._proc.poll() is None else -1
                if pid == self._proc.pid:
                    return
                # another server answers on this port (another xdist worker's): ours will fail
                self.kill()
                raise RuntimeError(f"port {self.port} is another redis-server's (pid {pid})")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"redis-server on port {self.port} did not answer PING:\n{self.log()}"
                )
            time.sleep(0.01)

    def log(self) -> str:
        """The server's output so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def _end(self, sig: signal.Signals) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
                proc.send_signal(sig)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL: the server dies at once, connections drop (a crash)."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM and wait (a clean shutdown; without persistence, nothing is saved)."""
        self._end(signal.SIGTERM)

    def restart(self) -> None:
        """Kill and start again on the same port: the server comes back empty."""
        self.kill()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the server stops answering but keeps its connections (a hung store:
        clients time out)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def cleanup(self) -> None:
        """Kill the server and remove its directory."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def wait_replica_linked(self, timeout: float = START_TIMEOUT) -> None:
        """For a replica: wait until its link to the primary is up (the first sync is done)."""
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while True:
                info = c.info("replication")
                if info.get("master_link_status") == "up":
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica on {self.port} not linked: {info}\n{self.log()}")
                time.sleep(0.02)

    def wait_replicas_online(self, count: int = 1, timeout: float = START_TIMEOUT) -> None:
        """For a primary: wait until ``count`` replicas are online (``WAIT`` counts them)."""
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while True:
                info = c.info("replication")
                online = sum(
                    1
                    for key, value in info.items()
                    if key.startswith("slave")
                    and isinstance(value, dict)
                    and value.get("state") == "online"
                )
                if online >= count:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"primary on {self.port}: replicas not online: {info}")
                time.sleep(0.02)

    def __repr__(self) -> str:
        return f"RedisProcess(port={self.port}, pid={self.pid})"


@dataclass
class RedisPair:
    """A primary and one replica of it, linked."""

    primary: RedisProcess
    replica: RedisProcess

    @property
    def url(self) -> str:
        """The primary's URL (where a node writes)."""
        return self.primary.url


class SentinelProcess:
    """One Sentinel (``redis-server <conf> --sentinel``) monitoring ``primary`` as
    :attr:`master`: quorum 1 (it decides alone), down after ``down_after_ms``. It rewrites its
    configuration file (kept in its own directory)."""

    def __init__(
        self, primary: RedisProcess, *, master: str = "ivrs", down_after_ms: int = 1000
    ) -> None:
        self.binary = require_redis()
        self.master = master
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ivrs-sentinel-"))
        self.conf = self.dir / "sentinel.conf"
        self.log_path = self.dir / "sentinel.log"
        self.conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            "daemonize no\n"
            f'dir "{self.dir}"\n'
            f"sentinel monitor {master} 127.0.0.1 {primary.port} 1\n"
            f"sentinel down-after-milliseconds {master} {down_after_ms}\n"
            f"sentinel failover-timeout {master} 10000\n"
            f"sentinel parallel-syncs {master} 1\n",
            encoding="ascii",
        )
        with self.log_path.open("ab") as log:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [self.binary, str(self.conf), "--sentinel"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while self.primary_address() is None:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.cleanup()
                raise RuntimeError(f"sentinel on port {self.port} did not start:\n{self.log()}")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:<port>/<master>/0``."""
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.master}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def primary_address(self) -> tuple[str, int] | None:
        """Where the Sentinel says the primary is (``None``: it does not answer yet)."""
        with contextlib.suppress(redis.RedisError, OSError), self.client() as c:
            found = c.execute_command("SENTINEL", "get-master-addr-by-name", self.master)
            if found:
                host, port = found
                return (host.decode() if isinstance(host, bytes) else str(host), int(port))
        return None

    def replicas_known(self) -> int:
        """Replicas the Sentinel found for the primary (``INFO replication`` of it)."""
        with contextlib.suppress(redis.RedisError, OSError), self.client() as c:
            return len(c.execute_command("SENTINEL", "replicas", self.master) or [])
        return 0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class SentinelSet:
    """A primary, its replica, and a Sentinel that knows both (the replica found)."""

    primary: RedisProcess
    replica: RedisProcess
    sentinel: SentinelProcess

    @property
    def url(self) -> str:
        """The store URL through the Sentinel."""
        return self.sentinel.url

    def wait_promoted(self, timeout: float = 20.0) -> None:
        """Wait until the Sentinel names the replica as the primary and it answers as one."""
        deadline = time.monotonic() + timeout
        while True:
            if self.sentinel.primary_address() == ("127.0.0.1", self.replica.port):
                with contextlib.suppress(redis.RedisError, OSError), self.replica.client() as c:
                    if c.execute_command("ROLE")[0] == b"master":
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the replica was not promoted within {timeout} s:\n{self.sentinel.log()}"
                )
            time.sleep(0.05)


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        proc.cleanup()


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    """A fresh, empty redis-server for this test, killed after it."""
    server = RedisProcess()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_pair() -> Iterator[RedisPair]:
    """A fresh primary and its replica (linked), killed after the test."""
    primary = RedisProcess()
    replica: RedisProcess | None = None
    try:
        replica = RedisProcess(replicaof=primary)
        replica.wait_replica_linked()
        primary.wait_replicas_online(1)
        yield RedisPair(primary, replica)
    finally:
        if replica is not None:
            replica.cleanup()
        primary.cleanup()


@pytest.fixture
def redis_sentinel() -> Iterator[SentinelSet]:
    """A fresh primary, its linked replica and a Sentinel that found it, killed after the
    test."""
    primary = RedisProcess()
    replica: RedisProcess | None = None
    sentinel: SentinelProcess | None = None
    try:
        replica = RedisProcess(replicaof=primary)
        replica.wait_replica_linked()
        primary.wait_replicas_online(1)
        sentinel = SentinelProcess(primary)
        deadline = time.monotonic() + START_TIMEOUT
        while sentinel.replicas_known() < 1:  # found through the primary's INFO (every 10 s
            if time.monotonic() > deadline:  # at most; at once after the first)
                raise RuntimeError(f"the sentinel found no replica:\n{sentinel.log()}")
            time.sleep(0.05)
        yield SentinelSet(primary, replica, sentinel)
    finally:
        if sentinel is not None:
            sentinel.cleanup()
        if replica is not None:
            replica.cleanup()
        primary.cleanup()
