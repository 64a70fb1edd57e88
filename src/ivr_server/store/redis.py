"""The state store on Redis 7 (docs/store.md, MODES-AND-HA §3.4-§3.5).

One connection, commands packed by hiredis (C) and pipelined, replies parsed by hiredis and
matched to their callers in order; every state change and lease decision done by the function
library of :mod:`ivr_server.store.functions`, so that fencing is checked inside Redis.

Why not redis-py's asyncio client for the write path: it costs ~24 µs of client CPU per event
(MODES-AND-HA §3.4) against 1.4-4.6 µs for one ``FCALL`` packed with ``hiredis.pack_command`` and
written to the socket at once, and the write path runs on every turn of the event loop that
changed a call. redis-py is used for what it does well and where speed does not matter: parsing
the store's URL (every form redis-py accepts: ``redis://``, ``rediss://``, ``unix://``, the db
in the path or ``?db=``, user and password).

Incarnations (docs/store.md §3): every connection reads the server's ``run_id`` (``INFO
server``), new at every start of a ``redis-server`` and different on a replica that Sentinel
promoted. A store found to be another incarnation than the one a slot's lease was last acquired
or renewed on may hold an older state (restarted from an RDB snapshot, failed over to a replica
that lacked writes): the slot's batches are refused (``Fenced``, ``current`` ``None``, as for a
slot the store lost) until ``renew`` reclaimed it and answered ``None`` (the caller writes its
whole state back), and for one lease no free lease is taken (``acquire`` raises
``StoreUnavailable``): a holder that is alive reclaims it first.

Sentinel (``redis+sentinel://[user:password@]host1[:26379][,host2[:26379]...]/<master>[/db]``,
the form of the Redis-Sentinel-Url package and of Prefect and RedisVL): at every (re)connect
the sentinels are asked, in turn, for the primary (``SENTINEL get-master-addr-by-name``), which
must answer ``ROLE`` ``master``; the connection is then the same as ``redis://``. A fail-over
looks like a restart: a new ``run_id``, the whole state written back.

Time-outs: a watchdog (one timer, not one per command) fails the connection when the oldest
command has waited longer than ``timeout`` and no byte came meanwhile (a long reply that keeps
coming, as a load of 50,000 records, is not a hung store): every pending command then raises
:class:`StoreUnavailable`, and the next call connects again (and loads the library, which a
store restarted empty has lost).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import hiredis
from redis import connection as _redis_connection

from ivr_server.store.functions import LIBRARY, VERSION
from ivr_server.store.protocol import (
    Batch,
    Fenced,
    Lease,
    NodePresence,
    SlotVersion,
    StoreError,
    StoreUnavailable,
)

__all__ = ["RedisStore", "SentinelUrl", "parse_sentinel_url"]

log = logging.getLogger("ivr_server.ha")

SENTINEL_SCHEME = "redis+sentinel://"
SENTINEL_PORT = 26379

APPLY_CHUNK = 512
"""Objects per ``FCALL ivrs_apply`` of a large batch (:meth:`RedisStore._chunks`)."""

LOAD_CHUNK = 1000
"""Object keys per ``MGET`` of :meth:`RedisStore.load` (all chunks are written at once)."""

_Transform = Callable[[list[Any]], Any]

_pack = cast("Callable[[tuple[Any, ...]], bytes]", hiredis.pack_command)
"""``hiredis.pack_command`` (its stub wrongly types the argument as a 1-tuple)."""
_parse_url = cast("Callable[[str], dict[str, Any]]", _redis_connection.parse_url)


def _first(replies: list[Any]) -> Any:
    return replies[0]


class SentinelUrl:
    """A parsed ``redis+sentinel://`` URL: the sentinels, the master's name and the options of
    the connection to the primary (``username``, ``password``, ``db``, as redis-py's
    ``parse_url`` gives them for ``redis://``)."""

    __slots__ = ("master", "options", "sentinel_options", "sentinels")

    def __init__(
        self,
        sentinels: list[tuple[str, int]],
        master: str,
        options: dict[str, Any],
        sentinel_options: dict[str, Any],
    ) -> None:
        self.sentinels = sentinels
        self.master = master
        self.options = options
        self.sentinel_options = sentinel_options
        """``username``/``password`` for the sentinels (``?sentinel_username=``,
        ``?sentinel_password=``), when they want AUTH."""

    def public(self) -> str:
        """The URL without passwords (logs, the web view)."""
        user = self.options.get("username")
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.sentinels)
        return f"{SENTINEL_SCHEME}{user + '@' if user else ''}{hosts}/{self.master}/" + str(
            self.options.get("db", 0)
        )


def parse_sentinel_url(url: str) -> SentinelUrl:
    """``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<master>[/<db>]``
    (sentinels' port 26379 by default; ``?db=`` and ``?password=`` as for ``redis://``;
    ``?sentinel_username=`` and ``?sentinel_password=`` for sentinels that want AUTH).
    Raises ``ValueError`` on a malformed one."""
    if not url.startswith(SENTINEL_SCHEME):
        raise ValueError(f"not a {SENTINEL_SCHEME} URL: {url!r}")
    rest = url[len(SENTINEL_SCHEME) :]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    options: dict[str, Any] = {}
    if at:
        user, colon, password = userinfo.partition(":")
        if user:
            options["username"] = unquote(user)
        if colon and password:
            options["password"] = unquote(password)
    sentinels: list[tuple[str, int]] = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [v6 address]:port
            host, _, tail = item[1:].partition("]")
            port_text = tail[1:] if tail.startswith(":") else ""
        else:
            host, _, port_text = item.partition(":")
        try:
            port = int(port_text) if port_text else SENTINEL_PORT
        except ValueError as exc:
            raise ValueError(f"{SENTINEL_SCHEME}: bad port in {item!r}") from exc
        if not host:
            raise ValueError(f"{SENTINEL_SCHEME}: a sentinel without a host in {url!r}")
        sentinels.append((host, port))
    if not sentinels:
        raise ValueError(f"{SENTINEL_SCHEME}: no sentinel in {url!r}")
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts:
        raise ValueError(f"{SENTINEL_SCHEME}: the master's name is missing in {url!r}")
    master = parts[0]
    db = parts[1] if len(parts) > 1 else "0"
    sentinel_options: dict[str, Any] = {}
    for key, value in parse_qsl(query):
        if key == "db":
            db = value
        elif key == "password":
            options["password"] = value
        elif key in ("sentinel_username", "sentinel_password"):
            sentinel_options[key.removeprefix("sentinel_")] = value
        else:
            raise ValueError(f"{SENTINEL_SCHEME}: unknown option {key!r}")
    try:
        options["db"] = int(db)
    except ValueError as exc:
        raise ValueError(f"{SENTINEL_SCHEME}: bad db {db!r}") from exc
    return SentinelUrl(sentinels, master, options, sentinel_options)


def _run_id(info: Any) -> str | None:
    """The ``run_id`` of an ``INFO server`` reply (``None``: refused, as by an ACL without
    ``+info``, or absent)."""
    if not isinstance(info, bytes):
        return None
    for line in info.split(b"\r\n"):
        if line.startswith(b"run_id:"):
            return line[7:].decode("ascii", "replace").strip() or None
    return None


def _is_missing_function(reply: Any) -> bool:
    return isinstance(reply, hiredis.ReplyError) and "function not found" in str(reply).lower()


class _Pending:
    """One command (or a few written together) awaiting its replies."""

    __slots__ = ("future", "nreplies", "packed", "replies", "retried", "sent", "transform")

    def __init__(
        self,
        future: asyncio.Future[Any],
        packed: bytes,
        nreplies: int,
        transform: _Transform,
        sent: float,
    ) -> None:
        self.future = future
        self.packed = packed
        self.nreplies = nreplies
        self.transform = transform
        self.sent = sent
        self.replies: list[Any] = []
        self.retried = False


class _Connection(asyncio.Protocol):
    """One connection to Redis: writes packed commands, parses replies, resolves the callers'
    futures first in, first out. A library found missing (``Function not found``: the store
    restarted empty) is loaded again and the commands that failed for want of it are sent again,
    once, in their order; commands issued meanwhile wait behind them (``_held``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.pending: deque[_Pending] = deque()
        self.closed: BaseException | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._held: list[_Pending] | None = None
        self._before_reload = 0
        self.heard = 0.0
        """When bytes last came (a long reply that keeps coming is not a hung store)."""
        self.run_id: str | None = None
        """The server's ``run_id`` (the handshake's ``INFO server``): its incarnation."""

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports (the server runs on uvloop) are no asyncio.Transport subclass
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.heard = self.loop.time()
        reader = self.reader
        reader.feed(data)
        pending = self.pending
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(StoreUnavailable(f"redis: garbled reply ({exc})"))
                return
            if reply is False:
                return
            if not pending:  # a reply nobody asked for: the stream is out of step
                self.fail(StoreUnavailable("redis: unexpected reply"))
                return
            entry = pending[0]
            entry.replies.append(reply)
            if len(entry.replies) < entry.nreplies:
                continue
            pending.popleft()
            self._answered(entry)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(StoreUnavailable(f"redis: connection lost ({exc or 'closed'})"))

    # -- commands

    def send(self, packed: bytes, nreplies: int, transform: _Transform) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        if self.closed is not None:
            future.set_exception(StoreUnavailable(str(self.closed)))
            return future
        entry = _Pending(future, packed, nreplies, transform, self.loop.time())
        if self._held is not None:
            self._held.append(entry)
        else:
            self._write(entry)
        return future

    def _write(self, entry: _Pending) -> None:
        assert self.transport is not None
        self.transport.write(entry.packed)
        self.pending.append(entry)
        if self._watchdog is None:
            self._watchdog = self.loop.call_at(entry.sent + self.timeout, self._check_time)

    def _answered(self, entry: _Pending) -> None:
        if self._held is not None:
            self._before_reload -= 1
        if not entry.retried and any(_is_missing_function(r) for r in entry.replies):
            entry.retried = True
            entry.replies = []
            if self._held is None:  # the first to find the library gone: load it
                self._held = []
                self._before_reload = len(self.pending)
                self._write(
                    _Pending(
                        self.loop.create_future(),
                        _pack((b"FUNCTION", b"LOAD", b"REPLACE", LIBRARY)),
                        1,
                        _first,
                        self.loop.time(),
                    )
                )
            entry.sent = self.loop.time()
            self._write(entry)
        else:
            future = entry.future
            if not future.done():
                try:
                    future.set_result(entry.transform(entry.replies))
                except Exception as exc:  # the caller gets it
                    future.set_exception(exc)
        if self._held is not None and self._before_reload <= 0:
            held, self._held = self._held, None
            for waiting in held:
                waiting.sent = self.loop.time()
                self._write(waiting)

    def _check_time(self) -> None:
        self._watchdog = None
        if not self.pending:
            return
        since = max(self.pending[0].sent, self.heard)
        if self.loop.time() - since >= self.timeout:
            self.fail(StoreUnavailable(f"redis: no answer within {self.timeout} s"))
            return
        self._watchdog = self.loop.call_at(since + self.timeout, self._check_time)

    def fail(self, exc: StoreUnavailable) -> None:
        """Close the connection; every pending command raises ``exc``."""
        if self.closed is None:
            self.closed = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.transport is not None:
            self.transport.abort()
        waiting = list(self.pending) + (self._held or [])
        self.pending.clear()
        self._held = None
        for entry in waiting:
            if not entry.future.done():
                entry.future.set_exception(StoreUnavailable(str(exc)))
                entry.future.exception()  # a caller that gave up must not leave it unretrieved


class RedisStore:
    """A :class:`~ivr_server.store.protocol.StateStore` on Redis 7 (``redis://``, ``rediss://``,
    ``unix://``). ``site`` names the deployment (several may share a Redis); ``timeout`` bounds
    every command (seconds): past it the store is :class:`StoreUnavailable`."""

    def __init__(self, url: str, *, site: str = "ivr", timeout: float = 1.0) -> None:
        self._sentinel: SentinelUrl | None = None
        if url.startswith(SENTINEL_SCHEME):
            self._sentinel = parse_sentinel_url(url)
            self._options: dict[str, Any] = dict(self._sentinel.options)
        else:
            self._options = _parse_url(url)
        self._raw_url = url
        self._site = site
        self._timeout = timeout
        self._base = f"ivrs:{{{site}}}:"
        self._slots_key = self._base + "slots"
        self._slot_prefix = self._base + "s:"
        self._keys: dict[str, tuple[str, str, str, str, str, str, str]] = {}
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None
        self._side: _Connection | None = None
        """:meth:`apply_now`'s connection."""
        self._side_opening: asyncio.Task[None] | None = None
        self._waits: dict[tuple[int, int], bytes] = {}
        self._presence_keys = (self._base + "nodes", self._base + "nodes:until")
        self._incarnation: str | None = None
        """The ``run_id`` of the latest connection."""
        self._changed_at: float | None = None
        """Loop time of the latest connection that found another incarnation than the one
        before (no free lease is taken for one lease after it: :meth:`acquire`)."""
        self._held_on: dict[str, str] = {}
        """slot -> the incarnation its lease was last acquired or renewed on by this client."""
        self.address: tuple[str, int] | None = None
        """Where the current connection goes (Sentinel: the primary they named)."""

    # -- names

    @property
    def url(self) -> str:
        """The store's URL without its password (for logs and the web view)."""
        if self._sentinel is not None:
            return self._sentinel.public()
        parts = urlsplit(self._raw_url)
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
        return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")

    @property
    def site(self) -> str:
        return self._site

    @property
    def incarnation(self) -> str | None:
        """The ``run_id`` of the server this client last connected to."""
        return self._incarnation

    def _slot_keys(self, slot: str) -> tuple[str, str, str, str, str, str, str]:
        """(object prefix, idx, mark, epoch, lease, slot prefix, version) of ``slot``."""
        keys = self._keys.get(slot)
        if keys is None:
            p = f"{self._slot_prefix}{slot}:"
            keys = self._keys[slot] = (
                p + "o:",
                p + "idx",
                p + "mark",
                p + "epoch",
                p + "lease",
                p,
                p + "ver",
            )
        return keys

    # -- connection

    async def connect(self) -> None:
        await self._connection()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail(StoreUnavailable("redis: store closed"))
        side, self._side = self._side, None
        if side is not None:
            side.fail(StoreUnavailable("redis: store closed"))
        opening, self._side_opening = self._side_opening, None
        if opening is not None:
            opening.cancel()

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.closed is None:
            return conn
        if self._connecting is None:
            loop = asyncio.get_running_loop()
            self._connecting = loop.create_future()
            try:
                conn = await self._open()
            except BaseException as exc:
                waiting, self._connecting = self._connecting, None
                if not isinstance(exc, Exception):  # cancelled: the others must not be
                    exc = StoreUnavailable(f"{self.url}: connect abandoned")
                waiting.set_exception(exc)
                waiting.exception()
                raise
            self._conn = conn
            self._new_incarnation(conn, loop.time())
            waiting, self._connecting = self._connecting, None
            waiting.set_result(conn)
            return conn
        return await asyncio.shield(self._connecting)

    def _new_incarnation(self, conn: _Connection, now: float) -> None:
        """Note the incarnation of a new connection; another than before starts the grace of
        :meth:`acquire` (module docstring, "Incarnations")."""
        run_id = conn.run_id
        if run_id is None:
            return
        before = self._incarnation
        self._incarnation = run_id
        if before is not None and before != run_id:
            self._changed_at = now
            log.warning(
                "HA: the store %s is another incarnation (run_id %s, was %s: restarted or failed "
                "over): it may lack acknowledged writes; the slots' leases are reclaimed and "
                "their state written back",
                self.url,
                run_id[:12],
                before[:12],
            )

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        options = self._options
        timeout = self._timeout

        def factory() -> _Connection:
            return _Connection(loop, timeout)

        try:
            async with asyncio.timeout(timeout):
                if self._sentinel is not None:
                    host, port = await self._ask_sentinels()
                    self.address = (host, port)
                    _, conn = await loop.create_connection(factory, host, port)
                elif "path" in options:
                    _, conn = await loop.create_unix_connection(factory, options["path"])
                else:
                    self.address = (
                        options.get("host", "localhost"),
                        int(options.get("port", 6379)),
                    )
                    _, conn = await loop.create_connection(
                        factory, self.address[0], self.address[1], ssl=self._ssl_context()
                    )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise StoreUnavailable(f"{self.url}: cannot connect ({exc!r})") from exc
        try:
            await self._handshake(conn)
        except TimeoutError as exc:
            conn.fail(StoreUnavailable(f"{self.url}: no answer within {timeout} s"))
            raise StoreUnavailable(f"{self.url}: no answer within {timeout} s") from exc
        except BaseException:
            conn.fail(StoreUnavailable(f"{self.url}: handshake failed"))
            raise
        return conn

    async def _ask_sentinels(self) -> tuple[str, int]:
        """The primary's address, from the first sentinel that knows it (each asked in turn,
        within the store's timeout)."""
        sentinel = self._sentinel
        assert sentinel is not None
        problems: list[str] = []
        commands: list[tuple[Any, ...]] = []
        auth = sentinel.sentinel_options
        if auth.get("password"):
            if auth.get("username"):
                commands.append((b"AUTH", auth["username"], auth["password"]))
            else:
                commands.append((b"AUTH", auth["password"]))
        commands.append((b"SENTINEL", b"get-master-addr-by-name", sentinel.master))
        packed = b"".join(_pack(c) for c in commands)
        for host, port in sentinel.sentinels:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                problems.append(f"{host}:{port}: {exc}")
                continue
            try:
                writer.write(packed)
                parser = hiredis.Reader()
                replies: list[Any] = []
                while len(replies) < len(commands):
                    data = await reader.read(65536)
                    if not data:
                        raise ConnectionError("closed")
                    parser.feed(data)
                    while (reply := parser.gets()) is not False:
                        replies.append(reply)
            except (OSError, hiredis.ProtocolError) as exc:
                problems.append(f"{host}:{port}: {exc}")
                continue
            finally:
                writer.close()
            answer = replies[-1]
            if isinstance(answer, list) and len(answer) == 2:
                return answer[0].decode(), int(answer[1])
            problems.append(f"{host}:{port}: {answer!r}")
        raise StoreUnavailable(
            f"{self.url}: no sentinel named the primary of {sentinel.master!r} "
            f"({'; '.join(problems)})"
        )

    def _ssl_context(self) -> ssl.SSLContext | None:
        options = self._options
        if not self._raw_url.startswith("rediss://"):
            return None
        context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
        if options.get("ssl_certfile"):
            context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
        if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "cert_none"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif options.get("ssl_check_hostname") is False:
            context.check_hostname = False
        return context

    async def _handshake(self, conn: _Connection) -> None:
        """AUTH, SELECT, then the function library: loaded when missing or older."""
        options = self._options
        commands: list[tuple[Any, ...]] = []
        if options.get("password"):
            if options.get("username"):
                commands.append((b"AUTH", options["username"], options["password"]))
            else:
                commands.append((b"AUTH", options["password"]))
        if int(options.get("db", 0) or 0):
            commands.append((b"SELECT", int(options["db"])))
        checked = len(commands)
        commands.append((b"INFO", b"server"))
        if self._sentinel is not None:
            commands.append((b"ROLE",))
        commands.append((b"FCALL", b"ivrs_version", 0))
        packed = b"".join(_pack(c) for c in commands)
        async with asyncio.timeout(self._timeout):
            replies = await conn.send(packed, len(commands), list)
        for reply in replies[:checked]:
            _checked(reply)
        conn.run_id = _run_id(replies[checked])
        if self._sentinel is not None:
            role = replies[checked + 1]
            if not (isinstance(role, list) and role and role[0] == b"master"):
                raise StoreUnavailable(
                    f"{self.url}: the server the sentinels named ({self.address}) is not the "
                    f"primary yet ({role!r})"
                )
        version = replies[-1]
        if isinstance(version, int) and version >= VERSION:
            return
        if isinstance(version, hiredis.ReplyError):
            problem = _error(version)
            if isinstance(problem, StoreUnavailable):
                raise problem
            if not _is_missing_function(version):
                raise StoreError(f"{self.url}: {version} (Redis 7 or later is needed)")
        loaded = await conn.send(_pack((b"FUNCTION", b"LOAD", b"REPLACE", LIBRARY)), 1, _first)
        if isinstance(loaded, hiredis.ReplyError):
            raise StoreError(f"{self.url}: cannot load the function library: {loaded}")

    async def _call(self, command: tuple[Any, ...], transform: _Transform = _first) -> Any:
        conn = self._conn
        if conn is None or conn.closed is not None:
            conn = await self._connection()
        return await conn.send(_pack(command), 1, transform)

    # -- the write path

    async def apply(self, batch: Batch, *, replicas: int = 0, wait_timeout: float = 0.05) -> int:
        conn = self._conn
        if conn is None or conn.closed is not None:
            conn = await self._connection()
        return await self._send_apply(conn, batch, replicas, wait_timeout)  # type: ignore[no-any-return]

    def apply_now(self, batch: Batch) -> asyncio.Future[int]:
        """On a second connection of its own (opened on first use; the main one until it is
        up): the main one may be blocked in a ``WAIT`` (``durability = replica``), behind which
        Redis would not read this command, and would drop it unread if this process died (its
        client freed with its input). The batches this follows were acknowledged already, so
        the order of the two connections does not matter."""
        conn = self._side
        if conn is None or conn.closed is not None:
            self._open_side()
            conn = self._conn
        if conn is None or conn.closed is not None:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            future.set_exception(StoreUnavailable(f"{self.url}: not connected"))
            return future
        try:
            return self._send_apply(conn, batch, 0, 0.0)
        except StoreError as exc:
            future = asyncio.get_running_loop().create_future()
            future.set_exception(exc)
            return future

    def _open_side(self) -> None:
        """Open :meth:`apply_now`'s connection in the background (once at a time)."""
        if self._side_opening is not None or self._conn is None:
            return

        async def open_side() -> None:
            try:
                conn = await self._open()
            except (StoreError, OSError) as exc:
                log.debug("HA: %s: second connection not opened (%r)", self.url, exc)
                return
            finally:
                self._side_opening = None
            main = self._conn
            if main is None or main.closed is not None or main.run_id != conn.run_id:
                conn.fail(StoreUnavailable(f"{self.url}: not the main connection's server"))
                return
            old, self._side = self._side, conn
            if old is not None:
                old.fail(StoreUnavailable(f"{self.url}: replaced"))

        self._side_opening = asyncio.get_running_loop().create_task(open_side())

    def _send_apply(
        self, conn: _Connection, batch: Batch, replicas: int, wait_timeout: float
    ) -> asyncio.Future[Any]:
        """Write ``batch``'s ``FCALL`` (and ``WAIT``) on ``conn`` now; the future of its answer."""
        held = self._held_on.get(batch.slot)
        if held is not None and held != conn.run_id and conn.run_id is not None:
            # another incarnation, maybe with an older state: the renewal reclaims it first
            raise Fenced(batch.slot, batch.epoch, None)
        objects, idx, mark, epoch_key, _lease, _p, ver = self._slot_keys(batch.slot)
        puts = batch.puts
        deletes = batch.deletes
        if len(puts) + len(deletes) > APPLY_CHUNK:
            packed, count = self._chunks(batch)
        else:
            count = 1
            packed = _pack(
                (
                    b"FCALL",
                    b"ivrs_apply",
                    4,
                    epoch_key,
                    idx,
                    mark,
                    ver,
                    objects,
                    batch.epoch,
                    len(puts),
                    len(deletes),
                    *chain.from_iterable(puts.items()),
                    *deletes,
                    *chain.from_iterable(batch.marks.items()),
                )
            )
        if replicas > 0:
            packed += self._wait(replicas, wait_timeout)
            count += 1
        return conn.send(packed, count, _ApplyAnswer(batch.slot, batch.epoch, replicas > 0))

    def _chunks(self, batch: Batch) -> tuple[bytes, int]:
        """A large batch (a resync of everything, an adoption) as several ``FCALL`` of
        :data:`APPLY_CHUNK` objects, written at once: each is atomic and fenced, Redis serves
        other clients (the other node's lease) between them, and packing stays linear (one
        ``pack_command`` of 50,000 records costs 11 µs per record, of 512 under 1 µs). The
        deletes go first, the marks with the last chunk: a mark never covers what is not
        written yet."""
        objects, idx, mark, epoch_key, _lease, _p, ver = self._slot_keys(batch.slot)
        head = (b"FCALL", b"ivrs_apply", 4, epoch_key, idx, mark, ver, objects, batch.epoch)
        parts: list[bytes] = []
        deletes = list(batch.deletes)
        for start in range(0, len(deletes), APPLY_CHUNK):
            chunk = deletes[start : start + APPLY_CHUNK]
            parts.append(_pack((*head, 0, len(chunk), *chunk)))
        puts = list(batch.puts.items())
        for start in range(0, len(puts), APPLY_CHUNK):
            chunk_puts = puts[start : start + APPLY_CHUNK]
            parts.append(_pack((*head, len(chunk_puts), 0, *chain.from_iterable(chunk_puts))))
        marks = tuple(chain.from_iterable(batch.marks.items()))
        if marks:
            parts.append(_pack((*head, 0, 0, *marks)))
        return b"".join(parts), len(parts)

    def _wait(self, replicas: int, wait_timeout: float) -> bytes:
        key = (replicas, max(1, round(wait_timeout * 1000)))  # WAIT 0 would wait for ever
        packed = self._waits.get(key)
        if packed is None:
            packed = self._waits[key] = _pack((b"WAIT", key[0], key[1]))
        return packed

    # -- leases

    async def acquire(self, slot: str, node: str, lease: float) -> int | None:
        conn = await self._connection()
        changed = self._changed_at
        if changed is not None and conn.loop.time() - changed < lease:
            held = await self._leases((slot,))
            if not held:  # free, on a store that changed under us: its holder reclaims first
                raise StoreUnavailable(
                    f"{self.url} is another incarnation since "
                    f"{conn.loop.time() - changed:.3f} s: the free lease of {slot!r} is not "
                    "taken for one lease (its holder may be alive and reclaim it)"
                )
        _o, _i, _m, epoch, lease_key, _p, _v = self._slot_keys(slot)
        reply = await conn.send(
            _pack(
                (
                    b"FCALL",
                    b"ivrs_acquire",
                    3,
                    epoch,
                    lease_key,
                    self._slots_key,
                    slot,
                    node,
                    _ms(lease),
                )
            ),
            1,
            _first,
        )
        if reply is None:
            return None
        acquired = int(_checked(reply))
        if conn.run_id is not None:
            self._held_on[slot] = conn.run_id
        return acquired

    async def renew(self, slot: str, node: str, epoch: int, lease: float) -> bool | None:
        conn = await self._connection()
        held = self._held_on.get(slot)
        reclaim = held is not None and conn.run_id is not None and held != conn.run_id
        _o, _i, _m, epoch_key, lease_key, _p, _v = self._slot_keys(slot)
        command: tuple[Any, ...] = (
            b"FCALL",
            b"ivrs_renew",
            3,
            epoch_key,
            lease_key,
            self._slots_key,
            slot,
            node,
            epoch,
            _ms(lease),
        )
        reply = _checked(
            await conn.send(_pack((*command, b"1") if reclaim else command), 1, _first)
        )
        if reply in (1, 2) and conn.run_id is not None:
            self._held_on[slot] = conn.run_id
        elif reply == 0:
            self._held_on.pop(slot, None)
        if reply == 2:
            return None
        return bool(reply == 1)

    async def release(self, slot: str, node: str, epoch: int) -> None:
        _o, _i, _m, _e, lease_key, _p, _v = self._slot_keys(slot)
        self._held_on.pop(slot, None)
        _checked(await self._call((b"FCALL", b"ivrs_release", 1, lease_key, node, epoch)))

    async def holder(self, slot: str) -> Lease | None:
        found = await self._leases((slot,))
        return found[0] if found else None

    async def leases(self) -> list[Lease]:
        return await self._leases(())

    async def _leases(self, slots: tuple[str, ...]) -> list[Lease]:
        reply = _checked(
            await self._call(
                (b"FCALL", b"ivrs_leases", 1, self._slots_key, self._slot_prefix, *slots)
            )
        )
        return [
            Lease(reply[i].decode(), reply[i + 1].decode(), int(reply[i + 2]), reply[i + 3] / 1000)
            for i in range(0, len(reply), 4)
        ]

    # -- reads

    async def slots(self) -> list[str]:
        reply = _checked(
            await self._call((b"FCALL", b"ivrs_slots", 1, self._slots_key, self._slot_prefix))
        )
        return [name.decode() for name in reply]

    async def load(self, slot: str) -> dict[str, bytes]:
        objects, idx, _m, _e, _l, _p, _v = self._slot_keys(slot)
        members: list[bytes] = _checked(await self._call((b"SMEMBERS", idx)))
        if not members:
            return {}
        prefix = objects.encode()
        chunks = [members[i : i + LOAD_CHUNK] for i in range(0, len(members), LOAD_CHUNK)]
        packed = b"".join(_pack((b"MGET", *[prefix + key for key in chunk])) for chunk in chunks)
        conn = await self._connection()
        replies: list[Any] = await conn.send(packed, len(chunks), list)
        out: dict[str, bytes] = {}
        for chunk, values in zip(chunks, replies, strict=True):
            _checked(values)
            for key, value in zip(chunk, values, strict=True):
                if value is not None:
                    out[key.decode()] = value
        return out

    async def version(self, slot: str) -> SlotVersion:
        conn = self._conn
        if conn is None or conn.closed is not None:
            conn = await self._connection()
        ver = self._slot_keys(slot)[6]
        writes = _checked(await conn.send(_pack((b"GET", ver)), 1, _first))
        return SlotVersion(conn.run_id, int(writes) if writes is not None else 0)

    async def marks(self, slot: str, streams: Iterable[str]) -> dict[str, int]:
        names = list(streams)
        if not names:
            return {}
        _o, _i, mark, _e, _l, _p, _v = self._slot_keys(slot)
        values = _checked(await self._call((b"HMGET", mark, *names)))
        return {name: int(v) for name, v in zip(names, values, strict=True) if v is not None}

    async def drop(self, slot: str, node: str, epoch: int) -> None:
        objects, idx, mark, epoch_key, _l, _p, ver = self._slot_keys(slot)
        reply = await self._call(
            (b"FCALL", b"ivrs_drop", 4, epoch_key, idx, mark, ver, objects, epoch)
        )
        _fenced_or_checked(reply, slot, epoch)

    # -- presence

    async def heartbeat(self, node: str, record: bytes, ttl: float) -> None:
        records, deadlines = self._presence_keys
        _checked(
            await self._call(
                (b"FCALL", b"ivrs_heartbeat", 2, records, deadlines, node, record, _ms(ttl))
            )
        )

    async def presence(self) -> dict[str, NodePresence]:
        records, deadlines = self._presence_keys
        reply = _checked(await self._call((b"FCALL", b"ivrs_presence", 2, records, deadlines)))
        found = {
            reply[i].decode(): NodePresence(reply[i].decode(), reply[i + 1], reply[i + 2] / 1000)
            for i in range(0, len(reply), 3)
        }
        return dict(sorted(found.items()))


class _ApplyAnswer:
    """Turns the replies of ``FCALL ivrs_apply`` (one, or one per chunk of a large batch) and
    of its ``WAIT`` into apply's result: fenced if any was."""

    __slots__ = ("epoch", "slot", "wait")

    def __init__(self, slot: str, epoch: int, wait: bool) -> None:
        self.slot = slot
        self.epoch = epoch
        self.wait = wait

    def __call__(self, replies: list[Any]) -> int:
        if not self.wait:
            for reply in replies:
                _fenced_or_checked(reply, self.slot, self.epoch)
            return 0
        for reply in replies[:-1]:
            _fenced_or_checked(reply, self.slot, self.epoch)
        return int(_checked(replies[-1]))


TRANSIENT = frozenset(
    {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "READONLY", "NOREPLICAS", "OOM", "CLUSTERDOWN"}
)
"""Error codes of a Redis that cannot write *now* (loading its data, a replica after a
failover, ``min-replicas-to-write`` not met, out of memory): the store is unavailable, the node
goes on per ``[ha] on-store-loss`` and tries again, as when the connection is lost."""


def _error(reply: hiredis.ReplyError) -> StoreError:
    text = str(reply)
    if text.split(" ", 1)[0] in TRANSIENT:
        return StoreUnavailable(f"redis: {text}")
    return StoreError(f"redis: {text}")


def _fenced_or_checked(reply: Any, slot: str, epoch: int) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        text = str(reply)
        if text.startswith("FENCED "):
            current = text[7:]
            raise Fenced(slot, epoch, None if current == "none" else int(current))
        raise _error(reply)
    return reply


def _checked(reply: Any) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        raise _error(reply)
    return reply


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
