"""High availability's runtime (``runtime/ha.py``, issue 25): two real ``IvrServer`` nodes of one
process over real TCP, sharing one store, driven like a hot-standby driver drives them (the same
documents to both, in the same order).

The fast variant shares a ``memory://`` store (the reference semantics of ``store/memory.py``);
one variant runs the same fail-over against a real ``redis-server`` (``tests/redisproc.py``).
What is checked: the standby answers only ``LoginReq`` (and ``FlowControl``); a stopped leader's
calls are answered by the standby within ``lease`` + 1 s; replies wait for their batch's
acknowledgement (``durability = primary``) and not with ``async``; a request the old leader
never committed is replayed once; a fenced leader stops answering and closes its sessions; a lost
store means ``FlowControl On``, then ``Off`` when it is back; warm standby listens only once it
leads; ``GET /api/v1/ha`` and the ``ivr_server_ha_*`` metrics; ``mode = "off"`` has no node.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import pytest

from ivr_server.config import HaConfig, ListenAddress, ServerConfig, default_config
from ivr_server.runtime import IvrServer
from ivr_server.store import Batch, MemoryStore, StateStore, StoreUnavailable
from ivr_server.store.memory import shared_memory_store
from ivr_server.wire import GliType, encode_frame
from ivr_server.wire import messages as m
from tests.integration.rawlink import RawLink, new_call_body
from tests.redisproc import RedisPair, RedisProcess, redis_pair, redis_server

if TYPE_CHECKING:
    from ivr_server.runtime.connection import IvrLinkProtocol

__all__ = ["redis_pair", "redis_server"]  # the fixtures, imported to be used here

LOOPBACK_0 = (ListenAddress(host="127.0.0.1", port=0),)
DEFAULT_TOML = Path(__file__).resolve().parents[2] / "src/ivr_server/config/default.toml"
LEASE = 0.6
POLL = 0.05
_sites = itertools.count()

Start = Callable[..., Awaitable[IvrServer]]


def ha_config(
    mode: str = "hot",
    *,
    node: str,
    site: str,
    store: str = "memory://",
    durability: str = "primary",
    on_store_loss: str = "pause",
    max_queued: int = 200_000,
    wait_timeout: float = 0.05,
    lease: float = LEASE,
) -> ServerConfig:
    """The built-in configuration (IVR_1, ports 1..32 on the In-Front switch) with ``[ha]``."""
    ha = HaConfig(
        mode=mode,
        node_id=node,
        store=store,
        site=site,
        lease=lease,
        poll=POLL,
        durability=durability,
        on_store_loss=on_store_loss,
        store_timeout=0.5,
        max_queued=max_queued,
        wait_timeout=wait_timeout,
    )
    return default_config().model_copy(update={"ha": ha})


@pytest.fixture
def site() -> str:
    """A site of its own per test: the ``memory://`` store of the process is shared."""
    return f"t{next(_sites)}"


@pytest.fixture
async def start_node() -> AsyncIterator[Start]:
    servers: list[IvrServer] = []

    async def start(
        config: ServerConfig, *, store: StateStore | None = None, **kwargs: Any
    ) -> IvrServer:
        kwargs.setdefault("api_listen", ())
        server = IvrServer(config, listen=kwargs.pop("listen", LOOPBACK_0), **kwargs)
        if store is not None:
            assert server.ha is not None
            server.ha.store = store
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        with contextlib.suppress(Exception):
            await server.stop()


async def wait_for(check: Callable[[], bool], timeout: float = 3.0, what: str = "") -> float:
    """Wait until ``check()``; the seconds it took."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while not check():
        if loop.time() - began > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)
    return loop.time() - began


class Driver:
    """A hot-standby driver of raw links: logged in to every node with the same session
    CallId, every request sent to all of them in the same order."""

    def __init__(self, links: dict[str, RawLink]) -> None:
        self.links = links

    @classmethod
    async def open(cls, nodes: dict[str, IvrServer]) -> Driver:
        links = {name: await RawLink.open(server.port) for name, server in nodes.items()}
        for link in links.values():
            await link.login("S1")  # LoginResp, FlowControl: from the standby too
        return cls(links)

    async def send(self, call_id: str, body: str, to: Iterable[str] | None = None) -> None:
        for name in to or self.links:
            await self.links[name].send(call_id, body)

    async def close(self) -> None:
        for link in self.links.values():
            await link.close()


def udata_set(request_id: str, key: str, value: str) -> str:
    return (
        f"<UDataSet Action='Replace'><RequestId>{request_id}</RequestId><UDataEx>"
        f"<Node Name='{key}' Type='Str' Val='{value}'/></UDataEx></UDataSet>"
    )


def udata_get(request_id: str, key: str) -> str:
    return f"<UDataGet Keys='{key}'><RequestId>{request_id}</RequestId></UDataGet>"


async def expect(link: RawLink, tag: str, timeout: float = 3.0) -> m.Message:
    _, message, _ = await link.recv_doc(timeout)
    assert message.tag == tag, message
    return message


async def start_call(driver: Driver, leader: str, call_id: str = "C1", port: str = "1") -> None:
    await driver.send(call_id, new_call_body(port))
    link = driver.links[leader]
    await expect(link, "CallStatus")  # Ringing
    await expect(link, "CallStatus")  # Established


async def pair(start: Start, site: str, **kwargs: Any) -> tuple[IvrServer, IvrServer]:
    """Node a (leads: it starts first) and node b (standby)."""
    a = await start(ha_config(node="a", site=site, **kwargs))
    assert a.ha is not None and a.ha.role == "leader"
    b = await start(ha_config(node="b", site=site, **kwargs))
    assert b.ha is not None and b.ha.role == "standby"
    return a, b


async def crash(server: IvrServer) -> None:
    """Stop ``server`` as if it died: the lease is not given up (it lapses)."""
    assert server.ha is not None
    server.ha.release_on_stop = False
    await server.stop()


# ---------------------------------------------------------------------- tests


async def test_off_has_no_node(start_node: Start) -> None:
    server = await start_node(default_config())
    assert server.ha is None
    assert server.writer is None
    assert server.service.metrics.ha is None


async def test_standby_answers_only_login_then_takes_over(start_node: Start, site: str) -> None:
    a, b = await pair(start_node, site)
    driver = await Driver.open({"a": a, "b": b})
    await start_call(driver, "a")
    await driver.send("C1", udata_set("1", "account", "42"))
    resp = await expect(driver.links["a"], "UDataResp")
    assert resp.Result == "Success"  # type: ignore[attr-defined]
    await driver.links["b"].expect_silence(0.3)  # the standby answered nothing but the login
    await wait_for(lambda: a.ha is not None and a.ha.batches >= 2, what="a's batches")

    loop = asyncio.get_running_loop()
    began = loop.time()
    await crash(a)
    await wait_for(lambda: b.ha is not None and b.ha.leads, LEASE + 1.0, "b takes over")
    await driver.send("C1", udata_get("2", "account"), to=["b"])
    resp = await expect(driver.links["b"], "UDataResp")
    assert resp.Result == "Success", resp  # type: ignore[attr-defined]
    assert "42" in str(resp)
    assert loop.time() - began < LEASE + 1.0
    assert b.ha is not None and b.ha.last_takeover is not None
    assert b.ha.last_takeover.calls == 1
    assert b.service.metrics.ha is not None and b.service.metrics.ha.role == 1
    await driver.close()


class GatedStore:
    """A store whose ``apply`` waits for :attr:`gate` (a slow or stuck store) and counts; the
    rest is the wrapped store's."""

    def __init__(self, inner: StateStore, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.gate = asyncio.Event()
        self.gate.set()
        self.broken = False
        self.applied = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def url(self) -> str:
        return self.inner.url

    async def apply(self, batch: Batch, *, replicas: int = 0, wait_timeout: float = 0.05) -> int:
        if self.delay:
            await asyncio.sleep(self.delay)
        await self.gate.wait()
        if self.broken:
            raise StoreUnavailable("the test broke it")
        self.applied += 1
        return await self.inner.apply(batch, replicas=replicas, wait_timeout=wait_timeout)

    def unblock_failing(self) -> None:
        self.broken = True
        self.gate.set()


async def test_replies_wait_for_the_batch(start_node: Start, site: str) -> None:
    slow = GatedStore(shared_memory_store("memory://", site=site), delay=0.25)
    a = await start_node(ha_config(node="a", site=site), store=slow)
    link = await RawLink.open(a.port)
    await link.login("S1")
    loop = asyncio.get_running_loop()
    began = loop.time()
    await link.send("C1", new_call_body("1"))
    await expect(link, "CallStatus")
    assert loop.time() - began >= 0.2  # held until the store acknowledged the NewCall's batch
    await expect(link, "CallStatus")
    await link.close()


async def test_async_durability_does_not_wait(start_node: Start, site: str) -> None:
    slow = GatedStore(shared_memory_store("memory://", site=site))
    a = await start_node(ha_config(node="a", site=site, durability="async"), store=slow)
    link = await RawLink.open(a.port)
    await link.login("S1")
    await wait_for(lambda: a.ha is not None and not a.ha._inflight, what="login committed")
    slow.gate.clear()  # nothing is acknowledged any more
    before = slow.applied
    await link.send("C1", new_call_body("1"))
    await expect(link, "CallStatus")
    await expect(link, "CallStatus")
    assert slow.applied == before  # answered before the store acknowledged the NewCall
    assert a.ha is not None
    batches = a.ha.batches
    slow.gate.set()
    await wait_for(lambda: a.ha is not None and a.ha.batches > batches, what="acknowledged")
    await link.close()


async def test_uncommitted_request_replayed_once(start_node: Start, site: str) -> None:
    stuck = GatedStore(shared_memory_store("memory://", site=site))
    a = await start_node(ha_config(node="a", site=site), store=stuck)
    b = await start_node(ha_config(node="b", site=site))
    assert b.ha is not None and b.ha.role == "standby"
    driver = await Driver.open({"a": a, "b": b})
    await start_call(driver, "a")
    await driver.send("C1", udata_set("1", "k", "v1"))
    await expect(driver.links["a"], "UDataResp")
    await wait_for(lambda: a.ha is not None and not a.ha._inflight, what="a committed")
    stuck.gate.clear()  # a handles the next one, its batch is never acknowledged
    await driver.send("C1", udata_set("2", "k", "v2"))
    await asyncio.sleep(0.1)
    await crash(a)  # a dies with the batch of UDataSet 2 unacknowledged, its reply held
    stuck.unblock_failing()
    rest = await driver.links["a"].expect_closed()
    assert b"UDataResp" not in rest  # a never sent the reply of what it did not commit
    await wait_for(lambda: b.ha is not None and b.ha.leads, LEASE + 1.0, "b takes over")
    resp = await expect(driver.links["b"], "UDataResp")  # the replayed UDataSet 2, once
    assert resp.RequestId == "2"  # type: ignore[attr-defined]
    assert b.ha is not None and b.ha.replayed == 1
    await driver.send("C1", udata_get("3", "k"), to=["b"])
    resp = await expect(driver.links["b"], "UDataResp")
    assert "v2" in str(resp)
    await driver.links["b"].expect_silence(0.2)
    await driver.close()


async def test_fenced_leader_stops_answering(start_node: Start, site: str) -> None:
    a, b = await pair(start_node, site)
    driver = await Driver.open({"a": a, "b": b})
    await start_call(driver, "a")
    assert a.ha is not None and a.ha._task is not None
    a.ha._task.cancel()  # a stalls: it renews no more (as under SIGSTOP)
    await wait_for(lambda: b.ha is not None and b.ha.leads, LEASE + 1.0, "b takes over")
    await driver.send("C1", udata_set("1", "k", "v"))
    resp = await expect(driver.links["b"], "UDataResp")  # the new leader answers
    assert resp.Result == "Success"  # type: ignore[attr-defined]
    # a handled it too, as it still thought it led: its batch is fenced, its reply dropped,
    # its sessions closed
    rest = await driver.links["a"].expect_closed()
    assert b"UDataResp" not in rest
    assert a.ha.role == "standby" and a.ha.fenced_count == 1
    assert a.service.metrics.ha is not None and a.service.metrics.ha.fenced == 1
    await driver.close()


async def test_store_loss_flow_control(start_node: Start, site: str) -> None:
    a, b = await pair(start_node, site)
    store = shared_memory_store("memory://", site=site)
    driver = await Driver.open({"a": a, "b": b})
    await start_call(driver, "a")
    store.down = True
    for name in ("a", "b"):
        flow = await expect(driver.links[name], "FlowControl")
        assert flow.Status == "On"  # type: ignore[attr-defined]
    assert a.ha is not None and a.ha.store_state == "lost"
    await driver.send("C1", udata_set("1", "k", "v"))  # the call goes on
    resp = await expect(driver.links["a"], "UDataResp")
    assert resp.Result == "Success"  # type: ignore[attr-defined]
    await wait_for(lambda: a.ha is not None and a.ha.queued > 0, what="queued")
    store.down = False
    for name in ("a", "b"):
        flow = await expect(driver.links[name], "FlowControl")
        assert flow.Status == "Off"  # type: ignore[attr-defined]
    await wait_for(lambda: a.ha is not None and a.ha.store_state == "ok", what="store back")
    assert a.ha.queued == 0 and a.ha.leads
    records = await store.load("primary")
    assert any(key.startswith("call:") for key in records)
    await driver.close()


async def test_store_restarted_empty_gets_everything(start_node: Start, site: str) -> None:
    a = await start_node(ha_config(node="a", site=site))
    store = shared_memory_store("memory://", site=site)
    link = await RawLink.open(a.port)
    await link.login("S1")
    await link.send("C1", new_call_body("1"))
    await expect(link, "CallStatus")
    await expect(link, "CallStatus")
    store.wipe()
    await wait_for(
        lambda: any(k.startswith("call:") for k in _objects(store, "primary")),
        2.0,
        "the whole state written back",
    )
    assert a.ha is not None and a.ha.leads
    await link.close()


def _objects(store: MemoryStore, slot: str) -> dict[str, bytes]:
    """What ``store`` holds of ``slot`` now (read in place: a wait's condition)."""
    found = store._slots.get(slot)
    return found.objects if found is not None else {}


async def test_warm_standby_listens_once_it_leads(start_node: Start, site: str) -> None:
    a = await start_node(ha_config("warm", node="a", site=site))
    b = await start_node(ha_config("warm", node="b", site=site))
    assert b.ha is not None and b.ha.role == "standby"
    with pytest.raises(OSError):
        await RawLink.open(b.port)  # bound, not accepting
    link = await RawLink.open(a.port)
    await link.login("S1")
    await link.send("C1", new_call_body("1"))
    await expect(link, "CallStatus")
    await expect(link, "CallStatus")
    await link.send("C1", udata_set("1", "k", "warm"))
    await expect(link, "UDataResp")
    await crash(a)
    # leading, then accepting: the listener opens at the takeover's end (a driver retries)
    await wait_for(lambda: b.ha is not None and b.ha.last_takeover is not None, LEASE + 2.0, "b")
    again = await RawLink.open(b.port)
    await again.login("S1")
    await again.send("C1", udata_get("2", "k"))
    resp = await expect(again, "UDataResp")
    assert "warm" in str(resp)
    await again.close()
    await link.close()


async def test_api_and_metrics(start_node: Start, site: str) -> None:
    from ivr_server.api import ApiServer
    from ivr_server.api.handlers.ha import HaView

    a = await start_node(ha_config(node="a", site=site), api=ApiServer, api_listen=LOOPBACK_0)
    host, port = a.api_addresses[0]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{host}:{port}/api/v1/ha") as answer:
            assert answer.status == 200
            view = await answer.json()
        async with http.get(f"http://{host}:{port}/metrics") as answer:
            text = await answer.text()
    HaView.model_validate(view)  # the answer is what the OpenAPI document describes
    assert view["mode"] == "hot" and view["role"] == "leader" and view["node_id"] == "a"
    assert view["last_takeover"]["calls"] == 0 and view["last_takeover"]["records"] == 0
    assert view["slots"] == {"primary": view["epoch"]} and view["store_state"] == "ok"
    assert 'ivr_server_ha_role{mode="hot",node="a"} 1.0' in text
    assert "ivr_server_ha_commit_latency_seconds_bucket" in text
    assert "ivr_server_ha_replayed_requests_total" in text


async def test_redis_fail_over(start_node: Start, site: str, redis_server: RedisProcess) -> None:
    """The same fail-over against a real redis-server."""
    a, b = await pair(start_node, site, store=redis_server.url)
    driver = await Driver.open({"a": a, "b": b})
    await start_call(driver, "a")
    await driver.send("C1", udata_set("1", "account", "redis"))
    await expect(driver.links["a"], "UDataResp")
    await driver.links["b"].expect_silence(0.2)
    await crash(a)
    await wait_for(lambda: b.ha is not None and b.ha.leads, LEASE + 1.5, "b takes over")
    await driver.send("C1", udata_get("2", "account"), to=["b"])
    resp = await expect(driver.links["b"], "UDataResp")
    assert "redis" in str(resp)
    await driver.close()


async def test_redis_killed_and_restarted_empty(
    start_node: Start, site: str, redis_server: RedisProcess
) -> None:
    """Redis dies: FlowControl On from both nodes, the call goes on; Redis comes back empty:
    the leader writes its whole state back, FlowControl Off; the standby can then take the
    call over with its data."""
    a, b = await pair(start_node, site, store=redis_server.url)
    driver = await Driver.open({"a": a, "b": b})
    await start_call(driver, "a")
    redis_server.kill()
    for name in ("a", "b"):
        flow = await expect(driver.links[name], "FlowControl", timeout=5.0)
        assert flow.Status == "On"  # type: ignore[attr-defined]
    await driver.send("C1", udata_set("1", "k", "through-the-outage"))
    resp = await expect(driver.links["a"], "UDataResp")
    assert resp.Result == "Success"  # type: ignore[attr-defined]
    await driver.links["b"].expect_silence(0.2)
    redis_server.restart()  # empty
    for name in ("a", "b"):
        flow = await expect(driver.links[name], "FlowControl", timeout=10.0)
        assert flow.Status == "Off"  # type: ignore[attr-defined]
    assert a.ha is not None and a.ha.leads and a.ha.store_state == "ok"
    await asyncio.sleep(POLL * 4)  # b's journal trimmed by the marks written back
    await crash(a)
    await wait_for(lambda: b.ha is not None and b.ha.leads, LEASE * 2 + 2.0, "b takes over")
    await driver.send("C1", udata_get("2", "k"), to=["b"])
    resp = await expect(driver.links["b"], "UDataResp")
    assert "through-the-outage" in str(resp)
    await driver.links["b"].expect_silence(0.2)  # nothing replayed twice
    await driver.close()


def test_serve_runs_the_node_from_the_configuration(tmp_path: Path) -> None:
    """``ivr-server serve`` with an ``[ha]`` table leads alone (no other node), and
    ``--node-id`` names it."""
    from tests.integration.conftest import start, stop

    toml = tmp_path / "ha.toml"
    toml.write_text(
        DEFAULT_TOML.read_text(encoding="utf-8")
        + '\n[ha]\nmode = "hot"\nstore = "memory://"\nnode-id = "from-file"\n',
        encoding="utf-8",
    )
    served = start("--config", str(toml), "--node-id", "n7")
    try:
        found = re.search(
            r"HTTP API, metrics and web view on http://([0-9.]+):([0-9]+)/", served.banner
        )
        assert found is not None, served.banner
        url = f"http://{found.group(1)}:{found.group(2)}/api/v1/ha"
        deadline = time.monotonic() + 10.0
        while True:
            with urllib.request.urlopen(url, timeout=5) as answer:
                view = json.loads(answer.read())
            if view["role"] == "leader" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert view["node_id"] == "n7" and view["role"] == "leader" and view["mode"] == "hot"
    finally:
        err = stop(served)
    assert "HA: node n7 leads 'primary'" in err


async def test_fenced_warm_leader_stops_accepting(start_node: Start, site: str) -> None:
    a = await start_node(ha_config("warm", node="a", site=site))
    b = await start_node(ha_config("warm", node="b", site=site))
    link = await RawLink.open(a.port)
    await link.login("S1")
    await link.send("C1", new_call_body("1"))
    await expect(link, "CallStatus")
    await expect(link, "CallStatus")
    assert a.ha is not None and a.ha._task is not None
    a.ha._task.cancel()  # a stalls
    await wait_for(lambda: b.ha is not None and b.ha.last_takeover is not None, LEASE + 2.0, "b")
    await link.send("C1", udata_set("1", "k", "v"))  # a handles it: fenced, not answered
    rest = await link.expect_closed()
    assert b"UDataResp" not in rest
    assert a.ha.role == "standby" and a.ha.fenced_count == 1
    await wait_for(lambda: bool(a._servers) and not a._servers[0].is_serving(), what="rebound")
    with pytest.raises(OSError):
        await RawLink.open(a.port)  # warm standby again: not accepting
    again = await RawLink.open(b.port)
    await again.login("S1")
    await again.send("C1", udata_get("2", "k"))
    resp = await expect(again, "UDataResp")
    assert resp.Result == "NoMatch"  # type: ignore[attr-defined]  # b has the call; k unset
    await again.close()
    await link.close()


async def test_store_loss_continue_serves_without_flow_control(
    start_node: Start, site: str
) -> None:
    a = await start_node(ha_config(node="a", site=site, on_store_loss="continue"))
    store = shared_memory_store("memory://", site=site)
    link = await RawLink.open(a.port)
    await link.login("S1")
    store.down = True
    await wait_for(lambda: a.ha is not None and a.ha.store_state == "lost", what="lost")
    await link.send("C1", new_call_body("1"))  # new calls are still taken
    await expect(link, "CallStatus")
    await expect(link, "CallStatus")
    assert a.service.metrics.ha is not None and a.service.metrics.ha.store_up == 0
    store.down = False
    await wait_for(lambda: a.ha is not None and a.ha.store_state == "ok", what="back")
    await link.expect_silence(0.2)  # no FlowControl either way
    assert any(key.startswith("call:") for key in await store.load("primary"))
    await link.close()


async def test_store_loss_past_max_queued_writes_everything_back(
    start_node: Start, site: str
) -> None:
    a = await start_node(ha_config(node="a", site=site, max_queued=1))
    store = shared_memory_store("memory://", site=site)
    link = await RawLink.open(a.port)
    await link.login("S1")
    await link.send("C1", new_call_body("1"))
    await expect(link, "CallStatus")
    await expect(link, "CallStatus")
    await wait_for(lambda: a.ha is not None and not a.ha._inflight, what="committed")
    store.down = True
    await link.send("C1", "<EndCall EndCause='Normal'/>")  # it ends while the store is lost
    flow = await expect(link, "FlowControl")
    assert flow.Status == "On"  # type: ignore[attr-defined]
    await link.send("C2", new_call_body("2"))
    refused = await expect(link, "EndCall")  # no new call under FlowControl On
    assert refused.EndCause == "ServerPaused"  # type: ignore[attr-defined]
    assert a.ha is not None
    await wait_for(lambda: a.ha is not None and a.ha._queue.overflow, what="overflow")
    store.down = False
    flow = await expect(link, "FlowControl", timeout=5.0)
    assert flow.Status == "Off"  # type: ignore[attr-defined]
    records = await store.load("primary")
    assert not any(key.startswith("call:") for key in records)  # the ended call is gone
    assert records  # and the rest written back
    await link.close()


async def test_a_stopping_leader_hands_its_calls_over(start_node: Start, site: str) -> None:
    """SIGTERM's graceful stop ends no call of an HA node: the lease is given up and the
    standby carries the calls on at once (no lease to wait for)."""
    a, b = await pair(start_node, site)
    driver = await Driver.open({"a": a, "b": b})
    await start_call(driver, "a")
    await driver.send("C1", udata_set("1", "k", "kept"))
    await expect(driver.links["a"], "UDataResp")
    loop = asyncio.get_running_loop()
    began = loop.time()
    await a.shutdown(drain_time=30.0)
    assert loop.time() - began < 2.0  # no drain
    rest = await driver.links["a"].expect_closed()
    assert b"EndCall" not in rest  # the call was not ended
    await wait_for(lambda: b.ha is not None and b.ha.leads, 1.0, "b takes over at once")
    await driver.send("C1", udata_get("2", "k"), to=["b"])
    resp = await expect(driver.links["b"], "UDataResp")
    assert "kept" in str(resp)
    await driver.close()


async def test_a_link_closed_while_its_output_is_held_closes_after_it(
    start_node: Start, site: str
) -> None:
    """Output waits behind every batch in flight, a GLI refusal included, and the connection
    closes only once it is written (the order of a connection's output is kept)."""
    slow = GatedStore(shared_memory_store("memory://", site=site), delay=0.5)
    config = ha_config(node="a", site=site)
    server_opts = config.server.model_copy(update={"login_timeout": 0.2})
    a = await start_node(config.model_copy(update={"server": server_opts}), store=slow)
    loop = asyncio.get_running_loop()
    first = await RawLink.open(a.port)
    idle = await RawLink.open(a.port)
    began = loop.time()
    await first.send("S1", '<LoginReq Version="4.0" ClientName="IVR_1"></LoginReq>')
    data = await idle.expect_closed(timeout=3.0)  # refused at 0.2 s, written after the batch
    assert loop.time() - began >= 0.4
    assert data[:2] == b"\x00\x02"  # a GLI Error frame (type 2), then the end of the link
    await expect(first, "LoginResp")
    await first.close()
    await idle.close()


async def test_an_active_node_started_without_its_store_leads_when_it_answers(
    start_node: Start, site: str
) -> None:
    store = shared_memory_store("memory://", site=site)
    store.down = True
    a = await start_node(ha_config("active", node="n1", site=site))
    assert a.ha is not None and a.ha.role == "standby" and a.ha.store_state == "lost"
    assert a.ha.active is None
    store.down = False
    await wait_for(lambda: a.ha is not None and a.ha.leads, LEASE + 2.0, "n1 leads its slot")
    assert a.ha.slot == "n1" and a.ha.slots == {"n1": a.ha.epoch}
    assert a.ha.active is not None  # adoption and the shared facts run from then on


async def test_premise_links_run_only_on_the_leader(tmp_path: Path, site: str) -> None:
    """Behind mode: the standby does not connect to the PBX; it does once it takes over."""
    from ivr_server.config import load_config
    from ivr_server.switch.csta import messages as cm
    from tests.integration.conftest import free_port
    from tests.integration.test_behind_link import FakePbx, _config

    pbx = FakePbx()
    pbx_port = free_port()
    await pbx.start(pbx_port)
    base = load_config(_config(tmp_path, pbx_port))
    servers: list[IvrServer] = []
    try:
        for node in ("a", "b"):
            ha = ha_config(node=node, site=site).ha
            server = IvrServer(base.model_copy(update={"ha": ha}), listen=LOOPBACK_0, api_listen=())
            await server.start()
            servers.append(server)
        a, b = servers
        assert a.ha is not None and a.ha.leads and b.ha is not None and not b.ha.leads
        await wait_for(lambda: len(pbx.connections) == 1, what="a connects to the PBX")
        await asyncio.sleep(0.3)
        assert len(pbx.connections) == 1  # b does not
        assert not b.links
        a.ha.release_on_stop = False
        await a.stop()
        await wait_for(lambda: b.ha is not None and b.ha.leads, LEASE + 1.0, "b takes over")
        await wait_for(lambda: len(pbx.connections) == 2, what="b connects to the PBX")
        assert pbx.requests(cm.StartApplicationSession)
    finally:
        for server in servers:
            with contextlib.suppress(Exception):
                await server.stop()
        await pbx.close()


async def test_replica_durability_waits_for_the_replica(
    start_node: Start, site: str, redis_pair: RedisPair
) -> None:
    """``durability = replica``: each batch is acknowledged once the replica has it (``WAIT``):
    no replica timeout with a linked replica (once it acknowledged a first one: a replica just
    linked may let the first WAITs time out), and the replica holds the call."""
    config = ha_config(
        node="a", site=site, store=redis_pair.url, durability="replica", wait_timeout=0.4
    )
    a = await start_node(config)
    metrics = a.service.metrics.ha
    assert metrics is not None
    link = await RawLink.open(a.port)
    await link.login("S1")
    await link.send("C1", new_call_body("1"))
    await expect(link, "CallStatus")
    await expect(link, "CallStatus")
    for n in range(10):  # until a WAIT is acknowledged (each request is a batch)
        if metrics.batches > metrics.replica_timeouts:
            break
        await link.send("C1", udata_set(f"w{n}", "k", "warm-up"))
        await expect(link, "UDataResp")
    before = metrics.replica_timeouts
    for n in range(3):
        await link.send("C1", udata_set(str(n), "k", "replicated"))
        await expect(link, "UDataResp")
    assert metrics.replica_timeouts == before
    keys = redis_pair.replica.client().keys("*call:*")
    assert keys, "the replica has the call's record"
    await link.close()


async def test_replica_durability_without_a_replica_times_out_and_answers(
    start_node: Start, site: str, redis_server: RedisProcess
) -> None:
    """No replica: every batch waits ``wait-timeout`` for one, then the reply leaves anyway,
    counted in ``replica_timeouts``."""
    a = await start_node(
        ha_config(node="a", site=site, store=redis_server.url, durability="replica")
    )
    link = await RawLink.open(a.port)
    await link.login("S1")
    loop = asyncio.get_running_loop()
    began = loop.time()
    await link.send("C1", new_call_body("1"))
    await expect(link, "CallStatus")
    assert loop.time() - began >= 0.04  # wait-timeout is 0.05 s
    await expect(link, "CallStatus")
    metrics = a.service.metrics.ha
    assert metrics is not None and metrics.replica_timeouts >= 1
    await link.close()


async def test_group_commit_bounds_the_batches_in_flight(start_node: Start, site: str) -> None:
    """A store that does not keep up: at most MAX_IN_FLIGHT batches are in flight, the turns'
    changes after them merged into the next one; every reply comes, in order, once the store
    acknowledges."""
    from ivr_server.runtime.ha import MAX_IN_FLIGHT

    gated = GatedStore(shared_memory_store("memory://", site=site))
    a = await start_node(ha_config(node="a", site=site), store=gated)
    link = await RawLink.open(a.port)
    await link.login("S1")
    await link.send("C1", new_call_body("1"))
    await expect(link, "CallStatus")
    await expect(link, "CallStatus")
    await wait_for(lambda: a.ha is not None and not a.ha._inflight, what="call committed")
    gated.gate.clear()
    before = gated.applied
    for i in range(MAX_IN_FLIGHT + 5):
        await link.send("C1", udata_set(str(i), "k", f"v{i}"))
        await asyncio.sleep(0.01)  # a turn each
    assert a.ha is not None
    assert len(a.ha._inflight) == MAX_IN_FLIGHT and a.ha._next is not None
    await link.expect_silence(0.1)  # every reply held
    gated.gate.set()
    for i in range(MAX_IN_FLIGHT + 5):
        resp = await expect(link, "UDataResp")
        assert resp.RequestId == str(i)  # type: ignore[attr-defined]
    await wait_for(lambda: a.ha is not None and not a.ha._inflight and a.ha._next is None)
    assert gated.applied - before == MAX_IN_FLIGHT + 1  # the last 5 turns in one batch
    await link.close()


async def test_a_batch_refused_for_a_vanished_slot_writes_everything_back(
    start_node: Start, site: str
) -> None:
    """The store restarted empty between two renewals: the next batch finds no slot (not
    another holder): the leader is not fenced; it renews and writes its whole state back."""
    a = await start_node(ha_config(node="a", site=site))
    store = shared_memory_store("memory://", site=site)
    link = await RawLink.open(a.port)
    await link.login("S1")
    store.wipe()
    await link.send("C1", new_call_body("1"))  # its batch finds the slot gone
    await expect(link, "CallStatus")
    await expect(link, "CallStatus")
    await wait_for(
        lambda: any(k.startswith("call:") for k in _objects(store, "primary")),
        2.0,
        "the whole state written back",
    )
    assert a.ha is not None and a.ha.leads and a.ha.fenced_count == 0
    await link.close()


async def test_store_back_writes_the_failed_batch_then_the_later_changes(
    start_node: Start, site: str
) -> None:
    gated = GatedStore(shared_memory_store("memory://", site=site))
    a = await start_node(ha_config(node="a", site=site), store=gated)
    store = shared_memory_store("memory://", site=site)
    link = await RawLink.open(a.port)
    await link.login("S1")
    await link.send("C1", new_call_body("1"))
    await expect(link, "CallStatus")
    await expect(link, "CallStatus")
    gated.gate.clear()
    await link.send("C1", udata_set("1", "k", "first"))  # in flight when the store is lost
    await asyncio.sleep(0.05)
    gated.unblock_failing()
    await expect(link, "UDataResp")  # released (older), then the flow control
    await expect(link, "FlowControl")
    await link.send("C1", udata_set("2", "k", "second"))  # queued after it
    await expect(link, "UDataResp")
    gated.broken = False
    flow = await expect(link, "FlowControl", timeout=5.0)
    assert flow.Status == "Off"  # type: ignore[attr-defined]
    records = await store.load("primary")
    (call,) = (value for key, value in records.items() if key.startswith("call:"))
    switch_calls = [v for k, v in records.items() if k.startswith("sw:") and ":call:" in k]
    assert any(b"second" in v for v in (call, *switch_calls))
    assert not any(b"first" in v for v in (call, *switch_calls))
    await link.close()


async def test_paused_input_waits_in_order(start_node: Start) -> None:
    """``pause_input`` (a takeover's replay while the premise links come up): what is read
    meanwhile is handled after ``resume_input``, in order."""
    server = await start_node(default_config())
    link = await RawLink.open(server.port)
    await link.login("S1")
    await link.send("C1", new_call_body("1"))
    await expect(link, "CallStatus")
    await expect(link, "CallStatus")
    server.pause_input()
    for i in range(3):
        await link.send("C1", udata_set(str(i), "k", f"v{i}"))
    await link.expect_silence(0.2)
    assert server.parked
    server.resume_input()
    for i in range(3):
        resp = await expect(link, "UDataResp")
        assert resp.RequestId == str(i)  # type: ignore[attr-defined]
    await link.close()


async def test_no_mark_is_written_before_the_replay(start_node: Start, site: str) -> None:
    """While a takeover waits for its premise links, the marks in the store stay the old
    leader's: a mark written then would cover requests not replayed yet."""
    stuck = GatedStore(shared_memory_store("memory://", site=site))
    a = await start_node(ha_config(node="a", site=site), store=stuck)
    b = await start_node(ha_config(node="b", site=site))
    store = shared_memory_store("memory://", site=site)
    seen: list[dict[str, int]] = []
    assert b.ha is not None
    real = b.ha.connect_links

    async def connect_links(timeout: float) -> None:
        await asyncio.sleep(0.05)  # a link coming up: turns go by, flushes are made
        seen.append(await store.marks("primary", ["IVR_1#0"]))
        await real(timeout)

    b.ha.connect_links = connect_links  # type: ignore[method-assign]
    driver = await Driver.open({"a": a, "b": b})
    await start_call(driver, "a")
    await wait_for(lambda: a.ha is not None and not a.ha._inflight, what="a committed")
    stuck.gate.clear()
    await driver.send("C1", udata_set("2", "k", "v2"))  # index 2: never committed by a
    await asyncio.sleep(0.1)
    await crash(a)
    stuck.unblock_failing()
    await wait_for(lambda: b.ha is not None and b.ha.leads, LEASE + 1.0, "b takes over")
    resp = await expect(driver.links["b"], "UDataResp")
    assert resp.RequestId == "2"  # type: ignore[attr-defined]
    assert seen == [{"IVR_1#0": 1}]  # the old leader's mark while the links came up
    assert await store.marks("primary", ["IVR_1#0"]) == {"IVR_1#0": 2}  # then the replay's
    await driver.close()


def kept_replies(store: MemoryStore, slot: str = "primary") -> list[str]:
    """The reply outbox's records in ``slot`` of ``store`` now."""
    state = store._slots.get(slot)
    return [k for k in state.objects if k.startswith("reply:")] if state is not None else []


class NowCountingStore(GatedStore):
    """A gated store that notes the size (puts, deletes) of every ``apply_now`` batch."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.now_batches: list[tuple[int, int]] = []

    def apply_now(self, batch: Batch) -> asyncio.Future[int]:
        self.now_batches.append((len(batch.puts), len(batch.deletes)))
        return self.inner.apply_now(batch)


class AppliedThenStuckStore(GatedStore):
    """A store that applies every batch at once but, once :attr:`stuck`, never acknowledges
    it: the leader's replies stay held although their batch is committed (its process killed
    between the store's acknowledgement and the write, or waiting for a stopped replica)."""

    def __init__(self, inner: StateStore) -> None:
        super().__init__(inner)
        self.stuck = False
        self.dead = False
        """The leader is dead: nothing of it reaches the store any more."""

    async def apply(self, batch: Batch, *, replicas: int = 0, wait_timeout: float = 0.05) -> int:
        if self.dead:
            await asyncio.Event().wait()
        done = await self.inner.apply(batch, replicas=replicas, wait_timeout=wait_timeout)
        if self.stuck:
            await asyncio.Event().wait()  # never acknowledged
        return done

    def apply_now(self, batch: Batch) -> asyncio.Future[int]:
        if self.dead:
            return asyncio.get_running_loop().create_future()  # never answered
        return self.inner.apply_now(batch)


async def test_a_committed_reply_never_written_is_written_by_the_new_leader(
    start_node: Start, site: str
) -> None:
    """The reply outbox (docs/ha.md §5): the UDataSet's batch is in the store (effects, mark
    and its reply) but ``a`` dies before writing the reply. ``b`` does not replay the request
    (committed) but writes the reply ``a`` kept, once; nothing else is sent twice."""
    inner = shared_memory_store("memory://", site=site)
    stuck = AppliedThenStuckStore(inner)
    a = await start_node(ha_config(node="a", site=site), store=stuck)
    b = await start_node(ha_config(node="b", site=site))
    assert a.ha is not None and b.ha is not None and b.ha.role == "standby"
    driver = await Driver.open({"a": a, "b": b})
    await start_call(driver, "a")
    await driver.send("C1", udata_set("1", "k", "v1"))
    await expect(driver.links["a"], "UDataResp")
    await wait_for(lambda: a.ha is not None and not a.ha._inflight, what="a committed")
    await wait_for(lambda: not kept_replies(inner), what="the written reply deleted from the store")
    stuck.stuck = True
    await driver.send("C1", udata_set("2", "k", "v2"))
    await wait_for(lambda: bool(kept_replies(inner)), what="the reply kept in the store")
    if a.ha._task is not None:
        a.ha._task.cancel()  # a renews no more: its lease lapses
    a.ha.release_on_stop = False
    a.ha._generation += 1  # as if killed: the stuck batch's outcome changes nothing
    stuck.dead = True
    a.drop_held()
    await driver.links["a"].close()
    await wait_for(lambda: b.ha is not None and b.ha.leads, LEASE * 3, "b takes over")
    resp = await expect(driver.links["b"], "UDataResp")  # a's kept reply, written by b
    assert resp.RequestId == "2"  # type: ignore[attr-defined]
    assert b.ha.replayed == 0  # committed: not handled again
    await driver.send("C1", udata_get("3", "k"), to=["b"])
    resp = await expect(driver.links["b"], "UDataResp")
    assert resp.RequestId == "3" and "v2" in str(resp)  # type: ignore[attr-defined]
    await driver.links["b"].expect_silence(0.3)
    await wait_for(lambda: not kept_replies(inner), what="the outbox emptied by b")
    await driver.close()


async def test_a_kept_reply_the_driver_had_is_not_written_again(
    start_node: Start, site: str
) -> None:
    """The outbox's evidence (docs/ha.md §5): a kept reply of a call on which the driver has
    asked again since (a request ``a`` had not handled when it made that reply) is not written
    again by ``b``: an IVR asks one thing at a time per call, so it had it (the duplicate a
    leader killed between writing a reply and writing its deletion would leave). The later
    request's own kept reply is written."""
    inner = shared_memory_store("memory://", site=site)
    stuck = AppliedThenStuckStore(inner)
    a = await start_node(ha_config(node="a", site=site), store=stuck)
    b = await start_node(ha_config(node="b", site=site))
    assert a.ha is not None and b.ha is not None
    driver = await Driver.open({"a": a, "b": b})
    await start_call(driver, "a")
    await wait_for(lambda: a.ha is not None and not a.ha._inflight, what="a committed")
    stuck.stuck = True
    await driver.send("C1", udata_set("2", "k", "v2"))
    await wait_for(lambda: len(kept_replies(inner)) == 1, what="UDataSet 2's reply kept")
    await driver.send("C1", udata_get("3", "k"))
    await wait_for(lambda: len(kept_replies(inner)) == 2, what="UDataGet 3's reply kept")
    if a.ha._task is not None:
        a.ha._task.cancel()
    a.ha.release_on_stop = False
    a.ha._generation += 1
    stuck.dead = True
    a.drop_held()
    await driver.links["a"].close()
    await wait_for(lambda: b.ha is not None and b.ha.leads, LEASE * 3, "b takes over")
    resp = await expect(driver.links["b"], "UDataResp")
    assert resp.RequestId == "3" and "v2" in str(resp)  # type: ignore[attr-defined]
    await driver.links["b"].expect_silence(0.3)  # UDataSet 2's reply is not written again
    assert b.ha.replayed == 0
    await wait_for(lambda: not kept_replies(inner), what="the outbox emptied by b")
    await driver.close()


async def test_what_a_takeover_leaves_out_of_a_kept_output(start_node: Start, site: str) -> None:
    """``HaNode._unanswered`` frame by frame: a Data frame of a call asked on since (a later
    document on the stream) is left out; another call's, a keep-alive frame and a Data frame
    that does not decode are written; bytes that are not GLI frames are written as they are."""
    a, b = await pair(start_node, site)
    assert b.ha is not None
    driver = await Driver.open({"a": a, "b": b})
    await start_call(driver, "a", "C1")  # b journals NewCall (index 1) on its stream
    await driver.send("C1", udata_get("1", "k"))  # index 2
    stream = "IVR_1#0"
    await wait_for(lambda: b.service.answered_since(stream, "C1", 1), what="b journaled it")

    def data(call_id: str) -> bytes:
        body = (
            "<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>"
            f"<GctiMsg><CallId>{call_id}</CallId><UDataResp Result='Success'>"
            "<RequestId>1</RequestId></UDataResp></GctiMsg>"
        )
        return encode_frame(GliType.DATA, body.encode("latin-1"))

    keep_alive = encode_frame(GliType.KEEP_ALIVE_RESPONSE)
    garbled = encode_frame(GliType.DATA, b"<GctiMsg><nope")
    kept = data("C1") + data("C2") + keep_alive + garbled
    out, dropped = b.ha._unanswered(stream, 1, kept)
    assert dropped == 1 and out == data("C2") + keep_alive + garbled
    assert b.ha._unanswered(stream, 2, kept) == (kept, 0)  # nothing asked after index 2
    assert b.ha._unanswered("other#0", 1, kept) == (kept, 0)
    assert b.ha._unanswered(stream, 1, b"\xff" * 8) == (b"\xff" * 8, 0)  # not GLI: as it is
    await driver.close()


async def test_held_replies_released_in_doubt_wait_for_an_epoch_check(
    start_node: Start, site: str
) -> None:
    """A leader whose renewal is overdue (paused or starved: the lease in doubt) does not write
    the held replies of an acknowledged batch at once: an empty batch checks its epoch in the
    store first (docs/ha.md §5, "A paused old leader"); confirmed, they leave and their kept
    copies are deleted."""
    inner = shared_memory_store("memory://", site=site)
    gated = NowCountingStore(inner)
    a = await start_node(ha_config(node="a", site=site), store=gated)
    assert a.ha is not None
    driver = await Driver.open({"a": a})
    await start_call(driver, "a")
    await wait_for(lambda: a.ha is not None and not a.ha._inflight, what="a committed")
    gated.gate.clear()
    await driver.send("C1", udata_set("1", "k", "v1"))
    await wait_for(lambda: a.ha is not None and bool(a.ha._inflight), what="the batch sent")
    a.ha._lease_until = 0.0  # the renewal is overdue
    gated.now_batches.clear()
    gated.gate.set()
    resp = await expect(driver.links["a"], "UDataResp")
    assert resp.RequestId == "1"  # type: ignore[attr-defined]
    assert gated.now_batches[0] == (0, 0)  # the epoch check: an empty batch, first
    assert a.ha.leads and a.ha.fenced_count == 0
    await wait_for(lambda: not kept_replies(inner), what="its kept copy deleted")
    await driver.close()


class _SlowReader:
    """Stands for a connection whose released output the kernel has not sent yet."""

    def __init__(self) -> None:
        self.sent = False

    def all_sent(self) -> bool:
        return self.sent


async def test_a_kept_copy_waits_until_its_output_left(start_node: Start, site: str) -> None:
    """Released output still on this host (a driver slow to read: a reset would drop it) keeps
    its copy in the store, looked at again every ``UNSENT_CHECK``; once it left, the copy is
    deleted (docs/ha.md §5)."""
    inner = shared_memory_store("memory://", site=site)
    a = await start_node(ha_config(node="a", site=site))
    assert a.ha is not None
    key = f"reply:{a.ha.epoch}:1:0:S#0"
    await inner.apply(Batch("primary", a.ha.epoch, puts={key: b"reply"}))
    slow = _SlowReader()
    a.ha._unsent = [(cast("IvrLinkProtocol", slow), [key])]
    assert a.ha._sent_since() == []  # not yet: looked at again soon
    await asyncio.sleep(0.05)
    assert kept_replies(inner) == [key]
    slow.sent = True
    await wait_for(lambda: not kept_replies(inner), what="the copy deleted once sent")
    assert a.ha._unsent == [] and a.ha._unsent_check is None
