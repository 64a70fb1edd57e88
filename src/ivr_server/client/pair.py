"""Drivers of a server pair: :class:`HotStandbyDriver` (hot standby: connected and logged in to
both nodes, every request to both) and :class:`WarmStandbyClient` (warm standby: connected to
whichever node listens).

Hot standby as the Genesys I-Library does it (MODES-AND-HA §3.1, §3.5 "What the driver sees";
docs/ha.md): one ClientName, the same LoginReq (same session CallId) to both nodes, then every
request sent to both **in the same order**, so that the two nodes see the same numbered stream
of documents after the login (the standby keeps what it did not answer and replays, at takeover,
what its peer never committed). The caller gets the reply of whichever node answers first; the
node that sent the last response is the primary. Everything each node sends is recorded with the
time it came (:attr:`HotStandbyDriver.received`, :attr:`Exchange.answers`), so that a test can
check "exactly one reply per request" and "no reply from A after B's first".

Both are thin asyncio adapters over :class:`~ivr_server.client.IvrClient`; they hold no protocol
rules of their own besides "same documents, same order, to both".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from ivr_server.client.connection import IvrClient
from ivr_server.client.documents import LoginResult, MessageTypes, Received, as_tuple
from ivr_server.client.errors import (
    ClientError,
    ConnectFailed,
    ConnectionLost,
    RequestTimeout,
)
from ivr_server.wire import Message

__all__ = ["Exchange", "HotStandbyDriver", "NodeAddress", "Tagged", "WarmStandbyClient"]

_log = logging.getLogger("ivr_server.client.pair")

BACKOFF_FIRST: Final = 0.1
"""Seconds before the first reconnect attempt to a node that closed the link."""
BACKOFF_MAX: Final = 2.0
"""Longest wait between reconnect attempts (the I-Library's ``time_recon_is`` is 2 s)."""


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """One node of the pair: a name the driver reports it by, and where it listens."""

    name: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Tagged:
    """One document a node sent, with the node and the time (``loop.time()``) it arrived."""

    node: str
    received: Received
    at: float
    login: bool = False
    """A LoginResp or the FlowControl that follows it (what both nodes of a hot pair send)."""

    @property
    def message(self) -> Message:
        return self.received.message


@dataclass(slots=True)
class Exchange:
    """One request sent to the pair, and what each node answered."""

    index: int
    """Its place among the requests this driver sent (1, 2, ...)."""
    call_id: str | None
    request: Message
    sent_to: tuple[str, ...]
    """The nodes it was sent to (those connected and logged in at the time)."""
    sent_at: float
    answers: dict[str, Tagged] = field(default_factory=dict)
    """node -> its answer (none from a node that did not answer within the late window)."""
    indices: dict[str, int] = field(default_factory=dict)
    """node -> the request's index on that node's driver stream (1 for the first document
    after the login; the count a hot standby's marks are in)."""

    @property
    def first(self) -> Tagged | None:
        """The answer that came first, if any."""
        return min(self.answers.values(), key=lambda t: t.at, default=None)


class _Node:
    """One node's connection as the driver keeps it."""

    def __init__(self, address: NodeAddress) -> None:
        self.address = address
        self.client: IvrClient | None = None
        self.up = asyncio.Event()
        """Connected and logged in."""
        self.logins = 0
        self.sent = 0
        """Documents sent since the last login (the index of the last one on the stream)."""
        self.reader: asyncio.Task[None] | None = None


class HotStandbyDriver:
    """A hot-standby driver of a pair of servers. Open it with :meth:`open`.

    ``request()`` sends to both nodes and returns the first answer; ``send()`` fires to both;
    ``expect()`` returns the first matching unsolicited document from either node. A node that
    closes the link (fenced, stopped, killed) is reconnected with backoff and logged in again
    with the same ClientName, as the I-Library does.
    """

    def __init__(
        self,
        nodes: Sequence[NodeAddress],
        client_name: str,
        *,
        late_window: float = 10.0,
        connect_timeout: float = 2.0,
    ) -> None:
        if len({n.name for n in nodes}) != len(nodes) or not nodes:
            raise ValueError("a pair needs nodes with distinct names")
        self._loop = asyncio.get_running_loop()
        self._nodes = {n.name: _Node(n) for n in nodes}
        self.client_name = client_name
        self.late_window = late_window
        """How long a request stays open for a late answer after it was sent (a standby's
        replay after takeover answers it then)."""
        self.connect_timeout = connect_timeout
        self.session_call_id = ""
        self.exchanges: list[Exchange] = []
        """Every request sent, in order."""
        self.received: list[Tagged] = []
        """Every document any node sent (answers, unsolicited, login replies), in arrival
        order."""
        self.logins: list[tuple[str, LoginResult, float]] = []
        """Every login done: node, result, time."""
        self.sent: list[tuple[str | None, str, dict[str, int]]] = []
        """Every document sent with :meth:`send`: CallId, element, node -> its index on that
        node's stream (requests: :attr:`Exchange.indices`)."""
        self.primary: str | None = None
        """The node that sent the last response."""
        self._inbox: list[Tagged] = []
        self._arrived = asyncio.Event()
        self._tasks: set[asyncio.Task[Tagged | None]] = set()
        self._watchers: list[asyncio.Task[None]] = []
        self._closing = False

    @classmethod
    async def open(
        cls,
        nodes: Sequence[NodeAddress],
        client_name: str,
        *,
        login_timeout: float = 5.0,
        late_window: float = 10.0,
        connect_timeout: float = 2.0,
    ) -> HotStandbyDriver:
        """Connect and log in to every node (the same LoginReq, the same session CallId).
        Raises :class:`ConnectFailed` when none can be reached; a node that cannot is retried
        in the background."""
        driver = cls(nodes, client_name, late_window=late_window, connect_timeout=connect_timeout)
        probe = IvrClient(loop=driver._loop)
        driver.session_call_id = probe.new_call_id("L")
        for node in driver._nodes.values():
            driver._watchers.append(driver._loop.create_task(driver._keep(node)))
        try:
            async with asyncio.timeout(login_timeout):
                waits = [asyncio.ensure_future(n.up.wait()) for n in driver._nodes.values()]
                try:
                    await asyncio.wait(waits, return_when=asyncio.ALL_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
        except TimeoutError:
            if not driver.connected:
                await driver.close()
                raise ConnectFailed(
                    f"no node of {[n.address for n in driver._nodes.values()]} "
                    f"logged in within {login_timeout:g} s"
                ) from None
        return driver

    @property
    def connected(self) -> tuple[str, ...]:
        """The nodes connected and logged in now."""
        return tuple(name for name, node in self._nodes.items() if node.up.is_set())

    def client(self, node: str) -> IvrClient | None:
        """The node's current connection (``None`` while it is down)."""
        return self._nodes[node].client

    async def wait_connected(self, node: str, timeout: float) -> None:
        """Wait until ``node`` is connected and logged in. Raises :class:`RequestTimeout`."""
        try:
            async with asyncio.timeout(timeout):
                await self._nodes[node].up.wait()
        except TimeoutError:
            raise RequestTimeout(f"node {node} not logged in within {timeout:g} s") from None

    async def close(self) -> None:
        """Close both links and stop every background task."""
        self._closing = True
        for task in [*self._watchers, *self._tasks]:
            task.cancel()
        for node in self._nodes.values():
            if node.client is not None:
                with contextlib.suppress(ClientError):
                    await node.client.close()
            if node.reader is not None:
                node.reader.cancel()
        await asyncio.gather(*self._watchers, *self._tasks, return_exceptions=True)

    async def __aenter__(self) -> HotStandbyDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ sending

    def new_call_id(self, prefix: str = "") -> str:
        """A CallId never returned before in this process (:meth:`IvrClient.new_call_id`)."""
        for node in self._nodes.values():
            if node.client is not None:
                return node.client.new_call_id(prefix)
        return IvrClient(loop=self._loop).new_call_id(prefix)

    def send(self, call_id: str | None, message: Message) -> tuple[str, ...]:
        """Send to every connected node, in the same order as every other document; no answer
        awaited. Returns the nodes it went to."""
        indices: dict[str, int] = {}
        for name, node in self._nodes.items():
            client = node.client
            if client is not None and node.up.is_set() and not client.closed:
                try:
                    client.send(call_id, message)
                except ConnectionLost:
                    continue
                node.sent += 1
                indices[name] = node.sent
        self.sent.append((call_id, message.tag, indices))
        return tuple(indices)

    async def request(
        self,
        call_id: str | None,
        message: Message,
        *,
        expect: MessageTypes | None = None,
        timeout: float = 5.0,
    ) -> Received:
        """Send ``message`` to every connected node and return the first answer (as
        :meth:`IvrClient.request` matches answers). The other node's answer, if it ever comes
        within :attr:`late_window`, is recorded in the :class:`Exchange` (see
        :attr:`exchanges`). Raises :class:`RequestTimeout` when no node answers in ``timeout``,
        :class:`ConnectionLost` when no node is connected."""
        exchange, waits = self._dispatch(call_id, message, expect)
        if not waits:
            raise ConnectionLost(f"no node of the pair is connected to send {message.tag}")
        pending = set(waits)
        deadline = self._loop.time() + timeout
        while pending:
            left = deadline - self._loop.time()
            if left <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                tagged = task.result()
                if tagged is not None:
                    return tagged.received
        raise RequestTimeout(
            f"no node answered {message.tag} on CallId {call_id!r} within {timeout:g} s "
            f"(sent to {exchange.sent_to})"
        )

    def _dispatch(
        self, call_id: str | None, message: Message, expect: MessageTypes | None
    ) -> tuple[Exchange, list[asyncio.Task[Tagged | None]]]:
        """Send to every connected node now, in this order (the requests' tasks start in the
        order they are made: asyncio runs ready callbacks first in, first out, so two requests
        reach both nodes in the same order)."""
        targets = [
            (name, node)
            for name, node in self._nodes.items()
            if node.client is not None and node.up.is_set() and not node.client.closed
        ]
        exchange = Exchange(
            index=len(self.exchanges) + 1,
            call_id=call_id,
            request=message,
            sent_to=tuple(name for name, _ in targets),
            sent_at=self._loop.time(),
        )
        self.exchanges.append(exchange)
        waits: list[asyncio.Task[Tagged | None]] = []
        for name, node in targets:
            assert node.client is not None
            node.sent += 1  # its task writes it before any later document (FIFO start)
            exchange.indices[name] = node.sent
            task = self._loop.create_task(self._one(name, node.client, exchange, expect))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            waits.append(task)
        return exchange, waits

    async def _one(
        self, name: str, client: IvrClient, exchange: Exchange, expect: MessageTypes | None
    ) -> Tagged | None:
        try:
            received = await client.request(
                exchange.call_id, exchange.request, expect=expect, timeout=self.late_window
            )
        except (RequestTimeout, ConnectionLost):
            return None
        tagged = Tagged(name, received, self._loop.time())
        exchange.answers[name] = tagged
        self.received.append(tagged)
        self.primary = name
        return tagged

    # ------------------------------------------------------------------ receiving

    async def expect(
        self,
        call_id: str | None = None,
        *,
        types: MessageTypes | None = None,
        timeout: float = 5.0,
        node: str | None = None,
        predicate: Callable[[Tagged], bool] | None = None,
    ) -> Tagged:
        """The first unsolicited document from either node (``node``: that one only) with this
        CallId and of these types; the others stay queued. Raises :class:`RequestTimeout`."""
        wanted = as_tuple(types)

        def accepts(t: Tagged) -> bool:
            return (
                (call_id is None or t.received.call_id == call_id)
                and (not wanted or isinstance(t.message, wanted))
                and (node is None or t.node == node)
                and (predicate is None or predicate(t))
            )

        deadline = self._loop.time() + timeout
        while True:
            for i, tagged in enumerate(self._inbox):
                if accepts(tagged):
                    del self._inbox[i]
                    return tagged
            left = deadline - self._loop.time()
            if left <= 0:
                what = "/".join(t.tag for t in wanted) or "document"
                raise RequestTimeout(f"no {what} on CallId {call_id!r} within {timeout:g} s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._arrived.wait()

    def unsolicited(self) -> list[Tagged]:
        """The unsolicited documents not taken by :meth:`expect` yet (and drop them)."""
        taken, self._inbox = self._inbox, []
        return taken

    def sent_by(self, node: str, *, after_login: bool = True) -> list[Tagged]:
        """Everything ``node`` sent (``after_login``: except LoginResp and the FlowControl
        right after each login), in order."""
        return [t for t in self.received if t.node == node and not (after_login and t.login)]

    # ------------------------------------------------------------------ connection keeping

    async def _keep(self, node: _Node) -> None:
        """Connect and log in to ``node``; when the link closes, do it again, with backoff."""
        backoff = BACKOFF_FIRST
        while not self._closing:
            address = node.address
            try:
                client = await IvrClient.connect(
                    address.host, address.port, connect_timeout=self.connect_timeout
                )
            except ConnectFailed:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            node.client = client
            try:
                call_id = self.session_call_id if node.logins == 0 else None
                result = await client.login(self.client_name, call_id=call_id)
            except ClientError as exc:
                _log.info("login to %s failed: %s", address.name, exc)
                node.client = None
                with contextlib.suppress(ClientError):
                    await client.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            now = self._loop.time()
            node.logins += 1
            node.sent = 0
            self.logins.append((address.name, result, now))
            self.received.append(
                Tagged(address.name, Received(result.call_id, result.response), now, login=True)
            )
            if result.flow_control is not None:
                self.received.append(
                    Tagged(
                        address.name, Received(result.call_id, result.flow_control), now, login=True
                    )
                )
            node.up.set()
            backoff = BACKOFF_FIRST
            node.reader = self._loop.create_task(self._read(node.address.name, client))
            await asyncio.shield(node.reader)
            node.up.clear()
            node.client = None
            if not self._closing:
                _log.info(
                    "node %s closed the link (%s): reconnecting", address.name, client.close_reason
                )
                await asyncio.sleep(backoff)

    async def _read(self, name: str, client: IvrClient) -> None:
        async for received in client.events():
            tagged = Tagged(name, received, self._loop.time())
            self.received.append(tagged)
            self._inbox.append(tagged)
            self._arrived.set()


class WarmStandbyClient:
    """A warm-standby driver: it knows every node's address, is connected to one at a time,
    and when that link closes reconnects and logs in to whichever listens (the standby opens
    its IVR listener only once it holds the lease). Requests are never re-sent by it: one that
    was in flight when the link closed raises :class:`ConnectionLost` (the I-Library's
    ``ilRET_CONN_CLOSED``)."""

    def __init__(
        self, nodes: Sequence[NodeAddress], client_name: str, *, connect_timeout: float = 1.0
    ) -> None:
        if not nodes:
            raise ValueError("a warm-standby client needs at least one node")
        self.nodes = tuple(nodes)
        self.client_name = client_name
        self.connect_timeout = connect_timeout
        self.client: IvrClient | None = None
        """The current connection (``None`` while none)."""
        self.node: str | None = None
        """The node it is connected to."""
        self.logins: list[tuple[str, LoginResult]] = []

    async def connect(self, timeout: float = 10.0) -> str:
        """Connect and log in to the first node that accepts, trying them in turn with
        backoff for up to ``timeout`` seconds; returns the node's name. Raises
        :class:`ConnectFailed`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        backoff = BACKOFF_FIRST
        while True:
            for address in self.nodes:
                try:
                    client = await IvrClient.connect(
                        address.host, address.port, connect_timeout=self.connect_timeout
                    )
                except ConnectFailed:
                    continue
                try:
                    result = await client.login(self.client_name)
                except ClientError:
                    with contextlib.suppress(ClientError):
                        await client.close()
                    continue
                if result.response.Result != "Success":
                    await client.close()
                    continue
                self.client, self.node = client, address.name
                self.logins.append((address.name, result))
                return address.name
            if loop.time() + backoff > deadline:
                raise ConnectFailed(f"no node of {self.nodes} accepted within {timeout:g} s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def reconnect(self, timeout: float = 10.0) -> str:
        """Close the current link (if any) and :meth:`connect` again."""
        await self.close()
        return await self.connect(timeout)

    def _current(self) -> IvrClient:
        if self.client is None or self.client.closed:
            raise ConnectionLost("not connected to any node")
        return self.client

    async def request(
        self,
        call_id: str | None,
        message: Message,
        *,
        expect: MessageTypes | None = None,
        timeout: float = 5.0,
    ) -> Received:
        """:meth:`IvrClient.request` on the current node."""
        return await self._current().request(call_id, message, expect=expect, timeout=timeout)

    def send(self, call_id: str | None, message: Message) -> None:
        """:meth:`IvrClient.send` on the current node."""
        self._current().send(call_id, message)

    async def expect(
        self,
        call_id: str | None = None,
        *,
        types: MessageTypes | None = None,
        timeout: float = 5.0,
    ) -> Received:
        """:meth:`IvrClient.expect` on the current node."""
        return await self._current().expect(call_id, types=types, timeout=timeout)

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(ClientError):
                await self.client.close()
        self.client, self.node = None, None

    async def __aenter__(self) -> WarmStandbyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
