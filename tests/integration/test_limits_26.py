"""Issue 26 items 1 and 5 against a real ``ivr-server serve`` (uvloop): a flood of idle
connections to either port under a descriptor limit of 1,024, standard error closed at start,
a pid file that cannot be written.

Each flood keeps a well-behaved IVR session making requests and checks that it is answered on
time, that a new IVR can log in and that the HTTP API answers (or, where the documented answer
is a refusal, that it comes at once and the place comes back).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, free_port, launch
from tests.integration.rawlink import RawLink
from tests.integration.test_hostile_26 import SERVER_FULL, canary, open_from, served_on_time

FD_LIMIT = 1024
IDLE = 1010
"""Idle connections the flood opens: more than the limit leaves for IVR connections."""
DEFAULT_TOML = ROOT / "src/ivr_server/config/default.toml"


def _fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def _config(tmp_path: Path, **replace: str) -> Path:
    """The built-in configuration with some ``key = value`` lines replaced."""
    text = DEFAULT_TOML.read_text(encoding="utf-8")
    for key, value in replace.items():
        old = next(line for line in text.splitlines() if line.startswith(f"{key} = "))
        text = text.replace(old, f"{key} = {value}", 1)
    path = tmp_path / "server.toml"
    path.write_text(text, encoding="utf-8")
    return path


@contextlib.contextmanager
def served(tmp_path: Path, **replace: str) -> Iterator[tuple[int, int, Path]]:
    """``ivr-server serve`` under a descriptor limit of 1,024: ``(IVR port, API port, log)``."""
    api_port = free_port()
    log_file = tmp_path / "server.log"
    with log_file.open("w") as err:
        server = launch(
            "serve",
            "--config",
            str(_config(tmp_path, **replace)),
            "--listen",
            "127.0.0.1:0",
            "--api-listen",
            f"127.0.0.1:{api_port}",
            wait_for=api_port,
            stderr=err,
            preexec_fn=_fd_limit,
        )
    try:
        yield server.port, api_port, log_file
        assert server.proc.poll() is None
    finally:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.communicate()
    log = log_file.read_text()
    assert "Traceback" not in log and "Too many open files" not in log, log[-3000:]


def api_status(api_port: int, path: str = "/api/v1/ivrs") -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}{path}", timeout=5) as answer:
            json.loads(answer.read())
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


async def api(api_port: int) -> int:
    return await asyncio.get_running_loop().run_in_executor(None, api_status, api_port)


async def a_new_ivr_logs_in(port: int, name: str = "N") -> None:
    link = await RawLink.open(port)
    await link.login(name)
    await served_on_time(link, "new", name)
    await link.close()


async def test_idle_ivr_connections_of_one_address_leave_logins_and_the_api_working(
    tmp_path: Path,
) -> None:
    with served(tmp_path) as (port, api_port, log_file):
        other = await canary(port)
        flood = [await open_from(port) for _ in range(IDLE)]  # 256 admitted, the rest refused
        await served_on_time(other)
        await a_new_ivr_logs_in(port)
        assert await api(api_port) == 200
        assert await asyncio.wait_for(flood[-1].reader.read(), 5.0) == SERVER_FULL
        await served_on_time(other, "again")
        for link in flood:
            link.writer.close()
        await other.close()
    log = log_file.read_text()
    assert "up to 864 IVR connections at once of 1024 file descriptors" in log, log[-2000:]
    assert "IVR connections from 127.0.0.2 are open, the most allowed from one address" in log


async def test_idle_ivr_connections_filling_the_cap_leave_the_api_and_make_room_for_a_login(
    tmp_path: Path,
) -> None:
    with served(tmp_path) as (port, api_port, log_file):
        other = await canary(port)
        hosts = [f"127.0.0.{i}" for i in range(2, 6)]  # 4 x 253 > 864: the cap, not per address
        started = time.monotonic()
        flood = [await open_from(port, hosts[i % 4]) for i in range(IDLE)]
        await served_on_time(other)
        assert await api(api_port) == 200  # the API has its own descriptors
        await asyncio.sleep(max(0.0, started + 2.5 - time.monotonic()))
        first = await RawLink.open(port)  # an idle one is closed for it (code 7)
        await first.login("F")
        await a_new_ivr_logs_in(port)  # and another one for this one
        await served_on_time(first, "f", "F")
        assert await api(api_port) == 200
        await served_on_time(other, "again")
        answers = await asyncio.gather(
            *(asyncio.wait_for(link.reader.read(8), 5.0) for link in flood[:2])
        )
        assert answers == [SERVER_FULL, SERVER_FULL]  # the oldest two made room
        for link in flood:
            link.writer.close()
        await first.close()
        await other.close()
    log = log_file.read_text()
    assert log.count("closed to make room for a new connection") >= 2


async def test_idle_and_slow_api_connections_leave_ivr_logins_working(tmp_path: Path) -> None:
    with served(tmp_path, **{"header-timeout": '"5s"'}) as (port, api_port, log_file):
        other = await canary(port)
        flood = []
        started = time.monotonic()
        for i in range(IDLE):
            _, writer = await asyncio.open_connection("127.0.0.1", api_port)
            if i % 2:
                writer.write(b"GET /api/v1/ivrs HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
            flood.append(writer)
        await served_on_time(other)
        await a_new_ivr_logs_in(port)
        await asyncio.sleep(1.2)  # the flood's last refusals are answered or closed
        assert time.monotonic() - started < 4.0, "the flood took too long to test the cap"
        status = await api(api_port)
        assert status == 503, status  # at the cap: refused at once, with the reason
        await asyncio.sleep(max(0.0, started + 5.5 - time.monotonic()))
        assert await api(api_port) == 200  # the header timeout freed the places
        await served_on_time(other, "again")
        for writer in flood:
            writer.close()
        await other.close()
    log = log_file.read_text()
    assert "API connection from 127.0.0.1 refused" in log
    assert "no request headers within 5 s (api.header-timeout)" in log


# -- small ones --------------------------------------------------------------------------------


def test_with_standard_error_closed_the_server_runs_and_logs_to_standard_output() -> None:
    """``2>&-``: descriptor 2 closed (not /dev/null). The real interpreter, not a wrapper script
    that would open its own file on descriptor 2."""
    proc = subprocess.Popen(
        f"exec {sys.executable} -m ivr_server serve --listen 127.0.0.1:0 "
        "--api-listen 127.0.0.1:0 2>&-",
        shell=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("listening on" in line and "IVR XML" in line for line in lines):
            line = proc.stdout.readline()
            assert line, f"exited {proc.wait()}: {lines}"
            lines.append(line)
        port = int(next(x for x in lines if "IVR XML" in x).split(":")[1].split()[0])
        assert any("standard error (descriptor 2) was closed" in line for line in lines), lines
        fds = os.listdir(f"/proc/{proc.pid}/fd")
        assert "2" in fds and os.readlink(f"/proc/{proc.pid}/fd/2") == os.readlink(
            f"/proc/{proc.pid}/fd/1"
        )

        async def login() -> None:
            await a_new_ivr_logs_in(port)

        asyncio.run(login())
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert "stopped after" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("path", ["/dev/null/x", "/nonexistent-dir/ivr.pid"])
def test_an_unwritable_pid_file_is_one_clear_line_and_exit_1(path: str) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "ivr_server", "serve", "--listen", "127.0.0.1:0"),
            *("--no-api", "--pid-file", path, "--log-level", "ERROR"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    reason = "Not a directory" if path.startswith("/dev/null") else "No such file or directory"
    assert result.stderr.splitlines()[-1] == f"Error: cannot write the pid file {path}: {reason}"
    assert "Traceback" not in result.stderr
