"""The nodes' presence records (``heartbeat``, ``presence``; issue 25, gap 6): every node,
standbys included, writes one with a TTL; ``GET /api/v1/nodes`` lists those alive. Against the
reference (:class:`MemoryStore`) and a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ivr_server.store import MemoryStore, StateStore
from ivr_server.store.redis import RedisStore
from tests.redisproc import RedisProcess, require_redis

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["memory", "redis"])
async def backend(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[StateStore, RedisProcess | None]]:
    if request.param == "memory":
        yield MemoryStore(site="t"), None
        return
    require_redis()
    server = RedisProcess()
    made = RedisStore(server.url, site="t")
    try:
        await made.connect()
        yield made, server
    finally:
        await made.close()
        server.cleanup()


async def test_records_replace_and_lapse(backend: tuple[StateStore, RedisProcess | None]) -> None:
    store, server = backend
    assert await store.presence() == {}
    await store.heartbeat("b", b'{"role": "standby"}', 0.3)
    await store.heartbeat("a", b'{"role": "leader"}', 5.0)
    await store.heartbeat("a", b'{"role": "leader", "n": 2}', 5.0)  # replaces a's
    found = await store.presence()
    assert list(found) == ["a", "b"]
    assert found["a"].record == b'{"role": "leader", "n": 2}'
    assert found["a"].node == "a" and 4.0 < found["a"].expires_in <= 5.0
    assert 0.0 < found["b"].expires_in <= 0.3
    await asyncio.sleep(0.4)
    assert list(await store.presence()) == ["a"]  # b stopped writing: gone after its TTL
    await store.heartbeat("a", b"x", 5.0)  # and pruned from the store by the next write
    if server is not None:
        with server.client() as client:
            assert client.hkeys("ivrs:{t}:nodes") == [b"a"]
            assert client.hkeys("ivrs:{t}:nodes:until") == [b"a"]
