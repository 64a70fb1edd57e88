"""The web view's High availability card (issue 25; ``api/static/ha.js``) in a real browser: two
active nodes in this process sharing one ``memory://`` store, a call on each; both nodes' pages
show this node's role and epoch, both nodes and the same calls with the node holding each, and
no console error. A single node (``mode = "off"``) keeps the card hidden.

Skipped like ``test_webview.py`` (whose browser fixture it uses) when Chromium, its driver or
Selenium is missing, except under CI."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ivr_server.api import ApiServer
from ivr_server.config import default_config
from ivr_server.runtime import IvrServer
from tests.e2e.test_webview import Page, page
from tests.integration.conftest import LOOPBACK_0
from tests.integration.rawlink import start_call
from tests.integration.test_ha_active import (
    IVR,
    TOKEN,
    StartNode,
    active,
    driver,
    new_site,
    start_node,
    until,
)

__all__ = ["page", "start_node"]

pytestmark = pytest.mark.timeout(90)

READ_HA = """
const q = (sel) => [...document.querySelectorAll(sel)];
const card = document.getElementById("ha-card");
return {
  hidden: card.hidden,
  role: document.querySelector('[data-testid="ha-role"]')?.textContent ?? null,
  node: document.getElementById("ha-node").textContent,
  nodes: Object.fromEntries(q('tr[data-testid^="ha-node-"]').map((tr) => [
    tr.dataset.testid.slice("ha-node-".length), tr.dataset.role])),
  calls: Object.fromEntries(q('tr[data-testid^="ha-call-"]').map((tr) => [
    tr.dataset.testid.slice("ha-call-".length), [tr.dataset.node, tr.textContent]])),
};
"""


def base(server: IvrServer) -> str:
    host, port = server.api_addresses[0]
    return f"http://{host}:{port}"


async def shown(page: Page, server: IvrServer, check: Any, what: str) -> dict[str, Any]:
    """Open ``server``'s page (signed in) and read the HA card until ``check`` holds."""
    await page.run(f"location.href = {base(server) + '/?access_token=' + TOKEN!r}")
    loop = asyncio.get_running_loop()
    end = loop.time() + 10.0
    while True:
        try:
            found: dict[str, Any] = await page.run(READ_HA)
        except Exception:  # the page is still loading
            found = {}
        if found and check(found):
            return found
        assert loop.time() < end, f"the HA card did not show {what}: {found}"
        await asyncio.sleep(0.2)


async def test_both_nodes_pages_show_the_nodes_and_the_shared_calls(
    page: Page, start_node: StartNode
) -> None:
    site = new_site()
    a = await start_node("A", "memory://", site)
    b = await start_node("B", "memory://", site)
    la, lb = await driver(a), await driver(b)
    await start_call(la, "HA-1", port="1")
    await la.send(
        "HA-1",
        "<UDataSet Action='Add'><RequestId>1</RequestId><UDataEx>"
        "<Node Name='Segment' Type='Str' Val='Gold'/></UDataEx></UDataSet>",
    )
    assert (await la.recv_doc())[1].tag == "UDataResp"
    await start_call(lb, "HA-2", port="2")
    await until(lambda: active(a).peers.port_holder(IVR, "2") == "B")
    await until(lambda: active(b).peers.port_holder(IVR, "1") == "A")
    for server, name in ((a, "A"), (b, "B")):
        card = await shown(
            page,
            server,
            lambda c: not c["hidden"] and len(c["nodes"]) == 2 and len(c["calls"]) == 2,
            f"both nodes and both calls on {name}'s page",
        )
        assert card["role"] == "leader" and card["node"].startswith(name)
        assert card["nodes"] == {"A": "leader", "B": "leader"}
        assert {k: v[0] for k, v in card["calls"].items()} == {"HA-1": "A", "HA-2": "B"}
        assert "Segment=Gold" in card["calls"]["HA-1"][1]  # signed in: the user data
    await page.collect_errors()
    assert page.errors == []
    for link in (la, lb):
        await link.close()


async def test_a_single_node_hides_the_card(page: Page) -> None:
    base_config = default_config()
    config = base_config.model_copy(
        update={"api": base_config.api.model_copy(update={"token": TOKEN})}
    )
    server = IvrServer(config, listen=LOOPBACK_0, api=ApiServer, api_listen=LOOPBACK_0)
    await server.start()
    try:
        await page.run(f"location.href = {base(server) + '/?access_token=' + TOKEN!r}")
        await page.until(lambda p: p["loaded"], "the page loaded")
        await asyncio.sleep(0.5)  # the first /api/v1/nodes answered
        card = await page.run(READ_HA)
        assert card["hidden"] is True
        await page.collect_errors()
        assert page.errors == []
    finally:
        await server.stop()
