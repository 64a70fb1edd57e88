"""The Redis store's pipeline, replies fed by hand (timings a real server cannot be made to
show on demand): commands that found the function library gone are sent again after it is
loaded, and commands issued meanwhile wait behind them; stray replies and late answers."""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
import pytest

from ivr_server.store import StoreUnavailable
from ivr_server.store.redis import _Connection, _first, _pack

pytestmark = pytest.mark.timeout(10)

MISSING = b"-ERR Function not found\r\n"


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def abort(self) -> None:
        self.aborted = True


def _connection(timeout: float = 5.0) -> tuple[_Connection, _Transport]:
    conn = _Connection(asyncio.get_running_loop(), timeout)
    transport = _Transport()
    conn.connection_made(transport)
    return conn, transport


def _cmd(*args: Any) -> bytes:
    return _pack(args)


async def test_reload_resends_in_order_and_holds_the_newcomers() -> None:
    conn, transport = _connection()
    first = conn.send(_cmd("FCALL", "f", 0, "1"), 1, _first)
    second = conn.send(_cmd("FCALL", "f", 0, "2"), 1, _first)
    assert len(transport.written) == 2
    conn.data_received(MISSING)  # the first finds the library gone
    assert b"FUNCTION" in transport.written[2]
    assert transport.written[3] == _cmd("FCALL", "f", 0, "1")
    third = conn.send(_cmd("FCALL", "f", 0, "3"), 1, _first)
    assert len(transport.written) == 4  # held: the second is not answered yet
    conn.data_received(MISSING)  # the second too
    assert transport.written[4:] == [_cmd("FCALL", "f", 0, "2"), _cmd("FCALL", "f", 0, "3")]
    conn.data_received(b"+OK\r\n:1\r\n:2\r\n:3\r\n")  # LOAD, then the three
    assert [await first, await second, await third] == [1, 2, 3]
    assert not conn.pending


async def test_missing_twice_is_an_error_answer() -> None:
    conn, _ = _connection()
    call = conn.send(_cmd("FCALL", "f", 0), 1, _first)
    conn.data_received(MISSING)
    conn.data_received(b"-ERR cannot load\r\n" + MISSING)
    reply = await call
    assert isinstance(reply, hiredis.ReplyError)


async def test_a_transform_error_reaches_the_caller() -> None:
    conn, _ = _connection()

    def broken(replies: list[Any]) -> Any:
        raise ValueError(replies)

    call = conn.send(_cmd("PING"), 1, broken)
    conn.data_received(b"+PONG\r\n")
    with pytest.raises(ValueError):
        await call


async def test_a_stray_reply_closes_the_connection() -> None:
    conn, transport = _connection()
    conn.data_received(b"+OK\r\n")
    assert transport.aborted
    with pytest.raises(StoreUnavailable):
        await conn.send(_cmd("PING"), 1, _first)


async def test_the_watchdog_waits_for_the_oldest() -> None:
    conn, transport = _connection(timeout=0.2)
    first = conn.send(_cmd("PING"), 1, _first)
    await asyncio.sleep(0.1)
    second = conn.send(_cmd("PING"), 1, _first)
    conn.data_received(b"+PONG\r\n")
    assert await first == b"PONG"
    await asyncio.sleep(0.15)  # past the first's deadline, not the second's
    assert not transport.aborted
    with pytest.raises(StoreUnavailable):
        await second
    assert transport.aborted


async def test_a_garbled_reply_closes_the_connection() -> None:
    conn, transport = _connection()
    call = conn.send(_cmd("PING"), 1, _first)
    conn.data_received(b"?garbage\r\n")
    assert transport.aborted
    with pytest.raises(StoreUnavailable, match="garbled"):
        await call
