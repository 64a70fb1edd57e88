"""Behind mode end to end: the CSTA PBX simulator (``ivr-server csta-sim``) and the server
(``ivr-server serve``), each started as its own process on free loopback ports from temporary
copies of ``examples/pbx.toml`` and ``examples/behind.toml``, and IVR sessions over TCP.

:func:`running_site` starts the two (:func:`start_sim`, :func:`start_server`) and yields once
each is really up: the simulator answers ``GET /api/v1/health``, the server listens, and the
simulator lists a monitor of the server's on every port DN; :meth:`Ivr.linked` then logs in until
``LoginResp Status='OK'`` (the premise link is up on the server's side too). :class:`Ivr` is an
IVR session (:class:`~ivr_server.client.IvrClient`) that sends documents written as XML text, as
a driver does, and waits for typed answers. :mod:`tests.behind.fakepbx` is a PBX written in the
test, for what the simulator will not do. Each test module
keeps its processes (module-scoped) on one pytest-xdist worker: ``pytestmark =
pytest.mark.xdist_group(__name__)``."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ivr_server.client import IvrClient
from ivr_server.wire import KvList, Message, Node
from ivr_server.wire.messages import CallStatus, LoginResp, MonitorInfo
from tests.apihttp import http
from tests.integration.conftest import ROOT, START_S, Served, free_port, launch
from tests.integration.rawlink import doc

BEHIND_TOML = ROOT / "examples/behind.toml"
PBX_TOML = ROOT / "examples/pbx.toml"
IVR = "IAdapter1"
PORT_DNS = {"1": "3001", "2": "3002", "3": "3003"}
"""The example's IVR ports and their DNs on the premise switch."""
ROUTED_TO = "3081"
"""Where the test router sends every call presented on VRP 4200 (an agent's extension)."""
TIMEOUT = 5.0
"""Longest wait for one document (a loaded 2-core machine)."""

M = TypeVar("M", bound=Message)


# --------------------------------------------------------------------------- the simulator


@dataclass
class Sim:
    """The simulator's process, its CSTA and HTTP API ports, and its log."""

    proc: subprocess.Popen[bytes]
    csta_port: int
    api_port: int
    log: Path

    def api(self, method: str, path: str, body: object = None, ok: tuple[int, ...] = ()) -> Any:
        """``METHOD /api/v1/PATH``; with ``ok``, the status must be one of them."""
        status, answer = http(method, f"http://127.0.0.1:{self.api_port}/api/v1/{path}", body)
        if ok:
            assert status in ok, f"{method} {path} {body!r}: {status} {answer!r}"
        return answer

    def deliver(self, ani: str, dn: str, **more: object) -> str:
        """An inbound call from ``ani`` to ``dn`` (``POST /calls``); returns its id."""
        answer = self.api("POST", "calls", {"from": ani, "to": dn, **more}, ok=(200, 201))
        return str(answer["id"])

    def call(self, call_id: str) -> dict[str, Any]:
        """``GET /calls/{id}``: what the simulator knows of the call, ``{}`` when it has none."""
        status, answer = http("GET", f"http://127.0.0.1:{self.api_port}/api/v1/calls/{call_id}")
        assert status in (200, 404), f"GET calls/{call_id}: {status} {answer!r}"
        return answer if status == 200 and isinstance(answer, dict) else {}

    def hangup(self, call_id: str) -> None:
        self.api("POST", f"calls/{call_id}/hangup", {}, ok=(200, 202, 204))

    def drop_link(self, down_for: float | None = None) -> None:
        body = {} if down_for is None else {"down_for": down_for}
        self.api("POST", "link/drop", body, ok=(200, 202, 204))

    def monitored(self) -> set[str]:
        """Every DN some application session of the simulator monitors (``GET /sessions``)."""
        answer = self.api("GET", "sessions", ok=(200,))
        return {dn for session in answer["sessions"] for dn in session["monitors"].values()}

    def dn(self, number: str) -> dict[str, Any]:
        """What the simulator shows of DN ``number`` (``GET /dns``)."""
        answer = self.api("GET", "dns", ok=(200,))
        found = [dn for dn in answer["dns"] if dn["number"] == number]
        assert found, f"the simulator has no DN {number}"
        return dict(found[0])

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def pbx_config(tmp: Path) -> Path:
    """A copy of ``examples/pbx.toml`` (the ports come from the command line)."""
    path = tmp / "pbx.toml"
    path.write_text(PBX_TOML.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def start_sim(tmp: Path, csta_port: int | None = None) -> Sim:
    """``ivr-server csta-sim`` on free loopback ports (``csta_port``: that one), once its API
    says it is healthy."""
    csta_port = csta_port or free_port()
    api_port = free_port()
    log = tmp / f"sim-{csta_port}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "ivr_server", "csta-sim", "--config", str(pbx_config(tmp))),
                *("--listen", f"127.0.0.1:{csta_port}", "--api-listen", f"127.0.0.1:{api_port}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    sim = Sim(proc, csta_port, api_port, log)
    deadline = time.monotonic() + START_S
    while True:
        with contextlib.suppress(OSError):
            if http("GET", f"http://127.0.0.1:{api_port}/api/v1/health", timeout=0.5)[0] == 200:
                return sim
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the simulator did not start: {sim.log_text()}")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen[Any], log: Path) -> str:
    """SIGTERM, as an operator stops it: it must exit 0. Returns its log."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"no exit within 10 s of SIGTERM: {log.read_text()}") from None
    if proc.stdout is not None:
        proc.stdout.close()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert proc.returncode == 0, f"exit status {proc.returncode}: {text}"
    return text


# --------------------------------------------------------------------------- the server


def behind_config(
    tmp: Path,
    pbx_port: int,
    timers: dict[str, str] | None = None,
    premise: dict[str, str] | None = None,
) -> Path:
    """A copy of ``examples/behind.toml``: the premise link to ``127.0.0.1:pbx_port``, the
    ``premise`` keys changed (values are TOML), ``[server.timers]`` with ``timers``, and a
    router on VRP 4200 that sends every call to :data:`ROUTED_TO` at once (the example's VRPs
    have none: they would answer only after router-timeout)."""
    text = BEHIND_TOML.read_text(encoding="utf-8")
    text, found = re.subn(r'(?m)^address = ".*"$', f'address = "127.0.0.1:{pbx_port}"', text)
    assert found == 1, "examples/behind.toml: no premise address line"
    for key, value in (premise or {}).items():
        text, found = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert found == 1, f"examples/behind.toml: no premise key {key}"
    # Calls left by a test must not hold the server's stop for the default 10 s drain.
    text = text.replace("[server]\n", '[server]\ndrain-time = "1s"\n', 1)
    if timers:
        text += "\n[server.timers]\n" + "".join(f'{k} = "{v}"\n' for k, v in timers.items())
    text += f'\n[[routing]]\ndn = "4200"\n\n[[routing.rules]]\nname = "all"\ndn = "{ROUTED_TO}"\n'
    path = tmp / f"behind-{pbx_port}.toml"
    path.write_text(text, encoding="utf-8")
    return path


_API = re.compile(r"HTTP API[^\n]* on http://127\.0\.0\.1:([0-9]+)/")


@dataclass
class Site:
    """A Behind-mode server process and the simulator it watches."""

    served: Served
    api_port: int
    sim_or_none: Sim | None
    log: Path
    config: Path

    @property
    def sim(self) -> Sim:
        """The simulator (the site must have one)."""
        assert self.sim_or_none is not None
        return self.sim_or_none

    @property
    def port(self) -> int:
        """The server's IVR port."""
        return self.served.port

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.served.proc.poll() is None


def start_server(tmp: Path, sim: Sim | None, config: Path) -> Site:
    """``ivr-server serve --config CONFIG`` on a free IVR port and a free API port, its JSON log
    in a file; returns once it listens (the premise link may still be coming up). ``sim``: the
    simulator it watches (None: a PBX the test plays itself)."""
    log = tmp / f"server-{config.stem}.log"
    args = ("serve", "--config", str(config), "--listen", "127.0.0.1:0")
    try:
        with log.open("wb") as err:
            served = launch(*args, "--api-listen", "127.0.0.1:0", stderr=err)
    except AssertionError as failed:
        raise AssertionError(f"{failed}\n{log.read_text(errors='replace')}") from None
    found = _API.search(served.banner)
    assert found is not None, served.banner
    return Site(served, int(found.group(1)), sim, log, config)


def stop_site(site: Site) -> str:
    """Stop the server, then the simulator if any (both must exit 0); the server's log."""
    text = stop_process(site.served.proc, site.log)
    if site.sim_or_none is not None:
        stop_process(site.sim_or_none.proc, site.sim_or_none.log)
    return text


def wait_until(what: str, check: Callable[[], bool], timeout: float = START_S) -> None:
    """Poll ``check`` (blocking) until it is true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def monitors_up(sim: Sim) -> bool:
    return set(PORT_DNS.values()) <= sim.monitored()


@contextlib.contextmanager
def running_site(
    tmp: Path, timers: dict[str, str] | None = None, premise: dict[str, str] | None = None
) -> Iterator[Site]:
    """The simulator and the server, up and linked (every port DN monitored); both stopped
    after."""
    sim = start_sim(tmp)
    try:
        site = start_server(tmp, sim, behind_config(tmp, sim.csta_port, timers, premise))
    except BaseException:
        stop_process(sim.proc, sim.log)
        raise
    try:
        wait_until("the simulator to monitor every port DN", lambda: monitors_up(sim))
        yield site
    finally:
        stop_site(site)


# --------------------------------------------------------------------------- IVR sessions


class Ivr:
    """An IVR session on the server: documents go out as XML text (as a driver writes them),
    answers come back typed. Unsolicited documents queue until :meth:`expect` takes them."""

    def __init__(self, client: IvrClient, login: LoginResp, session: str) -> None:
        self.client, self.login, self.session = client, login, session

    @classmethod
    async def open(cls, site: Site, *, monitor: bool = False, name: str = IVR) -> Ivr:
        """Connect and log in as ``name`` with ReportStatus (``monitor``: ServerMonitor='set')."""
        client = await IvrClient.connect("127.0.0.1", site.port)
        result = await client.login(name, server_monitor=True if monitor else None)
        assert result.response.Result == "Success", result
        return cls(client, result.response, result.call_id)

    @classmethod
    async def linked(cls, site: Site, *, monitor: bool = False) -> Ivr:
        """:meth:`open`, after which the server says its premise link is up: LoginResp
        ``Status='OK'`` (a session opened while it is down is closed and another one tried)."""
        deadline = time.monotonic() + START_S
        while True:
            ivr = await cls.open(site, monitor=monitor)
            if ivr.login.Status == "OK":
                return ivr
            await ivr.client.close()
            assert time.monotonic() < deadline, f"the premise link never came up: {ivr.login}"
            await asyncio.sleep(0.1)

    def send(self, call_id: str | None, body: str) -> None:
        """One document, ``body`` inside ``GctiMsg`` after the CallId."""
        self.client.send_raw(doc(call_id, body))

    async def expect(
        self,
        call_id: str | None,
        kind: type[M],
        timeout: float = TIMEOUT,
        where: Callable[[M], bool] | None = None,
    ) -> M:
        """The next unsolicited ``kind`` on ``call_id`` (any CallId if None) for which ``where``
        holds (others of the kind stay queued)."""
        received = await self.client.expect(
            call_id,
            types=kind,
            timeout=timeout,
            predicate=None if where is None else (lambda r: where(r.message)),  # type: ignore[arg-type]
        )
        assert isinstance(received.message, kind)
        return received.message

    async def ask(self, call_id: str | None, body: str, kind: type[M]) -> M:
        """Send ``body`` and return the next ``kind`` on that CallId."""
        self.send(call_id, body)
        return await self.expect(call_id, kind)

    async def nothing(self, seconds: float = 0.3) -> None:
        """Nothing at all arrives for ``seconds`` (MonitorInfo included)."""
        await self.client.expect_nothing(seconds)

    async def server_status(self, status: str, timeout: float = TIMEOUT) -> MonitorInfo:
        """The next ``MonitorInfo`` with a ``Server`` whose Status is ``status``."""
        return await self.expect(
            self.session,
            MonitorInfo,
            timeout,
            lambda m: m.Server is not None and m.Server.Status == status,
        )


@pytest.fixture
async def ivrs(site: Site) -> AsyncIterator[Callable[..., Awaitable[Ivr]]]:
    """Opens IVR sessions on the module's ``site`` (``await ivrs(monitor=..., linked=...)``;
    ``linked``: once LoginResp says the premise link is up); closes them after the test."""
    opened: list[Ivr] = []

    async def open_ivr(*, monitor: bool = False, linked: bool = True) -> Ivr:
        ivr = await (
            Ivr.linked(site, monitor=monitor) if linked else Ivr.open(site, monitor=monitor)
        )
        opened.append(ivr)
        return ivr

    yield open_ivr
    for ivr in opened:
        await ivr.client.close()
    # Shown by pytest only when the test failed: what the two processes logged meanwhile.
    print(f"--- server log ---\n{site.log_text()[-6000:]}")
    if site.sim_or_none is not None:
        print(f"--- simulator log ---\n{site.sim_or_none.log_text()[-4000:]}")


# --------------------------------------------------------------------------- IVR documents


def new_call(port: str, dnis: str = "", ani: str = "") -> str:
    """A Behind ``NewCall`` on IVR port ``port``, as the site's driver sent it."""
    extra = (f"<DNIS>{dnis}</DNIS>" if dnis else "") + (f"<ANI>{ani}</ANI>" if ani else "")
    return (
        '<NewCall CallControlMode="Network" Version="4.0">'
        f"<CalledNum>{port}</CalledNum>{extra}</NewCall>"
    )


CALL_INFO_REQ = "<CallInfoReq></CallInfoReq>"
END_CALL = '<EndCall EndCause="Normal"></EndCall>'


def udata_set(request_id: str, **values: str) -> str:
    nodes = "".join(f'<Node Name="{k}" Type="Str" Val="{v}"/>' for k, v in values.items())
    return (
        f'<UDataSet Action="Replace"><RequestId>{request_id}</RequestId>'
        f"<UDataEx>{nodes}</UDataEx></UDataSet>"
    )


def udata_get(request_id: str, *keys: str) -> str:
    return f'<UDataGet Keys="{":".join(keys)}"><RequestId>{request_id}</RequestId></UDataGet>'


def route_request(dn: str = "4200") -> str:
    return f'<RouteRequest RouteDN="{dn}"></RouteRequest>'


# --------------------------------------------------------------------------- checks


def nodes(kv: KvList | None) -> dict[str, str]:
    """The ``Node`` items of a key/value list, by name."""
    return {item.Name: item.Val for item in kv or () if isinstance(item, Node)}


async def ringing_then_established(ivr: Ivr, call_id: str) -> None:
    for event in ("Ringing", "Established"):
        status = await ivr.expect(call_id, CallStatus)
        assert status.Event == event


def cleared(site: Site, call: str) -> bool:
    """The simulator has forgotten the call or shows it cleared."""
    state = site.sim.call(call)
    return not state or state["state"] == "cleared"
