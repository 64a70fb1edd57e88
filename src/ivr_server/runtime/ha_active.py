"""Active nodes (``[ha] mode = "active"``, load balancing): every node serves its own calls under
its own slot; the survivors adopt a dead node's calls; the nodes see each other's busy ports and
agents (MODES-AND-HA §3.5, "Load balancing / N active nodes"; docs/ha.md, "Active nodes").

Theory of operation. The node (:class:`~ivr_server.runtime.ha.HaNode`) holds the slot named by
its node id as leader from the start and writes its state there (its writer, one batch per
turn). :class:`ActiveMode` adds, every ``[ha] poll``:

1. **Facts.** The node's :class:`~ivr_server.service.peers_state.NodeFacts` (busy ports, agents,
   calls) are written, when they changed, to a small slot of their own, ``<node>@facts`` (held
   under a lease like the node's slot: ``load`` of a node's whole slot would read every call),
   and the live peers' facts are read into the service's read-only
   :class:`~ivr_server.service.peers_state.PeerState` (``ServiceContext.peers``). Staleness:
   two polls plus a round trip.
2. **Adoption.** A slot with state but no live lease is a dead node's (``store.slots()`` minus
   ``store.leases()``). Every survivor tries ``store.acquire`` of it; the store's lease lets
   exactly one win. The winner loads the records, copies the call-side ones (``call:``, the
   switch view's calls, pending dial-outs; the DN records of agents the dead node held, where
   this node's DN has none) into its own slot with its own epoch, drops the dead slot and
   releases it, then restores them (``StatePersistence.restore``: the calls have no session)
   and gives them to live sessions of their IVRs (``IvrService.bind_orphans``). The counters
   of the dead node (``sw:*:ctr``, ``ctr:*``) are not taken: this node's own go on (ConnIDs are
   seeded per process). The records are written to this node's slot before they are restored,
   so that no later change of an adopted call, written by the node's writer, can be overwritten
   by the copy. A driver that re-sends a dead node's CallIds to the adopter gets answers; the
   Genesys I-Library itself does not (PROTOCOL.md §8.1: its calls on the dead server fail), so
   for it the gain is clean ports and agents.
3. **Agent requests of other nodes' agents.** The facts carry each node's API address
   (:func:`api_url`). An IVR's ``AgentLogin``, ``AgentLogout``, ``AgentReady`` or
   ``AgentNotReady`` on a DN whose agent another node holds is handed here by the service
   (``PeerState.forward``, an :class:`~ivr_server.service.peers_state.AgentAsk`) and carried to
   the owner's agent act, ``POST {api}/api/v1/agents/{switch}/{dn}/{act}`` with this node's
   bearer token (the nodes of a site share ``[api] token``): the owner's switch does it (its own
   IVR sessions get their ``MonitorInfo`` there) and answers with the events it caused, or 409
   with its ``EventError``. :func:`answer_of` turns that into an
   :class:`~ivr_server.service.peers_state.AgentAnswer` for ``IvrService.agent_answered``. The
   wait is bounded by ``[ha] lease`` (a dead owner is replaced within it anyway): no answer by
   then, an unreachable owner, or one that refuses this node's token, gives ``TlibErrCode='57'``
   (``TERR_TIMEOUT``, as a PBX's request unanswered within the invoke timeout).
4. **Waits at routing points and queues.** The facts also carry each node's waits (calls
   waiting per routing point and per queue, the oldest wait's start in Unix time, the routed
   waits its expected wait averages): the statistics engine counts the other nodes' with its
   own (``StatsEngine.peer_waits``), so ``PeekStatReq`` of ``CurrNumberWaitingCalls``,
   ``ExpectedWaitTime`` and ``CurrMaxCallWaitingTime`` answer the same on every node, as of the
   facts' staleness.
5. **Agent reservations.** The built-in routers route among every node's ready agents
   (``routing/rules.py``, ``BuiltinRouter.reservations`` set to this object), and a call goes to
   an agent only once the agent is reserved for it in the store: the lease of a slot of its own,
   ``<switch>:<dn>@agent`` (:func:`agent_slot`), taken with ``store.acquire`` (atomic in the
   store: one holder at a time), renewed every third of ``lease`` while the call holds the agent
   and released when it ends. A node never asks the store for an agent it holds or is asking
   for already (``acquire`` by the holder would succeed again): it answers itself "taken". A
   store that does not answer: "taken" (the call tries the next agent, then Default). The
   agents a node's calls hold are in its facts: every node's router leaves them out and every
   node's statistics count them busy (:meth:`ActiveMode.taken`; the virtual switch does not
   make an agent busy when a call is routed to it).

Nothing here runs unless the mode is ``active``.
"""

from __future__ import annotations

__all__ = [
    "AGENT_ACTS_PATH",
    "AGENT_SUFFIX",
    "FACTS_KEY",
    "FACTS_SUFFIX",
    "ActiveHost",
    "ActiveMode",
    "Adoption",
    "agent_slot",
    "answer_of",
    "api_url",
    "conn_id_seed",
    "facts_slot",
]

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import aiohttp

from ivr_server.routing import BuiltinRouter
from ivr_server.service.monitoring import AGENT_STATUS_OF_EVENT
from ivr_server.service.peers_state import (
    FORWARD_TIMEOUT_CODE,
    AgentAnswer,
    AgentAsk,
    NodeFacts,
    PeerState,
    encode_facts,
    facts_of,
    mirror_of,
    ports_key,
    ports_of,
)
from ivr_server.store.protocol import Batch, Fenced, Lease, StateStore, StoreError, StoreUnavailable
from ivr_server.switch import ReadyAgent

if TYPE_CHECKING:
    from ivr_server.service.core import IvrService

log = logging.getLogger("ivr_server.ha")

FACTS_SUFFIX: Final = "@facts"
"""A node's facts slot is ``<node id><FACTS_SUFFIX>`` (``@`` is not allowed in a node id)."""
AGENT_SUFFIX: Final = "@agent"
"""An agent's reservation slot is ``<switch>:<dn><AGENT_SUFFIX>`` (it holds no records)."""
FACTS_KEY: Final = "facts"
"""The one record of a facts slot."""
_CALL_SIDE: Final = ("call:", "dialout:")
"""Record key prefixes an adopter takes as they are (besides the switch views' calls)."""
AGENT_ACTS_PATH: Final = "/api/v1/agents"
"""Where a node's API takes agent acts: ``{api}/api/v1/agents/{switch}/{dn}/{act}``."""
TOKEN_ENV: Final = "IVR_SERVER_API_TOKEN"
"""Overrides ``[api] token`` (as ``api/access.py``'s ``TOKEN_ENV``: runtime/ does not import
api/)."""
_STATUS_OF_EVENT: Final = {cls.__name__: status for cls, status in AGENT_STATUS_OF_EVENT.items()}
"""``EventAgentReady`` -> ``Ready`` ...: the agent events of an act's answer."""
_INVALID_ATTR: Final = 53
"""``TERR_INVALID_ATTR``: what a body the owner's API finds invalid means (an empty AgentId)."""


def conn_id_seed(node_id: str, seed: int) -> int:
    """The ConnID seed of an active node (``IvrServer``): the start second ``seed`` of the
    process mixed with the node's name, host and process, so that two nodes started within one
    second never hand out the same ConnIDs (an adopter restores the dead node's switch calls by
    ConnID: a ConnID both had would lose the adopted call's user data)."""
    mark = f"{node_id}|{socket.gethostname()}|{os.getpid()}".encode()
    return (seed ^ zlib.crc32(mark)) & 0xFFFFFFFF


def facts_slot(node: str) -> str:
    return f"{node}{FACTS_SUFFIX}"


def agent_slot(switch: str, dn: str) -> str:
    return f"{switch}:{dn}{AGENT_SUFFIX}"


def node_of_slot(slot: str) -> str | None:
    """The node whose own slot ``slot`` is (``None``: a facts slot, an agent's reservation or
    the standby pair's; ``@`` is not allowed in a node id)."""
    if "@" in slot or slot == "primary":
        return None
    return slot


def api_url(server: Any) -> str:
    """The base URL of ``server``'s HTTP API as the other nodes reach it (empty: no API): its
    first listen address, a wildcard one named by this machine's host name; ``https`` with
    ``[api] tls-cert``."""
    addresses = server.api_addresses
    if not addresses:
        return ""
    host, port = addresses[0][0], addresses[0][1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip.is_unspecified:
        host = socket.gethostname()
    elif ip is not None and ip.version == 6:
        host = f"[{host}]"
    scheme = "https" if server.config.api.tls_cert else "http"
    return f"{scheme}://{host}:{port}"


def answer_of(ask: AgentAsk, status: int, data: Any) -> AgentAnswer:
    """The owner's HTTP answer to an agent act as the IVR's answer: 200, the agent statuses of
    the act's events on its DN; 409, the switch's ``EventError`` code; 400 (the owner's API
    found the body invalid, e.g. an empty AgentId), ``TERR_INVALID_ATTR``; anything else,
    :data:`FORWARD_TIMEOUT_CODE`."""
    if status == 200 and isinstance(data, dict) and isinstance(data.get("events"), list):
        statuses = tuple(
            _STATUS_OF_EVENT[event["event"]]
            for event in data["events"]
            if isinstance(event, dict)
            and event.get("event") in _STATUS_OF_EVENT
            and event.get("dn") == ask.dn
            and event.get("reference_id") is not None
        )
        return AgentAnswer(statuses=statuses)
    if status == 409 and isinstance(data, dict) and isinstance(data.get("error_code"), int):
        return AgentAnswer(error=data["error_code"])
    reason = data.get("error") if isinstance(data, dict) else None
    why = f"node {ask.node} answered HTTP {status}: {reason or 'no reason given'}"
    if status == 400:
        return AgentAnswer(error=_INVALID_ATTR, reason=why)
    return AgentAnswer(error=int(FORWARD_TIMEOUT_CODE), reason=why)


class Persistence(Protocol):
    """What adoption needs of ``service/persist.py``'s ``StatePersistence``."""

    def restore(self, records: Mapping[str, bytes], now: float) -> int: ...


class ActiveHost(Protocol):
    """What :class:`ActiveMode` needs of its node (``runtime/ha.py``'s ``HaNode``)."""

    node_id: str
    store: StateStore
    service: IvrService
    persistence: Any
    """``StatePersistence`` (its ``restore``)."""
    epoch: int
    """The epoch of the node's own slot (its writes are fenced with it)."""
    server: Any
    """The ``IvrServer`` (its ``flush()``: what the service queued, written out)."""

    @property
    def store_state(self) -> str:
        """``ok`` or ``lost``."""
        ...


@dataclass(frozen=True, slots=True)
class Adoption:
    """One dead node's slot taken over by this node."""

    slot: str
    calls: int
    """Calls restored."""
    records: int
    """Records moved into this node's slot."""
    seconds: float
    at: float
    """When (Unix time)."""


@dataclass(slots=True)
class _Published:
    epoch: int | None = None
    data: bytes | None = None
    renewed: float = 0.0
    ports_key: tuple[int, int, int] | None = None
    ports: list[tuple[str, str]] = field(default_factory=list)
    """This node's busy ports as of ``ports_key`` (worked out again only when it moves)."""


@dataclass(slots=True)
class ActiveState:
    """What the API and the web view show of the active nodes, as of the latest poll."""

    leases: list[Lease] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)
    facts: dict[str, NodeFacts] = field(default_factory=dict)
    """Node -> its facts (this node's included)."""
    polled: float = 0.0
    """When (Unix time)."""


class ActiveMode:
    """The active-mode duties of one node (see the module docstring): ``await start()``, then
    ``await tick(now)`` every poll, ``stop()``."""

    def __init__(self, node: ActiveHost) -> None:
        self.node = node
        ha = node.service.config.ha
        self.lease = float(ha.lease)
        self._store_timeout = float(ha.store_timeout)
        self.peers = PeerState(node.node_id)
        """The other live nodes' facts, consulted by the service."""
        self.state = ActiveState()
        self.adopted_calls = 0
        """Calls adopted from dead nodes since start (``ha_adopted_calls_total``)."""
        self.adoptions: list[Adoption] = []
        """The latest adoptions (at most 20), newest last."""
        self._published = _Published()
        self._known: dict[str, NodeFacts] = {}
        """Every node's latest facts ever read (a dead node's agents, at adoption)."""
        self._lost = False
        self._mine: NodeFacts | None = None
        """This node's facts as last published."""
        self._raw: dict[str, bytes] = {}
        self._facts_read: list[NodeFacts] = []
        """The live peers' facts as last read (``_raw``, decoded)."""
        self.peers.wall = time.time() - asyncio.get_running_loop().time()
        """Fixed for the process: the wait starts it publishes move only when the waits do."""
        self._forwards: set[asyncio.Task[None]] = set()
        """Agent requests being carried to their owners."""
        self.forwarded = 0
        """Agent requests forwarded to other nodes since start."""
        self.reserved: dict[tuple[str, str], tuple[str, int]] = {}
        """(switch, DN) -> (the call's ConnID, the reservation's epoch): the agents this node's
        calls hold."""
        self._reserving: set[tuple[str, str]] = set()
        self._reservations_renewed = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        """Reservations being asked for or given back."""

    @property
    def me(self) -> str:
        return self.node.node_id

    async def start(self) -> None:
        """Hand the mirror to the service and publish this node's facts."""
        self.node.service._ctx.peers = self.peers
        self.node.service.stats.peers = self.peers.activities
        self.node.service.stats.peer_waits = self.peers.waits
        self.node.service.stats.peer_held = self.taken
        self.peers.forward = self.forward
        self._install()
        try:
            await self._publish(asyncio.get_running_loop().time())
        except StoreError as problem:
            log.warning("active mode: the facts of %s not published yet: %s", self.me, problem)

    def stop(self) -> None:
        """Stop consulting the mirror (the facts' lease lapses by itself; the node's calls, if
        any are left in its slot, are adopted by a survivor once its own lease lapsed)."""
        self.node.service._ctx.peers = None
        self.node.service.stats.peers = None
        self.node.service.stats.peer_waits = None
        self.node.service.stats.peer_held = None
        self.peers.forward = None
        self.peers.update(())
        for router in _builtin_routers(self.node.service):
            router.reservations = None
        for task in [*self._forwards, *self._tasks]:  # their sessions close with the node
            task.cancel()

    async def tick(self, now: float) -> None:
        """One poll: adopt dead nodes' slots, publish this node's facts, read the others',
        renew the agents' reservations."""
        store = self.node.store
        self._install()  # the routers are built again by a reload
        try:
            await self._renew_reservations(now)
            leases = await store.leases()
            slots = await store.slots()
            live = {lease.slot for lease in leases}
            for slot in slots:
                if slot in live:
                    continue
                owner = node_of_slot(slot)
                if owner is not None and owner != self.me:
                    await self.adopt(slot, now)
                elif owner is None and slot.endswith(FACTS_SUFFIX) and slot != facts_slot(self.me):
                    await self._sweep(slot)
            await self._publish(now)
            peers = sorted(
                node
                for node in (node_of_slot(lease.slot) for lease in leases)
                if node is not None and node != self.me
            )
            found = await asyncio.gather(*(store.load(facts_slot(n)) for n in peers))
        except StoreUnavailable as problem:
            if not self._lost:
                log.warning(
                    "active mode: the store did not answer: %s (the mirror is kept)", problem
                )
            self._lost = True
            return
        if self._lost:
            log.info("active mode: the store answers again")
            self._lost = False
        raw = {n: records.get(FACTS_KEY, b"") for n, records in zip(peers, found, strict=True)}
        if raw != self._raw:  # decoded and indexed only when a peer's facts changed
            self._raw = raw
            self._facts_read = mirror_of(raw)
            self.peers.update(self._facts_read)
            self._known.update({f.node: f for f in self._facts_read})
            self.node.service.peers_changed(asyncio.get_running_loop().time())
            self.node.server.flush()  # the sessions told of the other nodes' agents
        facts = self._facts_read
        mine = self._mine or self._facts()
        self.state = ActiveState(
            leases=leases,
            slots=slots,
            facts={self.me: mine, **{f.node: f for f in facts}},
            polled=time.time(),
        )

    # ------------------------------------------------------------------ facts

    async def _publish(self, now: float) -> None:
        """This node's facts to its facts slot, when they changed (and the lease renewed every
        third of it)."""
        store = self.node.store
        slot = facts_slot(self.me)
        published = self._published
        if published.epoch is None:
            published.epoch = await store.acquire(slot, self.me, self.lease)
            published.data = None
            published.renewed = now
            if published.epoch is None:
                return  # still held by this node's earlier run: taken once it lapsed
        elif now - published.renewed >= self.lease / 3:
            renewed = await store.renew(slot, self.me, published.epoch, self.lease)
            published.renewed = now
            if renewed is False:
                published.epoch = None
                return
            if renewed is None:
                published.data = None  # the store lost it: written again
        self._mine = mine = self._facts()
        data = encode_facts(mine)
        if data != published.data:
            try:
                await store.apply(Batch(slot, published.epoch, puts={FACTS_KEY: data}))
            except Fenced:  # taken by a survivor while this node was paused: taken back
                published.epoch = None
                return
            published.data = data

    def _facts(self) -> NodeFacts:
        """This node's facts; its busy ports listed again only when calls came or went."""
        service, published = self.node.service, self._published
        key = ports_key(service)
        if key != published.ports_key:
            published.ports_key, published.ports = key, ports_of(service)
        return facts_of(
            self.me,
            service,
            published.ports,
            api_url(self.node.server),
            now=asyncio.get_running_loop().time(),
            wall=self.peers.wall,
            holds=self.reserved,
            held=self.peers.held | self.reserved.keys(),
        )

    async def _sweep(self, slot: str) -> None:
        """A dead node's facts slot: emptied (its node's calls are adopted from its own slot)."""
        store = self.node.store
        epoch = await store.acquire(slot, self.me, self.lease)
        if epoch is None:
            return
        try:
            with contextlib.suppress(Fenced):
                await store.drop(slot, self.me, epoch)
        finally:
            await store.release(slot, self.me, epoch)

    # ------------------------------------------------------------------ agent requests

    def forward(self, ask: AgentAsk) -> None:
        """Start carrying ``ask`` to its node (``PeerState.forward``; see the module docstring).
        No I/O here: a task does it and answers through the service."""
        self.forwarded += 1
        task = asyncio.get_running_loop().create_task(self._carry(ask))
        self._forwards.add(task)
        task.add_done_callback(self._forwards.discard)

    async def _carry(self, ask: AgentAsk) -> None:
        config = self.node.service.config
        token = os.environ.get(TOKEN_ENV) or config.api.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{ask.api}{AGENT_ACTS_PATH}/{ask.switch}/{ask.dn}/{ask.act}"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.lease)) as http,
                http.post(url, json=dict(ask.body), headers=headers) as response,
            ):
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = None
                answer = answer_of(ask, response.status, data)
        except (aiohttp.ClientError, TimeoutError, OSError) as problem:
            answer = AgentAnswer(
                error=int(FORWARD_TIMEOUT_CODE),
                reason=f"node {ask.node} did not answer within {self.lease:g} s: "
                f"{type(problem).__name__} {problem}",
            )
        node = self.node
        node.service.agent_answered(ask, answer, asyncio.get_running_loop().time())
        node.server.flush()

    # ------------------------------------------------------------------ agent reservations

    def _install(self) -> None:
        for router in _builtin_routers(self.node.service):
            if router.reservations is not self:
                router.reservations = self

    def elsewhere(self, switch: str) -> list[ReadyAgent]:
        """``AgentReservations.elsewhere``: the other nodes' ready agents (their facts)."""
        return self.peers.elsewhere(switch)

    def taken(self, switch: str) -> frozenset[str]:
        """``AgentReservations.taken`` and ``StatsEngine.peer_held``: this switch's DNs whose
        agent a call holds, another node's or this node's (the virtual switch does not make an
        agent busy when a call is routed to it: the IVR transfers the call on its PBX)."""
        held = self.peers.held_on(switch)
        mine = [dn for (name, dn) in self.reserved if name == switch]
        return held.union(mine) if mine else held

    def reserve(self, switch: str, dn: str, conn_id: str) -> None:
        """``AgentReservations.reserve``: ask the store for the agent on ``dn`` (see the module
        docstring); the answer goes to ``IvrService.agent_reserved``, never from inside this
        call (the router is in the middle of its decision)."""
        key = (switch, dn)
        loop = asyncio.get_running_loop()
        if key in self.reserved or key in self._reserving or self.node.store_state != "ok":
            loop.call_soon(self._answer, switch, conn_id, dn, False)
            return
        self._reserving.add(key)
        self._spawn(self._reserve(switch, dn, conn_id))

    def release(self, switch: str, dn: str, conn_id: str) -> None:
        """``AgentReservations.release``: the call no longer holds the agent on ``dn``."""
        held = self.reserved.get((switch, dn))
        if held is None or held[0] != conn_id:
            return
        del self.reserved[(switch, dn)]
        self._spawn(self._release(agent_slot(switch, dn), held[1]))

    def _spawn(self, job: Any) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reserve(self, switch: str, dn: str, conn_id: str) -> None:
        store = self.node.store
        epoch: int | None = None
        try:
            epoch = await asyncio.wait_for(
                store.acquire(agent_slot(switch, dn), self.me, self.lease),
                self._store_timeout,
            )
        except (StoreError, TimeoutError) as problem:
            log.warning("active mode: agent %s of %s not reserved: %s", dn, switch, problem)
        finally:
            self._reserving.discard((switch, dn))
        if epoch is not None:
            self.reserved[(switch, dn)] = (conn_id, epoch)
        self._answer(switch, conn_id, dn, epoch is not None)

    def _answer(self, switch: str, conn_id: str, dn: str, ok: bool) -> None:
        node = self.node
        node.service.agent_reserved(switch, conn_id, dn, ok, asyncio.get_running_loop().time())
        node.server.flush()

    async def _release(self, slot: str, epoch: int) -> None:
        with contextlib.suppress(StoreError, TimeoutError):  # else it lapses by itself
            await asyncio.wait_for(
                self.node.store.release(slot, self.me, epoch), self._store_timeout
            )

    async def _renew_reservations(self, now: float) -> None:
        """Every third of the lease: the reservations of the agents this node's calls hold."""
        if not self.reserved or now - self._reservations_renewed < self.lease / 3:
            return
        self._reservations_renewed = now
        held = list(self.reserved.items())
        store = self.node.store
        renewed = await asyncio.gather(
            *(
                store.renew(agent_slot(sw, dn), self.me, epoch, self.lease)
                for (sw, dn), (_, epoch) in held
            ),
            return_exceptions=True,
        )
        for ((switch, dn), (conn_id, epoch)), ok in zip(held, renewed, strict=True):
            if isinstance(ok, StoreUnavailable):
                raise ok  # the store is lost: the poll says so; renewed at the next
            if isinstance(ok, BaseException):
                log.warning("active mode: agent %s of %s not renewed: %s", dn, switch, ok)
                continue
            if ok is False and self.reserved.get((switch, dn)) == (conn_id, epoch):
                del self.reserved[(switch, dn)]
                log.warning(
                    "active mode: the reservation of agent %s of %s for call %s was lost",
                    dn,
                    switch,
                    conn_id,
                )

    # ------------------------------------------------------------------ adoption

    async def adopt(self, slot: str, now: float) -> int:
        """Take a dead node's slot over, if this node wins its lease (see the module
        docstring); the calls restored (0: another survivor won, or it was empty)."""
        node, store = self.node, self.node.store
        epoch = await store.acquire(slot, self.me, self.lease)
        if epoch is None:
            return 0  # another survivor won it
        started = time.monotonic()
        try:
            records = await store.load(slot)
            kept = self._adoptable(slot, records)
            if not await store.renew(slot, self.me, epoch, self.lease):
                return 0  # the load outlasted the lease and another survivor took it
            if kept:  # this node's own slot: Fenced here is the node's (runtime/ha.py demotes)
                await store.apply(Batch(self.me, node.epoch, puts=kept))
            try:
                await store.drop(slot, self.me, epoch)
            except Fenced:  # lapsed between the renewal and the drop: the copy is taken back
                await store.apply(Batch(self.me, node.epoch, deletes=set(kept)))
                log.warning("active mode: the adoption of %s was lost to another node", slot)
                return 0
        finally:
            with contextlib.suppress(StoreError):  # else the lease lapses by itself
                await store.release(slot, self.me, epoch)
        now = asyncio.get_running_loop().time()  # the loop's clock after the store's answers
        restored = node.persistence.restore(kept, now) if kept else 0
        node.service.bind_orphans(now)
        node.server.flush()
        seconds = time.monotonic() - started
        self.adopted_calls += restored
        metrics = getattr(node, "metrics", None)  # HaMetrics: ha_adopted_calls_total once it has it
        if metrics is not None and hasattr(metrics, "adopted_calls"):
            metrics.adopted_calls = self.adopted_calls
        self.adoptions = [
            *self.adoptions[-19:],
            Adoption(slot, restored, len(kept), seconds, time.time()),
        ]
        log.warning(
            "active mode: node %s is gone: %s adopted its %d call(s) (%d records) in %.3f s",
            slot,
            self.me,
            restored,
            len(kept),
            seconds,
        )
        return restored

    def _adoptable(self, slot: str, records: Mapping[str, bytes]) -> dict[str, bytes]:
        """The dead node's records this node takes: its calls (call side and switch side) and
        pending dial-outs, and the DN records of the agents it held on DNs that have none here.
        Not its counters: this node's own go on."""
        service = self.node.service
        agents = {
            (a.switch, a.dn)
            for a in (self._known[slot].agents if slot in self._known else ())
            if not _has_agent(service, a.switch, a.dn)
        }
        kept: dict[str, bytes] = {}
        for key, value in records.items():
            if key.startswith(_CALL_SIDE):
                kept[key] = value
            elif key.startswith("sw:"):
                parts = key.split(":", 3)
                if len(parts) == 4 and (
                    parts[2] == "call" or (parts[2] == "dn" and (parts[1], parts[3]) in agents)
                ):
                    kept[key] = value
        return kept


def _builtin_routers(service: IvrService) -> list[BuiltinRouter]:
    """The built-in routers of the service's switches (a per-routing-point dispatcher's
    ``default`` included)."""
    found: list[BuiltinRouter] = []
    for router in service.routers.values():
        rules: Any = getattr(router, "default", router)
        if isinstance(rules, BuiltinRouter):
            found.append(rules)
    return found


def _has_agent(service: IvrService, switch: str, dn: str) -> bool:
    found = service.switches.get(switch)
    snapshot = found.view.dn(dn) if found is not None else None
    return snapshot is not None and snapshot.agent is not None
