"""The live web view in a real browser: Debian's headless Chromium, driven by Selenium.

The real server runs in this process with its HTTP API on a free loopback port; IVR sessions
(``RawLink``) start calls, set user data, present calls on routing point 5001 (no router: they
wait there for the long Router Timeout) and log agents in. The page must show exactly what
``GET /api/v1/state`` says (every agent and the statistics, which come as lists, included),
follow an agent logging in on extension 7001 over the API (the README's example, no IVR port)
and an ``EndCall`` without being reloaded (the event stream), reconnect when the event stream
drops and go on following, end a call with its button, show the public view without user data
once signed out, and carry no browser console error. The page is opened with the API token in
its address (``/?access_token=``), which it keeps in sessionStorage and takes out of the address
bar. A full-page screenshot is taken under load (``WEBVIEW_SCREENSHOT=path`` chooses where;
``docs/webview.png`` is the one in the documentation).

Selenium is blocking, so every browser call runs in a worker thread (``asyncio.to_thread``) while
the server goes on serving from this test's event loop.

Skipped when Chromium, its driver or Selenium is missing, except under CI (``CI`` set), where the
missing piece is a failure: ``.ci/run`` installs them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from ivr_server.api import ApiServer
from ivr_server.config import ListenAddress, ServerConfig, default_config
from ivr_server.runtime import IvrServer
from tests.integration.rawlink import RawLink, start_call

ON_CI = bool(os.environ.get("CI"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

if not ON_CI:
    pytest.importorskip(
        "selenium", reason="the browser test needs selenium (pip install -e '.[dev]')"
    )
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "the browser test needs Chromium and its driver: apt-get install chromium chromium-driver",
            allow_module_level=True,
        )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

LOOPBACK_0 = ListenAddress(host="127.0.0.1", port=0)
TOKEN = "webview-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VIEWPORT = (1400, 900)
ROOT = Path(__file__).resolve().parents[2]
SWITCH = "SW_InFront"
RP_WAIT = "5001"
"""The routing point without a router: calls presented there wait for the Router Timeout."""

CALLS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    # CallId: (IVR, port, user data set with UDataSet Add)
    "WV-A1": ("IVR_1", "1", [("Segment", "Gold"), ("AccountId", "7731")]),
    "WV-A2": ("IVR_1", "2", [("Segment", "Silver"), ("Language", "fr")]),
    "WV-A3": ("IVR_1", "3", [("Segment", "Bronze")]),
    "WV-B4": ("IVR_1", "4", [("Reason", "billing")]),
    "WV-B5": ("IVR_1", "5", [("Reason", "support"), ("Menu", "2-1")]),
    "WV-B6": ("IVR_1", "6", []),
    "WV-C1": ("IVR_2", "1", [("Queue", "gold-line")]),
}
LOAD_SAMPLES = 6
"""Rate samples (one a second here) the charts show before the screenshot."""
AGENTS = f"/api/v1/agents/{SWITCH}"
README_LOGIN = {"agent_id": "A1", "queue": "6000", "work_mode": "AutoIn"}
"""The README's agent login, on extension 7001 (no IVR port)."""
AGENT_7001 = f"agent-{SWITCH}-7001"
QUEUE = f"stats-queues-{SWITCH}-6000"
PORT_AGENT_DNS = ("4010", "4011", "4101", "4102", "4103", "4104")
"""The DNs of the agents on IVR ports: IVR_1 ports 10 and 11, IVR_2's four (auto-login)."""
WAITING = ("WV-A1", "WV-A2", "WV-A3")
"""Calls presented on routing point 5001 (RouteRequest), waiting there."""

# -- what the page shows -------------------------------------------------------------------------

READ_PAGE = """
const q = (sel, root = document) => [...root.querySelectorAll(sel)];
const text = (el) => (el ? el.textContent.trim() : null);
return {
  loaded: document.body.dataset.loaded === "true",
  url: location.href,
  signedIn: document.getElementById("token-button").dataset.signedIn === "true",
  endButtons: q('[data-testid^="end-call-"]').length,
  live: document.getElementById("live").dataset.state,
  connects: Number(document.getElementById("live").dataset.connects ?? 0),
  marker: window.__marker ?? null,
  ports: Object.fromEntries(q('[data-testid^="port-"]').map((e) => [
    e.dataset.testid,
    {state: e.dataset.state, callId: e.dataset.callId ?? null,
     lines: q(".port-line", e).map(text)},
  ])),
  calls: Object.fromEntries(q('tr[data-testid^="call-"]').map((tr) => [
    tr.dataset.callId,
    {text: text(tr),
     udata: q(".chip", tr).map((c) => [text(c.querySelector(".k")), text(c.querySelector(".v"))])},
  ])),
  routingPoints: Object.fromEntries(q('[data-testid^="rp-waiting-"]').map((e) => [
    e.dataset.testid, text(e),
  ])),
  sessions: q('[data-testid^="session-"]').map((e) => e.dataset.client),
  switches: Object.fromEntries(q('[data-testid^="switch-"]').map((e) => [
    e.dataset.testid, e.dataset.link,
  ])),
  banner: document.getElementById("banner").hidden ? null : text(document.getElementById("banner")),
  events: q('[data-testid="event-log"] li[data-event]').map((e) => e.dataset.event),
  agents: Object.fromEntries(q('tr[data-testid^="agent-"]').map((tr) => [
    tr.dataset.testid, {agentId: tr.dataset.agentId, state: tr.dataset.agentState, text: text(tr)},
  ])),
  kpiAgents: text(document.getElementById("kpi-agents")),
  statsHidden: document.getElementById("stats-card").hidden,
  statistics: Object.fromEntries(q('tr[data-testid^="statistic-"]').map((tr) => [
    tr.dataset.testid.slice("statistic-".length), {result: tr.dataset.result, value: tr.dataset.value},
  ])),
  statRows: Object.fromEntries(q('tr[data-testid^="stats-"]').map((tr) => [
    tr.dataset.testid, Object.fromEntries(q("td[data-col]", tr).map((td) => [td.dataset.col, text(td)])),
  ])),
  rates: Object.fromEntries(q('[data-testid^="rate-"]').map((e) => [
    e.dataset.testid,
    {value: e.dataset.value === "" ? null : Number(e.dataset.value),
     samples: Number(e.dataset.samples)},
  ])),
};
"""

READ_BANNER = """
const banner = document.getElementById("banner");
return banner.hidden ? null : banner.textContent.trim();
"""


def rate(page: dict[str, Any], series: str) -> dict[str, Any]:
    """A rate chart as the page shows it: ``{"value", "samples"}`` (nothing yet: no samples)."""
    shown: dict[str, Any] = page["rates"].get(f"rate-{series}", {"value": None, "samples": 0})
    return shown


def norm(text: object) -> str:
    return re.sub(r"[^a-z]", "", str(text or "").lower())


def tile_state(ivr: dict[str, Any], port: dict[str, Any]) -> str:
    """The colour a port's tile must have (the page's rule, written again independently)."""
    if port.get("call"):
        return "in-call"
    if ivr.get("enabled") is False or port.get("available") is False:
        return "unavailable"
    agent = norm(port["agent"]["state"]) if port.get("agent") else ""
    if agent == "ready":
        return "ready"
    if agent in {"notready", "loggedin", "acw", "aftercallwork", "walkaway"}:
        return "not-ready"
    return "idle"


def udata_shown(items: list[dict[str, Any]]) -> list[list[str]]:
    """What the chips of a call's user data must read: [name, value]."""
    shown = []
    for item in items:
        if "list" in item:
            value = ", ".join(f"{sub['name']}={sub.get('value', '')}" for sub in item["list"])
        else:
            value = str(item.get("value", ""))
        shown.append([item["name"], value])
    return shown


TIMED_STATS = {"ExpectedWaitTime", "CurrMaxCallWaitingTime"}
"""Statistics that move with the clock alone: the page shows them as of its last read."""
COUNTS = ("waiting", "ready", "not_ready", "busy", "logged_in", "calls")
"""The count columns of the statistics' tables (the others are times)."""


def agents_shown(state: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Every agent of every switch, as the Agents card must list them: (agent id, state)."""
    return {
        f"agent-{sw['name']}-{dn['number']}": (dn["agent"]["agent_id"], dn["agent"]["state"])
        for sw in state["switches"]
        for dn in sw["dns"]
        if dn["agent"] is not None
    }


def stat_rows_shown(stats: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The counts of each row of the statistics' tables (routing points, queues, groups, IVRs)."""
    rows: dict[str, dict[str, str]] = {}
    for key, items in stats.items():
        if key == "statistics" or not isinstance(items, list):
            continue
        for item in items:
            ident = "-".join(str(item[k]) for k in ("switch", "dn", "name") if k in item)
            rows[f"stats-{key}-{ident}"] = {c: f"{item[c]:,}" for c in COUNTS if c in item}
    return rows


def assert_page_matches(page: dict[str, Any], state: dict[str, Any]) -> None:
    """Everything the page shows agrees with ``GET /api/v1/state``."""
    expected_tiles = {
        f"port-{ivr['name']}-{port['number']}": tile_state(ivr, port)
        for ivr in state["ivrs"]
        for port in ivr["ports"]
    }
    assert {k: v["state"] for k, v in page["ports"].items()} == expected_tiles
    for ivr in state["ivrs"]:
        for port in ivr["ports"]:
            tile = page["ports"][f"port-{ivr['name']}-{port['number']}"]
            assert tile["callId"] == (port["call"]["call_id"] if port["call"] else None)

    assert set(page["calls"]) == {call["call_id"] for call in state["calls"]}
    for call in state["calls"]:
        row = page["calls"][call["call_id"]]
        assert row["udata"] == udata_shown(call["user_data"]), call["call_id"]
        if call.get("ani"):
            assert call["ani"] in row["text"]

    assert page["routingPoints"] == {
        f"rp-waiting-{rp['switch']}-{rp['dn']}": str(len(rp["waiting"]))
        for rp in state["routing_points"]
    }
    assert sorted(page["sessions"]) == sorted(s["client_name"] or "" for s in state["sessions"])
    assert page["switches"] == {
        f"switch-{sw['name']}": "up" if sw["link_up"] else "down" for sw in state["switches"]
    }

    assert {k: (v["agentId"], v["state"]) for k, v in page["agents"].items()} == agents_shown(state)
    ready = sum(agent_state == "Ready" for _, agent_state in agents_shown(state).values())
    assert page["kpiAgents"] == f"{ready} / {len(agents_shown(state))}"
    stats = state["stats"]
    assert not page["statsHidden"]
    assert set(page["statistics"]) == {item["name"] for item in stats["statistics"]}
    for item in stats["statistics"]:
        if item["stat_type"] not in TIMED_STATS:
            shown = page["statistics"][item["name"]]
            assert shown == {"result": item["result"], "value": item["text"]}, item
    expected_rows = stat_rows_shown(stats)
    assert set(page["statRows"]) == set(expected_rows)
    for row, counts in expected_rows.items():
        assert {c: page["statRows"][row][c] for c in counts} == counts, row


# -- the browser ---------------------------------------------------------------------------------


def open_browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--disable-background-networking",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
        "--lang=en-US",
        f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        service=Service(executable_path=CHROMEDRIVER or "/usr/bin/chromedriver"), options=options
    )
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False},
    )
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "light"}]},
    )
    driver.set_page_load_timeout(10)
    driver.set_script_timeout(5)
    return driver


def full_page_screenshot(driver: webdriver.Chrome, path: Path) -> bool:
    """The whole page, VIEWPORT[0] wide (down to the Agents and Statistics cards), then the
    viewport back as it was."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    metrics = {"width": VIEWPORT[0], "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
    try:
        return bool(driver.save_screenshot(str(path)))
    finally:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {**metrics, "height": VIEWPORT[1]}
        )


def console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """Browser console entries at level SEVERE (errors, uncaught exceptions, failed loads)."""
    get_log = cast(Callable[[str], list[dict[str, Any]]], driver.get_log)  # untyped upstream
    return [entry for entry in get_log("browser") if entry.get("level") == "SEVERE"]


class Page:
    """The browser, driven from the event loop: every call runs in a worker thread."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver
        self.errors: list[dict[str, Any]] = []

    async def run(self, script: str) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, script)

    async def read(self) -> dict[str, Any]:
        page: dict[str, Any] = await self.run(READ_PAGE)
        return page

    async def until(
        self, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Read the page until ``check`` holds; fail with what the page showed last."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            page = await self.read()
            if check(page):
                return page
            if loop.time() > deadline:
                shown = json.dumps(page, indent=1)[:4000]
                raise AssertionError(f"the page did not show {what} within {timeout}s:\n{shown}")
            await asyncio.sleep(0.1)

    async def collect_errors(self) -> None:
        self.errors += await asyncio.to_thread(console_errors, self.driver)


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("CI must run the browser test: .ci/run installs chromium and chromium-driver")
    driver = await asyncio.to_thread(open_browser)
    try:
        yield Page(driver)
    finally:
        await asyncio.to_thread(driver.quit)


# -- the server and its IVRs ---------------------------------------------------------------------


def config() -> ServerConfig:
    """The default configuration with a Router Timeout long enough to see calls wait, and a
    token (user data is shown with it only)."""
    base = default_config()
    timers = base.server.timers.model_copy(update={"router_timeout": 120.0})
    return base.model_copy(
        update={
            "server": base.server.model_copy(update={"timers": timers}),
            "api": base.api.model_copy(update={"token": TOKEN}),
        }
    )


@pytest.fixture
async def server() -> AsyncIterator[IvrServer]:
    # Rates sampled every second (5 s in production) so that the charts fill within the test.
    api = functools.partial(ApiServer, rate_interval=1.0)
    server = IvrServer(config(), listen=(LOOPBACK_0,), api_listen=(LOOPBACK_0,), api=api)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def links(server: IvrServer) -> AsyncIterator[Callable[[], Awaitable[RawLink]]]:
    opened: list[RawLink] = []

    async def open_link() -> RawLink:
        link = await RawLink.open(server.port)
        opened.append(link)
        return link

    yield open_link
    for link in opened:
        await link.close()


def api_base(server: IvrServer) -> str:
    host, port = server.api_addresses[0]
    return f"http://{host}:{port}"


async def api_state(
    http: aiohttp.ClientSession, base: str, headers: dict[str, str] = AUTH
) -> dict[str, Any]:
    async with http.get(f"{base}/api/v1/state", headers=headers) as response:
        assert response.status == 200
        state: dict[str, Any] = await response.json()
        return state


async def timeline_until(
    page: Page, check: Callable[[list[list[str]]], bool], timeout: float = 5.0
) -> list[list[str]]:
    """Read the timeline card's rows (``[kind, name]`` each) until ``check`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    script = """return [...document.querySelectorAll('#timeline tr[data-kind]')]
        .map((row) => [row.dataset.kind, row.dataset.name])"""
    while True:
        rows: list[list[str]] = await page.run(script)
        if check(rows):
            return rows
        assert loop.time() < deadline, f"the timeline showed {rows}"
        await asyncio.sleep(0.1)


async def reply(link: RawLink, call_id: str | None, tag: str, marker: bytes = b"") -> None:
    """Read ``link`` until a ``tag`` document for ``call_id`` (containing ``marker``) arrives;
    whatever comes before it is skipped."""
    while True:
        got_id, message, raw = await link.recv_doc()
        if message.tag == tag and got_id == call_id and marker in raw:
            return


async def set_udata(link: RawLink, call_id: str, items: list[tuple[str, str]], req: int) -> None:
    nodes = "".join(f'<Node Name="{k}" Type="Str" Val="{v}"/>' for k, v in items)
    await link.send(
        call_id,
        f'<UDataSet Action="Add"><RequestId>{req}</RequestId><UDataEx>{nodes}</UDataEx></UDataSet>',
    )
    await reply(link, call_id, "UDataResp")


async def agent(link: RawLink, login: str, port: str, *requests: str) -> None:
    """Agent control on an IVR_1 port (on the session's login CallId); an AgentQuery after the
    requests reads up to their end."""
    for n, request in enumerate(requests):
        await link.send(login, f'<{request} ReqId="{port}{n}" PortNum="{port}" Queue="6000"/>')
    await link.send(login, f'<AgentQuery ReqId="Q{port}" PortNum="{port}"/>')
    await reply(link, login, "MonitorInfo", f"ReqId='Q{port}'".encode())


async def load(link: RawLink, stop: asyncio.Event, limit: int = 4000) -> int:
    """Short calls, one after another on IVR_1 ports 20-27, until ``stop`` (bounded)."""
    done = 0
    while not stop.is_set() and done < limit:
        call_id = f"LOAD-{done}"
        await start_call(link, call_id, port=str(20 + done % 8), extra="<ANI>5550199</ANI>")
        await set_udata(link, call_id, [("Load", str(done))], 500 + done)
        await link.send(call_id, '<EndCall EndCause="Normal"/>')
        done += 1
        await asyncio.sleep(0.02)
    return done


async def act(http: aiohttp.ClientSession, base: str, path: str, body: dict[str, Any]) -> None:
    """An API action with the token; it must succeed."""
    async with http.post(f"{base}{path}", json=body, headers=AUTH) as response:
        assert response.status == 200, (path, response.status, await response.text())


def screenshot_path(tmp_path: Path) -> Path:
    """Where the screenshot goes: ``WEBVIEW_SCREENSHOT`` (relative to the repository) or tmp."""
    wanted = os.environ.get("WEBVIEW_SCREENSHOT")
    path = (ROOT / wanted) if wanted else tmp_path / "webview.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# -- the test ------------------------------------------------------------------------------------


async def test_live_view_shows_the_server_and_follows_it(
    server: IvrServer,
    links: Callable[[], Awaitable[RawLink]],
    page: Page,
    tmp_path: Path,
) -> None:
    base = api_base(server)
    ivr1 = await links()
    ivr2 = await links()
    await ivr1.login("L1", "IVR_1")
    await ivr2.login("L2", "IVR_2", version="3.0")

    # Agents on IVR_1 (IVR_2 logs its own in, Ready, at start): 10 ready, 11 not ready.
    await agent(ivr1, "L1", "10", "AgentLogin AgentId='5510' Password=''", "AgentReady")
    await agent(ivr1, "L1", "11", "AgentLogin AgentId='5511' Password=''")

    for req, (call_id, (ivr, port, udata)) in enumerate(CALLS.items(), 100):
        link = ivr1 if ivr == "IVR_1" else ivr2
        version = "4.0" if ivr == "IVR_1" else "3.0"
        await start_call(
            link, call_id, port, f"<DNIS>8005550{port}</DNIS><ANI>555010{req}</ANI>", version
        )
        if udata:
            await set_udata(link, call_id, udata, req)
    for call_id in WAITING:
        await ivr1.send(call_id, f'<RouteRequest RouteDN="{RP_WAIT}"/>')

    async with aiohttp.ClientSession() as http:
        # The API itself agrees with what the IVRs did (the page is then checked against it).
        state = await api_state(http, base)
        assert {c["call_id"] for c in state["calls"]} == set(CALLS)
        waiting = {rp["dn"]: len(rp["waiting"]) for rp in state["routing_points"]}
        assert waiting[RP_WAIT] == len(WAITING)

        # ---- the page shows the server's state
        await asyncio.to_thread(page.driver.get, f"{base}/?access_token={TOKEN}")
        shown = await page.until(
            lambda p: p["loaded"] and len(p["calls"]) == len(CALLS) and p["live"] == "live",
            "the calls, with the event stream connected",
        )
        assert shown["signedIn"] and "access_token" not in shown["url"]
        assert shown["endButtons"] == len(CALLS)
        state = await api_state(http, base)
        assert_page_matches(shown, state)
        # ... and what the IVRs did, independently of the API's words
        for call_id, (ivr, port, udata) in CALLS.items():
            assert shown["ports"][f"port-{ivr}-{port}"]["state"] == "in-call"
            assert shown["ports"][f"port-{ivr}-{port}"]["callId"] == call_id
            assert [tuple(chip) for chip in shown["calls"][call_id]["udata"]] == udata
        assert shown["ports"]["port-IVR_1-10"]["state"] == "ready"
        assert shown["ports"]["port-IVR_1-11"]["state"] == "not-ready"
        assert shown["ports"]["port-IVR_1-12"]["state"] == "idle"
        assert shown["ports"]["port-IVR_2-2"]["state"] == "ready"
        assert shown["routingPoints"][f"rp-waiting-{SWITCH}-{RP_WAIT}"] == str(len(WAITING))
        assert sorted(shown["sessions"]) == ["IVR_1", "IVR_2"]
        assert shown["switches"] == {f"switch-{SWITCH}": "up"}
        # the statistics, which the server sends as lists: every configured one, and a table of
        # routing points, queues, agent groups and IVRs (queue 6000: IVR_2's 3 idle agents and
        # 5510 ready, 9101 on a call, 5511 not ready)
        assert not shown["statsHidden"]
        assert shown["statistics"]["ReadyAgents_6000"] == {"result": "Success", "value": "4"}
        assert shown["statistics"]["Calls_IVR_2"] == {"result": "Success", "value": "1"}
        assert shown["statRows"][QUEUE] == {
            "dn": f"6000{SWITCH}",
            "ready": "4",
            "not_ready": "1",
            "busy": "1",
            "logged_in": "6",
        }
        assert shown["statRows"]["stats-ivrs-IVR_1"] == {"name": "IVR_1", "calls": "6"}
        assert shown["statRows"][f"stats-routing_points-{SWITCH}-{RP_WAIT}"]["waiting"] == "3"
        assert set(shown["agents"]) == {f"agent-{SWITCH}-{dn}" for dn in PORT_AGENT_DNS}
        assert shown["kpiAgents"] == "5 / 6"
        assert "port in call" in shown["agents"][f"agent-{SWITCH}-4101"]["text"]  # WV-C1's port
        assert "port in call" not in shown["agents"][f"agent-{SWITCH}-4102"]["text"]

        # ---- an agent logs in on extension 7001, not an IVR port (the README's example): the
        # page lists and counts it and the statistics follow, without a reload
        await page.run("window.__marker = 'still the same document'")
        await act(http, base, f"{AGENTS}/7001/login", README_LOGIN)
        shown = await page.until(
            lambda p: (
                p["agents"].get(AGENT_7001, {}).get("state") == "Ready"
                and p["statistics"]["ReadyAgents_6000"]["value"] == "5"
                and p["statRows"][QUEUE]["ready"] == "5"
                and p["kpiAgents"] == "6 / 7"
            ),
            "agent A1 on 7001 Ready, counted in queue 6000 and in the summary",
        )
        row = shown["agents"][AGENT_7001]
        assert row["agentId"] == "A1" and "Extension" in row["text"] and "Auto in" in row["text"]
        assert_page_matches(shown, await api_state(http, base))
        await act(http, base, f"{AGENTS}/7001/not-ready", {"work_mode": "AfterCallWork"})
        shown = await page.until(
            lambda p: (
                p["agents"][AGENT_7001]["state"] == "NotReady"
                and p["statistics"]["ReadyAgents_6000"]["value"] == "4"
                and p["statRows"][QUEUE]["not_ready"] == "2"
            ),
            "agent A1 Not ready, queue 6000's counts following",
        )
        assert "After call work" in shown["agents"][AGENT_7001]["text"]
        assert_page_matches(shown, await api_state(http, base))

        # ---- an EndCall over GLI: the same document follows, without a reload
        await ivr1.send("WV-A2", '<EndCall EndCause="Normal"/>')
        shown = await page.until(
            lambda p: (
                "WV-A2" not in p["calls"]
                and p["ports"]["port-IVR_1-2"]["state"] == "idle"
                and p["routingPoints"][f"rp-waiting-{SWITCH}-{RP_WAIT}"] == str(len(WAITING) - 1)
                and p["events"].count("EventReleased") == 1
            ),
            "the ended call gone, its port idle, one call less waiting, EventReleased listed",
            timeout=5.0,
        )
        assert shown["marker"] == "still the same document"
        assert_page_matches(shown, await api_state(http, base))

        # ---- the event stream drops: the page reconnects and goes on following
        await cast(ApiServer, server.api).hub.close_all()
        await page.until(
            lambda p: p["connects"] == 2 and p["live"] == "live", "the event stream reconnected"
        )
        await ivr1.send("WV-B4", '<EndCall EndCause="Normal"/>')
        shown = await page.until(
            lambda p: (
                "WV-B4" not in p["calls"]
                and p["ports"]["port-IVR_1-4"]["state"] == "idle"
                and p["events"].count("EventReleased") == 2
            ),
            "the second ended call gone and its EventReleased listed",
        )
        assert shown["marker"] == "still the same document"
        assert_page_matches(shown, await api_state(http, base))

        # ---- the operator ends a call from the page: its IVR gets EndCall Timeout, the port is
        # free, and the page follows
        await page.run("window.confirm = () => true")
        await page.run("""document.querySelector('[data-testid="end-call-WV-B5"]').click()""")
        await asyncio.wait_for(reply(ivr1, "WV-B5", "EndCall", b"EndCause='Timeout'"), 5.0)
        shown = await page.until(
            lambda p: "WV-B5" not in p["calls"] and p["ports"]["port-IVR_1-5"]["state"] == "idle",
            "the call ended from the page gone and its port idle",
        )
        assert shown["marker"] == "still the same document"
        assert_page_matches(shown, await api_state(http, base))

        # ---- a call clicked: its timeline, user data as keys only, followed live (a refused
        # request appears without another click), then closed
        await page.run("""document.querySelector('[data-testid="call-WV-A1"] td').click()""")
        rows = await timeline_until(page, lambda rows: ["ivr-in", "UDataSet"] in rows)
        assert rows[0] == ["ivr-in", "NewCall"] and ["ivr-out", "CallStatus"] in rows
        text = await page.run("return document.getElementById('timeline').textContent")
        assert "AccountId" in text and "7731" not in text  # keys, never values
        await ivr1.send("WV-A1", "<RetrieveCall/>")  # nothing to retrieve: refused
        await asyncio.wait_for(reply(ivr1, "WV-A1", "CallError"), 5.0)
        rows = await timeline_until(page, lambda rows: ["error", "CallError"] in rows)
        assert (
            await page.run("return document.getElementById('timeline-status').textContent")
            == "live"
        )
        await page.run("""document.querySelector('[data-testid="timeline-close"]').click()""")
        assert await page.run("return document.getElementById('timeline-card').hidden")

        # ---- under load: rates move, the screenshot shows it
        loader = await links()
        await loader.login("LD", "IVR_1")
        stop = asyncio.Event()
        traffic = asyncio.create_task(load(loader, stop))
        try:
            await page.until(
                lambda p: (
                    rate(p, "documents_in")["samples"] >= LOAD_SAMPLES
                    and (rate(p, "documents_in")["value"] or 0) > 0
                    and (rate(p, "calls_started")["value"] or 0) > 0
                ),
                f"{LOAD_SAMPLES} samples of rates, the last with calls and documents",
                timeout=LOAD_SAMPLES + 8.0,
            )
            path = screenshot_path(tmp_path)
            assert await asyncio.to_thread(full_page_screenshot, page.driver, path)
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        finally:
            stop.set()
            calls_made = await traffic
        assert calls_made > 0

        shown = await page.until(
            lambda p: not any(c.startswith("LOAD-") for c in p["calls"]),
            "the load's calls gone",
        )
        assert shown["marker"] == "still the same document"
        assert_page_matches(shown, await api_state(http, base))

        # ---- signed out: the public view, without user data, caller numbers or buttons
        await page.run("""document.querySelector('[data-testid="token-button"]').click()""")
        public = await api_state(http, base, headers={})
        assert public["redacted"] is True
        shown = await page.until(
            lambda p: (
                p["live"] == "public"
                and not p["signedIn"]
                and p["endButtons"] == 0
                and set(p["calls"]) == {c["call_id"] for c in public["calls"]}
                and all(not row["udata"] for row in p["calls"].values())
            ),
            "the public view: the calls without user data",
        )
        assert shown["marker"] == "still the same document"
        for row in shown["calls"].values():
            assert "555010" not in row["text"] and "hidden" in row["text"]
        # agents and statistics are public: still there
        assert shown["agents"][AGENT_7001]["agentId"] == "A1" and not shown["statsHidden"]
        assert await page.run("return sessionStorage.getItem('ivr-server.token')") is None

        await page.collect_errors()
        assert page.errors == [], f"the browser console reported errors: {page.errors}"

        # ---- a token the server refuses: forgotten, the public view, and a banner that stays
        # (state reads do not clear it) until clicked
        await asyncio.to_thread(page.driver.get, f"{base}/?access_token=wrong-{TOKEN}")
        shown = await page.until(
            lambda p: p["loaded"] and p["live"] == "public" and not p["signedIn"],
            "the public view after a refused token",
        )
        assert "access_token" not in shown["url"]
        await page.until(lambda p: p["banner"] is not None, "the banner")
        await asyncio.sleep(3.5)  # a state read or more (every 3 s in the public view)
        banner = await page.run(READ_BANNER)
        assert banner is not None and "API token was refused" in banner
        await page.run("""document.querySelector('[data-testid="banner"]').click()""")
        assert await page.run(READ_BANNER) is None
        assert await page.run("return sessionStorage.getItem('ivr-server.token')") is None

    # the refused token's requests are the only errors: 401s, logged by Chromium as failed loads
    await page.collect_errors()
    # (a failed load says "status of 401 (Unauthorized)", the event stream's refused handshake
    # "Unexpected response code: 401" at the end of its line: both are the 401)
    assert page.errors and all(re.search(r"\b401\b", entry["message"]) for entry in page.errors), (
        page.errors
    )


READ_NETWORK = f"""
const text = (e) => (e ? e.textContent.trim() : null);
const rp = "{SWITCH}-5000";
return {{
  loaded: document.body.dataset.loaded === "true",
  mode: text(document.querySelector('[data-testid="mode-NW1"]')),
  state: text(document.querySelector('tr[data-testid="call-NW1"] .pill')),
  count: text(document.querySelector(`[data-testid="rp-network-count-${{rp}}"]`)),
  items: [...document.querySelectorAll(`[data-testid="rp-network-${{rp}}"] li`)]
    .map((e) => e.dataset.callId),
}};
"""


async def test_network_calls_are_shown(
    server: IvrServer, links: Callable[[], Awaitable[RawLink]], page: Page
) -> None:
    """A Network-mode call (NewCall to routing point 5000, routed by its built-in rules, waiting
    for the IVR's Connected): a Network badge with its routing DN in the calls, and the routing
    point's Network calls; both gone once the call ends; no console error."""
    link = await links()
    await link.login("L1", "IVR_1")
    await link.send(
        "NW1",
        '<NewCall CallControlMode="Network" Version="4.0"><CalledNum>5000</CalledNum></NewCall>',
    )
    await link.send("NW1", '<RouteRequest RouteDN="5000"/>')
    await reply(link, "NW1", "RouteResponse")
    await asyncio.to_thread(page.driver.get, f"{api_base(server)}/?access_token={TOKEN}")

    async def network(check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while True:
            shown: dict[str, Any] = await page.run(READ_NETWORK)
            if shown["loaded"] and check(shown):
                return shown
            assert loop.time() < deadline, f"the page showed {shown}"
            await asyncio.sleep(0.1)

    shown = await network(lambda p: p["mode"] is not None and p["count"] is not None)
    assert "Network" in shown["mode"] and "routing DN 5000" in shown["mode"], shown
    assert shown["state"] == "Routed" and shown["count"] == "1" and shown["items"] == ["NW1"]
    await link.send("NW1", "<Connected/>")
    await link.send("NW1", '<EndCall EndCause="Normal"/>')
    await network(lambda p: p["mode"] is None and p["count"] is None and not p["items"])
    await page.collect_errors()
    assert page.errors == [], f"the browser console reported errors: {page.errors}"
