"""Fixtures of the store tests: the real Redis fixtures of tests/redisproc.py (``redis_server``,
``redis_pair``), and ``backend``/``stores``, which run a test against the reference
(:class:`MemoryStore`) and against :class:`RedisStore` on a real redis-server, breaking each as a
real deployment breaks (tests/store/test_contract.py, tests/store/test_incarnation.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from ivr_server.store import MemoryStore, StateStore
from ivr_server.store.memory import MemoryImage
from ivr_server.store.redis import RedisStore
from tests.redisproc import RedisProcess, redis_pair, redis_server, require_redis

__all__ = ["Backend", "backend", "redis_pair", "redis_server", "stores"]


@dataclass
class Backend:
    """A store under test and the means to break it as a real deployment breaks."""

    kind: str
    memory: MemoryStore | None = None
    server: RedisProcess | None = None
    image: MemoryImage | None = None

    def new_store(self) -> StateStore:
        """Another client of the same store (another node)."""
        if self.memory is not None:
            return self.memory
        assert self.server is not None
        return RedisStore(self.server.url, site="t", timeout=1.0)

    def lose_data(self) -> None:
        """The store restarts empty."""
        if self.memory is not None:
            self.memory.wipe()
        else:
            assert self.server is not None
            self.server.restart()

    def kill(self) -> None:
        if self.memory is not None:
            self.memory.down = True
        else:
            assert self.server is not None
            self.server.kill()

    def revive(self) -> None:
        """Back, empty (no persistence)."""
        if self.memory is not None:
            self.memory.wipe()
            self.memory.down = False
        else:
            assert self.server is not None
            self.server.start()

    def save(self) -> None:
        """The snapshot a stock redis-server takes by itself (``SAVE``: ``dump.rdb``)."""
        if self.memory is not None:
            self.image = self.memory.snapshot()
        else:
            assert self.server is not None
            with self.server.client() as client:
                client.save()

    def restart_from_snapshot(self) -> None:
        """``kill -9`` and start again: the snapshot's state comes back."""
        if self.memory is not None:
            self.memory.restart(self.image)
        else:
            assert self.server is not None
            self.server.restart()  # the same --dir: dump.rdb is loaded


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield Backend("memory", memory=MemoryStore(site="t"))
        return
    require_redis()
    server = RedisProcess()
    try:
        yield Backend("redis", server=server)
    finally:
        server.cleanup()


@pytest.fixture
async def stores(backend: Backend) -> AsyncIterator[tuple[StateStore, StateStore]]:
    """Two nodes' clients of the one store, both connected."""
    a, b = backend.new_store(), backend.new_store()
    await a.connect()
    await b.connect()
    yield a, b
    await a.close()
    await b.close()
