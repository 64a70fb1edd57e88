"""Standbys listed in ``GET /api/v1/nodes`` (issue 25, gap 6; docs/ha.md §9): every node, leader
or standby, writes a presence record with a TTL each poll (``runtime/ha_presence.py``), and every
node's API lists them. Two real ``ivr-server serve`` processes of a hot-standby pair and a real
redis-server (``tests/ha/conftest.py``: lease 1 s, poll 0.1 s, so a record lives 1 s)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.ha.conftest import LEASE, Cluster, Node, cluster, default_body

__all__ = ["cluster"]  # the fixture, imported to be used here

pytestmark = [pytest.mark.xdist_group(__name__), pytest.mark.timeout(120)]

ROLE_S = 15.0
"""Longest wait for a node's first role (start-up on a loaded machine)."""
WAIT_S = 10.0
"""Longest wait for a listing to show what is expected (polls, a loaded machine)."""


def listed(node: Node) -> dict[str, dict[str, Any]]:
    """``GET /api/v1/nodes`` of ``node``: its nodes by id."""
    status, answer = node.request("GET", "nodes")
    assert status == 200, answer
    return {entry["id"]: entry for entry in answer["nodes"]}


def wait_listing(node: Node, check: Any, what: str) -> dict[str, dict[str, Any]]:
    """Poll ``node``'s listing until ``check(listing)``; the listing."""
    deadline = time.monotonic() + WAIT_S
    seen: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        seen = listed(node)
        if check(seen):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{node.name}: not {what} within {WAIT_S} s: {seen}\n{node.log_tail()}")


def test_standbys_are_listed_by_every_node_and_lapse_when_killed(cluster: Cluster) -> None:
    a = cluster.add("a", default_body())
    a.wait_role("leader", ROLE_S)
    b = cluster.add("b", default_body())
    b.wait_role("standby", ROLE_S)
    for viewer in (a, b):
        seen = wait_listing(viewer, lambda s: {"a", "b"} <= set(s), "listing a and b")
        leader, standby = seen["a"], seen["b"]
        assert leader["role"] == "leader" and leader["present"] is True, leader
        assert [slot["slot"] for slot in leader["slots"]] == ["primary"], leader
        assert standby["role"] == "standby" and standby["present"] is True, standby
        assert standby["slots"] == [], standby
        assert standby["self"] is (viewer is b) and leader["self"] is (viewer is a)
        assert standby["mode"] == "hot" and leader["mode"] == "hot"
        assert f"127.0.0.1:{b.port}" in standby["ivr"], standby
        assert f"127.0.0.1:{b.api_port}" in standby["api"], standby
        assert f"127.0.0.1:{a.api_port}" in leader["api"], leader
        assert 0.0 <= standby["age"] < WAIT_S and 0.0 < standby["presence_left"] <= LEASE
        assert standby["version"] and standby["started_at"] > 0
    status, answer = a.request("GET", "nodes")
    assert status == 200 and answer["totals"]["nodes"] == 2, answer

    b.kill9()
    killed = time.monotonic()
    wait_listing(a, lambda s: "b" not in s, "without the killed standby")
    gone_after = time.monotonic() - killed
    assert gone_after < LEASE + WAIT_S  # the record's TTL (1 s) plus polls on a loaded machine
    status, answer = a.request("GET", "nodes")
    assert status == 200 and answer["totals"]["nodes"] == 1, answer
    assert listed(a)["a"]["present"] is True  # the leader goes on writing its own


async def test_a_failed_write_is_counted_not_raised() -> None:
    """The writer never raises into the role loop: a store that does not answer is counted (and
    logged once); nothing is written while the node has the store as lost; at most one write per
    poll."""
    from types import SimpleNamespace

    from ivr_server.config import HaConfig
    from ivr_server.runtime.ha_presence import PresenceWriter, decode_presence
    from ivr_server.store import MemoryStore

    store = MemoryStore(site="t")
    server = SimpleNamespace(addresses=[("127.0.0.1", 3021)], api_addresses=[], started_at=1.0)
    node = SimpleNamespace(
        node_id="n1",
        role="standby",
        mode="hot",
        epoch=0,
        store=store,
        store_state="ok",
        config=HaConfig(mode="hot", store="memory://", poll=0.2, lease=1.0),
        server=server,
    )
    writer = PresenceWriter(node)
    store.down = True
    await writer.tick(0.0)
    await writer.tick(0.1)  # within the poll: not tried again
    assert (writer.written, writer.failed) == (0, 1)
    store.down = False
    node.store_state = "lost"
    await writer.tick(1.0)
    assert (writer.written, writer.failed) == (0, 1)
    node.store_state = "ok"
    await writer.tick(1.0)
    assert writer.written == 1
    record = decode_presence((await store.presence())["n1"].record)
    assert record["role"] == "standby" and record["ivr"] == ["127.0.0.1:3021"]
    assert decode_presence(b"not json") == {} and decode_presence(b"[1]") == {}
