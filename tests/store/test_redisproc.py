"""The Redis fixture itself: a server starts empty, dies, comes back empty on its port, and a
replica follows its primary."""

from __future__ import annotations

import pytest
import redis

from tests.redisproc import RedisPair, RedisProcess

pytestmark = pytest.mark.timeout(30)


def test_restart_is_empty_on_the_same_port(redis_server: RedisProcess) -> None:
    port = redis_server.port
    with redis_server.client() as c:
        c.set("k", "v")
        assert c.get("k") == b"v"
    redis_server.kill()
    assert not redis_server.running
    redis_server.restart()
    assert redis_server.port == port
    with redis_server.client() as c:
        assert c.get("k") is None
    with redis.Redis.from_url(redis_server.unix_url) as c:
        assert c.ping()


def test_replica_follows(redis_pair: RedisPair) -> None:
    with redis_pair.primary.client() as c:
        c.set("k", "v")
        assert c.wait(1, 2000) == 1
    with redis_pair.replica.client() as r:
        assert r.get("k") == b"v"
