"""The real server: started in this process on a free loopback port (the fixtures), or as the
``ivr-server`` command in a subprocess (:func:`launch`, :func:`start`, :func:`stop`)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import pytest

from ivr_server.config import ListenAddress, ServerConfig, default_config
from ivr_server.runtime import IvrServer
from tests.integration.rawlink import RawLink

LOOPBACK_0 = (ListenAddress(host="127.0.0.1", port=0),)
ROOT = Path(__file__).resolve().parents[2]
"""The repository's root."""
START_S = 20.0
"""Longest wait for a server process to listen (generous: a loaded 2-core machine)."""
_LISTENING = re.compile(r"listening on (\S+?):([0-9]+)[ ,]")


def free_port() -> int:
    """A loopback port free a moment ago, for a configuration that must name one (another
    process may take it meanwhile: where a server may choose, give it port 0 instead)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """An ``ivr-server`` process, the first IVR port it listens on, and its banner."""

    def __init__(self, proc: subprocess.Popen[str], port: int, banner: str) -> None:
        self.proc, self.port, self.banner = proc, port, banner


def launch(
    *args: str,
    port: int | None = None,
    wait_for: int | None = None,
    stderr: int | IO[Any] = subprocess.PIPE,
    **popen: Any,
) -> Served:
    """``python -m ivr_server ARGS`` (nothing added), once it accepts connections on ``wait_for``
    (by default its IVR port: ``port``, or the one its banner names). ``popen``: more of
    ``subprocess.Popen``'s arguments (``env``, ``preexec_fn``...)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr_server", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        **popen,
    )
    assert proc.stdout is not None
    banner = "".join(proc.stdout.readline() for _ in range(4))  # listening, config, API, build
    if port is None:
        found = _LISTENING.search(banner)
        if found is None:
            proc.kill()
            raise AssertionError(f"server did not start: {banner!r} {proc.communicate()}")
        port = int(found.group(2))
    deadline = time.monotonic() + START_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", wait_for or port), timeout=0.5).close()
            return Served(proc, port, banner)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"server did not start: {proc.communicate()}") from None
            time.sleep(0.05)


def start(*args: str) -> Served:
    """``ivr-server serve ARGS`` on a loopback port of its own choosing, its API on another."""
    return launch(
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--api-listen",
        "127.0.0.1:0",  # never the default configuration's 8021
        *args,
    )


def stop(served: Served) -> str:
    """SIGTERM, as an operator stops it; it must exit 0. Returns what it wrote to stderr."""
    served.proc.send_signal(signal.SIGTERM)
    _, err = served.proc.communicate(timeout=10)
    assert served.proc.returncode == 0, err
    return err


@pytest.fixture
async def start_server() -> AsyncIterator[Callable[..., Awaitable[IvrServer]]]:
    servers: list[IvrServer] = []

    async def start(config: ServerConfig | None = None, **kwargs: object) -> IvrServer:
        kwargs.setdefault("api_listen", ())  # never the configuration's API port (8021)
        server = IvrServer(config or default_config(), listen=LOOPBACK_0, **kwargs)  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def server(start_server: Callable[..., Awaitable[IvrServer]]) -> IvrServer:
    return await start_server()


@pytest.fixture
async def connect(server: IvrServer) -> AsyncIterator[Callable[[], Awaitable[RawLink]]]:
    links: list[RawLink] = []

    async def open_link() -> RawLink:
        link = await RawLink.open(server.port)
        links.append(link)
        return link

    yield open_link
    for link in links:
        await link.close()
