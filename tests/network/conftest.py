"""Network mode end to end: ``ivr-server serve`` on a temporary copy of
``examples/network.toml`` (free loopback ports, an API token), driven as a network IVR drives
it, with :class:`~ivr_server.client.IvrClient`, and through the HTTP API as an external router.

:func:`running_site` starts the server and yields once it listens; :class:`Ivr` is an IVR
session that sends documents written as XML text (as a driver does) and waits for typed
answers; :meth:`NetSite.nothing_left` checks through the API that no call is left anywhere: none
of the IVR side, none on a switch, none at a routing DN. Each test module keeps its server
(module-scoped) on one pytest-xdist worker: ``pytestmark = pytest.mark.xdist_group(__name__)``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ivr_server.client import IvrClient
from ivr_server.wire import Message
from tests.apihttp import api_request
from tests.behind.conftest import stop_process
from tests.integration.conftest import ROOT, Served, launch
from tests.integration.rawlink import doc

NETWORK_TOML = ROOT / "examples/network.toml"
IVR = "NetIVR"
SWITCH = "SW_Network"
ROUTING_DNS = tuple(str(8000 + i) for i in range(10))
ROUTED_TO = "7002"
"""Where the example's built-in rules route every call of 8000-8009."""
TOKEN = "netw0rk-t0ken"
TIMEOUT = 5.0
"""Longest wait for one document (a loaded 2-core machine)."""

M = TypeVar("M", bound=Message)

_API = re.compile(r"HTTP API[^\n]* on http://127\.0\.0\.1:([0-9]+)/")


@dataclass
class NetSite:
    """The server process, its IVR and API ports, its log and configuration."""

    served: Served
    api_port: int
    log: Path
    config: Path

    @property
    def port(self) -> int:
        return self.served.port

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def api(self, method: str, path: str, body: object = None, ok: tuple[int, ...] = ()) -> Any:
        """``METHOD /api/v1/PATH`` with the token; with ``ok``, the status must be one of them."""
        status, answer = self.request(method, path, body)
        if ok:
            assert status in ok, f"{method} {path} {body!r}: {status} {answer!r}"
        return answer

    def request(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        return api_request(self.api_port, TOKEN, method, path, body, TIMEOUT)

    def leftovers(self) -> dict[str, Any]:
        """What the API still shows: IVR-side calls, calls on the switches, calls at routing
        DNs (waiting or Network calls). Empty when nothing is left."""
        state = self.api("GET", "state", ok=(200,))
        left: dict[str, Any] = {}
        if state["calls"]:
            left["calls"] = [(c["call_id"], c["state"]) for c in state["calls"]]
        on_switches = {sw["name"]: sw["calls"] for sw in state["switches"] if sw["calls"]}
        if on_switches:
            left["switch calls"] = on_switches
        at_points = {
            rp["dn"]: [*rp["waiting"], *rp["network_calls"]]
            for rp in state["routing_points"]
            if rp["waiting"] or rp["network_calls"]
        }
        if at_points:
            left["routing points"] = at_points
        return left

    def nothing_left(self, timeout: float = TIMEOUT) -> None:
        """No call anywhere within ``timeout`` seconds (the last EndCall may still be on its
        way to the server)."""
        deadline = time.monotonic() + timeout
        while left := self.leftovers():
            assert time.monotonic() < deadline, f"left behind: {left}"
            time.sleep(0.05)

    def clean(self) -> None:
        """End every call still there (through the API), so that the next test starts clean."""
        for call in self.api("GET", "calls", ok=(200,)):
            self.request("POST", f"calls/{call['call_id']}/end-call", {})


def network_config(tmp: Path, edit: Callable[[str], str] | None = None) -> Path:
    """A copy of ``examples/network.toml`` (``edit``: changed by it; the ports come from the
    command line)."""
    text = NETWORK_TOML.read_text(encoding="utf-8")
    path = tmp / "network.toml"
    path.write_text(edit(text) if edit is not None else text, encoding="utf-8")
    return path


def start_site(tmp: Path, config: Path) -> NetSite:
    """``ivr-server serve --config CONFIG`` on a free IVR port and a free API port, with the
    API token in its environment; returns once it listens."""
    log = tmp / f"server-{config.stem}.log"
    args = ("serve", "--config", str(config), "--listen", "127.0.0.1:0")
    env = {**os.environ, "IVR_SERVER_API_TOKEN": TOKEN}
    try:
        with log.open("wb") as err:
            served = launch(*args, "--api-listen", "127.0.0.1:0", stderr=err, env=env)
    except AssertionError as failed:
        raise AssertionError(f"{failed}\n{log.read_text(errors='replace')}") from None
    found = _API.search(served.banner)
    assert found is not None, served.banner
    return NetSite(served, int(found.group(1)), log, config)


@contextlib.contextmanager
def running_site(tmp: Path, edit: Callable[[str], str] | None = None) -> Iterator[NetSite]:
    """The server on a copy of the example (``edit``: changed), stopped after (exit 0)."""
    site = start_site(tmp, network_config(tmp, edit))
    try:
        yield site
    finally:
        stop_process(site.served.proc, site.log)


def router_timeout(ms: int) -> Callable[[str], str]:
    """An edit of the example giving it a ``router-timeout`` of ``ms`` milliseconds."""

    def edit(text: str) -> str:
        line = f"router-timeout = {ms}"
        if re.search(r"(?m)^router-timeout\s*=", text):
            return re.sub(r"(?m)^router-timeout\s*=.*$", line, text)
        if re.search(r"(?m)^\[server\.timers\]", text):
            return re.sub(r"(?m)^\[server\.timers\]\s*$", f"[server.timers]\n{line}", text)
        return f"{text}\n[server.timers]\n{line}\n"

    return edit


class Ivr:
    """A network IVR's session: documents go out as XML text, answers come back typed.
    Unsolicited documents queue until :meth:`expect` takes them."""

    def __init__(self, client: IvrClient, session: str | None) -> None:
        self.client, self.session = client, session
        self.seq = 0

    @classmethod
    async def open(cls, site: NetSite, *, login: bool = True, name: str = IVR) -> Ivr:
        """Connect, and log in as ``name`` (``login``; optional in Network mode, G23)."""
        client = await IvrClient.connect("127.0.0.1", site.port)
        if not login:
            return cls(client, None)
        result = await client.login(name)
        assert result.response.Result == "Success", result
        return cls(client, result.call_id)

    def call_id(self) -> str:
        """A fresh CallId of this session."""
        self.seq += 1
        return f"N{id(self) % 10_000}-{self.seq}"

    def send(self, call_id: str | None, body: str) -> None:
        """One document, ``body`` inside ``GctiMsg`` after the CallId."""
        self.client.send_raw(doc(call_id, body))

    async def expect(self, call_id: str | None, kind: type[M], timeout: float = TIMEOUT) -> M:
        """The next ``kind`` on ``call_id`` (any CallId if None); others stay queued."""
        received = await self.client.expect(call_id, types=kind, timeout=timeout)
        assert isinstance(received.message, kind), received
        return received.message

    async def ask(self, call_id: str | None, body: str, kind: type[M]) -> M:
        """Send ``body`` and return the next ``kind`` on that CallId."""
        self.send(call_id, body)
        return await self.expect(call_id, kind)

    async def nothing(self, seconds: float = 0.3) -> None:
        """Nothing at all arrives for ``seconds``."""
        await self.client.expect_nothing(seconds)

    async def close(self) -> None:
        await self.client.close()


# --------------------------------------------------------------------------- IVR documents


def new_call(
    dn: str, *, control: str = "Network", ani: str = "5551000", dnis: str | None = None
) -> str:
    """A Network ``NewCall`` to routing DN ``dn`` (``control``: ``Network`` or ``Genesys``;
    ``dnis``: ``dn`` unless given, ``""``: none)."""
    dnis = dn if dnis is None else dnis
    return (
        f'<NewCall CallControlMode="{control}" Version="4.0"><CalledNum>{dn}</CalledNum>'
        + (f"<DNIS>{dnis}</DNIS>" if dnis else "")
        + f"<ANI>{ani}</ANI></NewCall>"
    )


def route_request(dn: str = "", udata: str = "") -> str:
    """``RouteRequest`` (its RouteDN is ignored in Network mode)."""
    return f'<RouteRequest RouteDN="{dn}">{udata}</RouteRequest>'


CONNECTED = "<Connected></Connected>"
END_CALL = '<EndCall EndCause="Normal"></EndCall>'


def failure(cause: str = "Busy") -> str:
    return f'<Failure FailureCause="{cause}"></Failure>'


def treat_status(status: str, ced: str = "") -> str:
    return f'<TreatStatus Status="{status}"' + (f' CED="{ced}"' if ced else "") + "></TreatStatus>"


def udata(**values: str) -> str:
    nodes = "".join(f'<Node Name="{k}" Type="Str" Val="{v}"/>' for k, v in values.items())
    return f"<UDataEx>{nodes}</UDataEx>"
