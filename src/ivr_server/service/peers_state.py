"""Active nodes (``[ha] mode = "active"``): what the other live nodes of the site hold, mirrored
read-only, so that ports, agents and counts agree across nodes (MODES-AND-HA §3.5, "Load
balancing / N active nodes"; docs/ha.md, "Active nodes").

Theory of operation. Every node serves its own calls; its virtual switches are its own. What the
others must respect is summed up in a small record, :class:`NodeFacts` (the ports that have a
call, the agents logged in on its switches' DNs, the agents its calls hold, its waits at routing
points and for queues, its call count, its API's address), that each node works out from its
own service (:func:`facts_of`) and publishes in the store every poll when it changed
(``runtime/ha_active.py``). Each node reads the others' facts every poll into its
:class:`PeerState`, which the service consults:

- a ``NewCall``, ``MakeCall`` or ``DialOutInit`` on a port that has a call on another node is
  refused as if the port's call were here: ``EndCall EndCause='Resources'``
  (:meth:`PeerState.check_port`, called by ``admission.py``);
- an ``AgentQuery`` on a DN whose agent logged in through another node is answered with that
  agent's state; a control request on such a DN (``AgentLogin``, ``AgentLogout``,
  ``AgentReady``, ``AgentNotReady``) is **forwarded** to that node, whose switch holds the agent:
  the service hands an :class:`AgentAsk` to :attr:`PeerState.forward` (the runtime carries it
  over the owner's HTTP API, ``POST /api/v1/agents/{switch}/{dn}/...``, and brings the
  :class:`AgentAnswer` back to ``IvrService.agent_answered``), so the IVR gets what a single
  server's switch would have answered; without a way to reach the owner (its API unknown) the
  request is refused (``CallError TlibErrCode='166'``); an ``AgentLogin`` of an agent id logged
  in through another node on a DN free everywhere gets the switch's
  ``TERR_SOFT_AGENT_ID_IN_USE`` (``agents.py``);
- the agent events of the other nodes' agents are told to this node's sessions from the
  differences between successive mirrors (:meth:`PeerState.statuses`, :attr:`PeerState.told`,
  ``monitoring.py``);
- the built-in router chooses among the other nodes' ready agents too
  (:meth:`PeerState.elsewhere`) and leaves out those any node's call holds
  (:attr:`PeerState.held`), each reserved in the store before a call is routed to it
  (``routing/rules.py``, ``runtime/ha_active.py``);
- the statistics of an IVR's calls in progress (``PeekStatReq``/``GetStatReq``, the API's
  ``/api/v1/stats``) add the other nodes' calls on its ports (``statistics.py``), those of
  queues and agent groups the other nodes' agents (:meth:`PeerState.activities`; an agent a
  call holds counted busy), those of routing points and queues the other nodes' waits
  (:meth:`PeerState.waits`); the API sums the calls, agents and calls waiting at routing
  points of every node (``api/handlers/nodes.py``).

Staleness: a fact is at most two polls old (the holder publishes once per poll, the reader reads
once per poll; ``[ha] poll`` = 0.2 s by default) plus a store round trip. Two ``NewCall`` on one
port at two nodes within that window are both admitted: the driver picks the node of a port by
``port mod nodes`` (PROTOCOL.md §8.2 rule 1), so that needs a driver that breaks its own rule.

Nothing here runs unless the mode is ``active``: ``ServiceContext.peers`` is ``None`` otherwise,
one attribute test on the requests above (and the statistics' and routers' hooks are unset).
"""

from __future__ import annotations

__all__ = [
    "FORWARD_TIMEOUT_CODE",
    "AgentAnswer",
    "AgentAsk",
    "AgentFact",
    "NodeFacts",
    "PeerState",
    "decode_facts",
    "encode_facts",
    "facts_of",
    "mirror_of",
    "ports_key",
    "ports_of",
    "waiting_by_queue",
]

from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec

from ivr_server.calls.replies import Refusal
from ivr_server.routing import BuiltinRouter
from ivr_server.service.sessions import Session
from ivr_server.stats import QUEUE_KEY, PeerWaits
from ivr_server.stats.agents import AgentActivity
from ivr_server.switch import AgentStatus, ReadyAgent, Switch, TErrorCode, WorkMode
from ivr_server.switch.agent import AgentState, agent_status
from ivr_server.vocabulary import AgentStatusName
from ivr_server.wire import messages as m

if TYPE_CHECKING:
    from ivr_server.service.core import IvrService


class AgentFact(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An agent logged in on a DN of a node's switch."""

    switch: str
    dn: str
    agent_id: str
    state: str
    """``AgentState`` value: ``Ready`` or ``NotReady``."""
    work_mode: str
    queue: str = ""
    busy: bool = False
    """Its DN is a party of a call on that node (the statistics' ``busy``)."""


class NodeFacts(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What one node publishes about itself for the others (one record per node)."""

    node: str
    calls: int
    """Calls in progress on the node."""
    ports: list[tuple[str, str]]
    """(IVR, port) of every call of an IVR port on the node."""
    agents: list[AgentFact]
    """Agents logged in on its switches' DNs."""
    ready: int = 0
    """How many of them are Ready."""
    waiting: list[tuple[str, str, int]] = msgspec.field(default_factory=list)
    """(switch, routing point, calls waiting there) for every routing point with calls."""
    api: str = ""
    """The base URL of the node's HTTP API (``http://host:port``; empty: it has none), where
    the others forward the agent requests of its agents."""
    holds: list[tuple[str, str]] = msgspec.field(default_factory=list)
    """(switch, DN) of the agents the node's calls hold: routed there once reserved in the
    store, wherever the agent is logged in (the agent's own node counts it busy)."""
    waits: list[tuple[str, str, int, float, float, int]] = msgspec.field(default_factory=list)
    """(switch, routing point or ``QUEUE_KEY`` + queue, calls waiting there, Unix time the
    oldest of them started waiting (0: none), sum of the routed waits its expected wait
    averages, their number) for every routing point and queue with a call waiting or a recent
    routed wait: the routing point and queue statistics of every node count them."""


FORWARD_TIMEOUT_CODE: Final = TErrorCode.TERR_TIMEOUT
"""The ``TlibErrCode`` of a forwarded agent request its owner did not answer in time (dead,
slow, unreachable, or refusing the forwarding node: no ``[api] token`` in common): as a premise
switch's request the PBX does not answer within its invoke timeout (57)."""


@dataclass(frozen=True, slots=True)
class AgentAsk:
    """An agent control request of an IVR on a DN whose agent another node holds, to be
    carried to that node (``PeerState.forward``) and answered with :class:`AgentAnswer`."""

    node: str
    """The node holding the agent."""
    api: str
    """Its HTTP API's base URL."""
    switch: str
    dn: str
    act: str
    """The agent act of the API: ``login``, ``logout``, ``ready`` or ``not-ready``."""
    body: Mapping[str, str | None]
    """The act's JSON body (``models.AgentLoginBody`` ...), from the IVR's request."""
    session: Session
    """Who asked: the answer goes to this session, on ``call_id`` with ``req_id``."""
    call_id: str
    req_id: str
    port: str
    """The IVR port (``PortNum``) of the DN."""
    ivr: str
    request: str
    """The IVR request's tag (``AgentReady`` ...), for the logs."""


@dataclass(frozen=True, slots=True)
class AgentAnswer:
    """What the owner's switch answered a forwarded :class:`AgentAsk`."""

    statuses: tuple[AgentStatusName, ...] = ()
    """The agent's statuses its events told, in order (``LoggedIn``, ``NotReady`` for a
    login), each one a ``MonitorInfo Agent`` to the IVR."""
    error: int | None = None
    """The ``TlibErrCode`` of the refusal (the owner's switch's, or
    :data:`FORWARD_TIMEOUT_CODE`); ``None``: done."""
    reason: str = ""
    """Why it failed, for the log."""


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(NodeFacts)


def encode_facts(facts: NodeFacts) -> bytes:
    return _ENCODER.encode(facts)


def decode_facts(data: bytes) -> NodeFacts | None:
    """The facts of ``data``, or ``None`` when they do not decode (another version's)."""
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def ports_of(service: IvrService) -> list[tuple[str, str]]:
    """(IVR, port) of every call of an IVR port (a Network call of a session that never logged
    in has no IVR: none), from the call side's index of ports (a copy of its keys: ~1 ms for
    50,000 calls, where reading each call would take tens)."""
    return [key for key in service.calls.context.by_port if key[0]]


def ports_key(service: IvrService) -> tuple[int, int, int]:
    """Changes whenever the calls in progress may have changed (a call started, ended, restored
    or dropped): :func:`ports_of` is worked out again only then."""
    calls = service.calls
    return (service.metrics.calls_started, calls.completed, len(calls.calls))


def facts_of(
    node: str,
    service: IvrService,
    ports: list[tuple[str, str]] | None = None,
    api: str = "",
    *,
    now: float = 0.0,
    wall: float = 0.0,
    holds: Iterable[tuple[str, str]] = (),
    held: Container[tuple[str, str]] = (),
) -> NodeFacts:
    """This node's facts, from its calls (``ports``: :func:`ports_of`, when the caller kept
    them), its switches' views, its routers and its statistics' waits as of ``now`` (the
    service's clock; ``wall``: Unix time minus that clock, a constant of the process so that
    the facts do not change while nothing does), with ``api`` the base URL of its HTTP API,
    ``holds`` the agents its calls hold by reservation and ``held`` those other nodes' calls
    hold (its agents there are busy).
    O(calls + DNs + routing dialogs): run once per poll, not per request."""
    if ports is None:
        ports = ports_of(service)
    agents: list[AgentFact] = []
    ready = 0
    waiting: dict[tuple[str, str], int] = {}
    for name, switch in service.switches.items():
        busy: set[str] = set()
        for record in switch.view.call_records():  # records, not snapshots: O(calls), cheap
            busy.update(record.parties)
            point = record.routing_point
            if point is not None:
                waiting[(name, point)] = waiting.get((name, point), 0) + 1
        for dn in switch.view.dns():
            agent = dn.agent
            if agent is None:
                continue
            state = agent.state
            ready += state is AgentState.READY
            agents.append(
                AgentFact(
                    switch=name,
                    dn=dn.number,
                    agent_id=agent.agent_id,
                    state=state.value,
                    work_mode=agent.work_mode.value,
                    queue=agent.queue,
                    busy=dn.number in busy or (name, dn.number) in held,
                )
            )
    waits: dict[tuple[str, str], tuple[int, float, float, int]] = {
        key: (n, 0.0, 0.0, 0) for key, n in waiting.items()
    }
    for name in service.switches:
        for queue, n in waiting_by_queue(service, name).items():
            waits[(name, QUEUE_KEY + queue)] = (n, 0.0, 0.0, 0)
    for name, key, oldest, total, count in service.stats.wait_summary(now):
        n = waits.get((name, key), (0, 0.0, 0.0, 0))[0]
        since = round(oldest + wall, 3) if oldest is not None else 0.0
        waits[(name, key)] = (n, since, round(total, 6), count)
    return NodeFacts(
        node,
        len(service.calls.calls),
        ports,
        agents,
        ready,
        [(sw, point, n) for (sw, point), n in sorted(waiting.items())],
        api,
        sorted(holds),
        [(sw, key, *values) for (sw, key), values in sorted(waits.items())],
    )


def waiting_by_queue(service: IvrService, switch: str) -> dict[str, int]:
    """ACD queue -> calls waiting for its agents at the built-in router of ``switch`` (as
    ``statistics.py``'s ``waiting_for_queue``, every queue in one pass)."""
    router: Any = service.routers.get(switch)
    router = getattr(router, "default", router)  # a per-routing-point dispatcher's rules
    return router.waiting_by_queue() if isinstance(router, BuiltinRouter) else {}


_QUERY_STATUS: Final[dict[AgentStatus, AgentStatusName]] = {
    AgentStatus.UNKNOWN: "Unknown",
    AgentStatus.LOGGED_OUT: "Unknown",
    AgentStatus.LOGGED_IN: "LoggedIn",
    AgentStatus.READY: "Ready",
    AgentStatus.NOT_READY: "NotReady",
    AgentStatus.ACW: "NotReady",
    AgentStatus.WALK_AWAY: "NotReady",
}
"""As ``agents.py``'s ``AgentQuery`` answer (XMLG p.69 Table 16)."""


class PeerState:
    """The other live nodes' facts, as last read (see the module docstring). Written only by
    :meth:`update` (the runtime's active-mode loop); read by the service's requests."""

    def __init__(self, node: str) -> None:
        self.node = node
        """This node's id (its own facts are never mirrored)."""
        self.nodes: dict[str, NodeFacts] = {}
        """Node id -> its facts, for every other live node."""
        self._ports: dict[tuple[str, str], str] = {}
        self._dns: dict[tuple[str, str], AgentFact] = {}
        self._agent_ids: dict[str, AgentFact] = {}
        self._agent_node: dict[tuple[str, str], str] = {}
        self._ivr_calls: dict[str, int] = {}
        self._waits: dict[tuple[str, str], PeerWaits] = {}
        self._held: set[tuple[str, str]] = set()
        self._held_by_switch: dict[str, frozenset[str]] = {}
        self.wall = 0.0
        """Unix time minus this node's clock (the runtime's): the other nodes' wait starts
        (Unix times) on this node's clock."""
        self.told: dict[tuple[str, str], AgentStatusName] | None = None
        """(switch, DN) -> the status of another node's agent there as this node's sessions
        were last told (``monitoring.py``; ``None`` until the first mirror, which is taken as
        it is, without telling)."""
        self.orphaned: dict[tuple[str, str], str] = {}
        """(switch, DN) -> the node gone from the mirror at the latest :meth:`update` that held
        the agent there (dead or stopped: a survivor adopts its agents)."""
        self.expected: dict[tuple[str, str], tuple[AgentStatusName | None, float]] = {}
        """(switch, DN) -> (the status a forwarded request's answer told, ``None``: logged out;
        until when): facts saying otherwise before then are older than that answer, and not
        told (``monitoring.py``)."""
        self.forward: Callable[[AgentAsk], None] | None = None
        """Carries an :class:`AgentAsk` to its node (set by ``runtime/ha_active.py``; no I/O
        here: it starts a task and returns); ``None``: such requests are refused (166)."""

    def update(self, facts: Iterable[NodeFacts]) -> None:
        """Replace the mirror with ``facts`` (one per other live node; a node missing here is
        dead or gone: its ports and agents are free again, or adopted by a survivor)."""
        nodes = {f.node: f for f in facts if f.node != self.node}
        ports: dict[tuple[str, str], str] = {}
        ivr_calls: dict[str, int] = {}
        dns: dict[tuple[str, str], AgentFact] = {}
        agent_ids: dict[str, AgentFact] = {}
        agent_node: dict[tuple[str, str], str] = {}
        for name in sorted(nodes):
            for ivr, port in nodes[name].ports:
                ports.setdefault((ivr, port), name)
                ivr_calls[ivr] = ivr_calls.get(ivr, 0) + 1
            for agent in nodes[name].agents:
                key = (agent.switch, agent.dn)
                if key not in dns:
                    dns[key] = agent
                    agent_node[key] = name
                agent_ids.setdefault(agent.agent_id, agent)
        waits: dict[tuple[str, str], PeerWaits] = {}
        for held in nodes.values():
            for switch, point, n, since, total, count in held.waits:
                was = waits.get((switch, point), PeerWaits())
                oldest = was.oldest
                if since and (oldest is None or since < oldest):
                    oldest = since
                waits[(switch, point)] = PeerWaits(
                    was.waiting + n, oldest, was.total + total, was.samples + count
                )
        self._waits = waits
        self._held = {(sw, dn) for node_facts in nodes.values() for sw, dn in node_facts.holds}
        by_switch: dict[str, set[str]] = {}
        for sw, dn in self._held:
            by_switch.setdefault(sw, set()).add(dn)
        self._held_by_switch = {sw: frozenset(dns) for sw, dns in by_switch.items()}
        self.orphaned = {
            key: node
            for key, node in self._agent_node.items()
            if node not in nodes and key not in dns
        }
        self.nodes = nodes
        self._ports, self._dns, self._agent_ids = ports, dns, agent_ids
        self._agent_node = agent_node
        self._ivr_calls = ivr_calls

    # ------------------------------------------------------------------ queries

    def port_holder(self, ivr: str, port: str) -> str | None:
        """The other node whose call is on IVR port ``port`` of ``ivr``, if one is."""
        return self._ports.get((ivr, port))

    def agent(self, switch: str, dn: str) -> tuple[str, AgentFact] | None:
        """(node, agent) logged in on DN ``dn`` of ``switch`` through another node."""
        fact = self._dns.get((switch, dn))
        return (self._agent_node[(switch, dn)], fact) if fact is not None else None

    def api_of(self, node: str) -> str:
        """The base URL of ``node``'s HTTP API (empty: unknown, or it has none)."""
        facts = self.nodes.get(node)
        return facts.api if facts is not None else ""

    def waits(self, switch: str, key: str) -> PeerWaits | None:
        """The other nodes' waits at routing point ``key`` of ``switch`` (or ``QUEUE_KEY`` +
        queue), their oldest start on this node's clock (``StatsEngine.peer_waits``)."""
        found = self._waits.get((switch, key))
        if found is None or found.oldest is None:
            return found
        return PeerWaits(found.waiting, found.oldest - self.wall, found.total, found.samples)

    @property
    def held(self) -> set[tuple[str, str]]:
        """(switch, DN) of the agents other nodes' calls hold (routed there)."""
        return self._held

    def held_on(self, switch: str) -> frozenset[str]:
        """The DNs of ``switch`` whose agent another node's call holds
        (``StatsEngine.peer_held``)."""
        return self._held_by_switch.get(switch, frozenset())

    def statuses(self) -> dict[tuple[str, str], AgentStatusName]:
        """(switch, DN) -> ``Ready`` or ``NotReady`` of every agent another node holds."""
        return {
            key: "Ready" if agent.state == AgentState.READY.value else "NotReady"
            for key, agent in self._dns.items()
        }

    def elsewhere(self, switch: str) -> list[ReadyAgent]:
        """The agents other nodes hold on DNs of ``switch`` that are Ready without a call there,
        as routing targets of this node's built-in router (``routing/rules.py``'s
        ``AgentReservations.elsewhere``; ``ready_since`` 0: idle order is a node's own)."""
        return [
            ReadyAgent(agent_id=agent.agent_id, dn=dn, queue=agent.queue, ready_since=0)
            for (name, dn), agent in self._dns.items()
            if name == switch
            and agent.state == AgentState.READY.value
            and not agent.busy
            and (name, dn) not in self._held
        ]

    def agent_id_in_use(self, agent_id: str) -> AgentFact | None:
        """Where agent ``agent_id`` is logged in through another node, if it is."""
        return self._agent_ids.get(agent_id)

    def calls(self) -> int:
        """Calls in progress on the other nodes."""
        return sum(f.calls for f in self.nodes.values())

    def calls_of_ivr(self, ivr: str) -> int:
        """Calls on the ports of ``ivr`` at the other nodes (the statistic of an IVR's calls
        counts every node's)."""
        return self._ivr_calls.get(ivr, 0)

    def activities(
        self, switch_name: str, switch: Switch
    ) -> Iterator[tuple[AgentFact, AgentActivity]]:
        """The agents other nodes hold on DNs of ``switch`` that have no agent on this node's
        (a DN's agent counted once: the LegacyMode agents every node logs in are this node's),
        with their activity: the statistics' share of the other nodes (``StatsEngine.peers``)."""
        view = switch.view
        for (name, dn), agent in self._dns.items():
            if name != switch_name:
                continue
            local = view.dn(dn)
            if local is not None and local.agent is not None:
                continue
            if agent.busy or (name, dn) in self._held:
                yield agent, AgentActivity.BUSY
            elif agent.state == AgentState.READY.value:
                yield agent, AgentActivity.READY
            else:
                yield agent, AgentActivity.NOT_READY

    # ------------------------------------------------------------------ checks of requests

    def check_port(self, call_id: str, ivr: str, port: str, request: str) -> None:
        """Refuse a new call on a port that has a call on another node, as a port with a call
        here is refused (``EndCall EndCause='Resources'``, calls/admission.py)."""
        holder = self._ports.get((ivr, port))
        if holder is not None:
            raise Refusal(
                call_id,
                m.EndCall(EndCause="Resources"),
                f"{request}: port {port} of {ivr} has a call on node {holder}",
            )

    def query_answer(self, switch: str, dn: str, port: str, req_id: str) -> m.MonitorInfo | None:
        """The ``AgentQuery`` answer for a DN whose agent logged in through another node."""
        found = self.agent(switch, dn)
        if found is None:
            return None
        agent = found[1]
        try:
            status = agent_status(AgentState(agent.state), WorkMode(agent.work_mode))
        except ValueError:
            status = AgentStatus.UNKNOWN
        return m.MonitorInfo(
            ReqId=req_id,
            Agent=m.Agent(PortNum=port, Status=_QUERY_STATUS.get(status, "Unknown")),
        )

    def check_control(
        self, call_id: str, switch: str, dn: str, agent_id: str | None, request: str, req_id: str
    ) -> None:
        """Refuse an agent control request on a DN whose agent is served by another node (this
        node's switch does not have it), or an ``AgentLogin`` of an agent id logged in through
        another node (``TERR_SOFT_AGENT_ID_IN_USE``, as the switch answers for a DN of its own)."""
        found = self.agent(switch, dn)
        if found is not None:
            raise Refusal(
                call_id,
                m.CallError(
                    FailedReq="AgentControl",
                    TlibErrCode=str(int(TErrorCode.TERR_RES_UNAVAIL)),
                    ReqId=req_id,
                ),
                f"{request}: the agent on DN {dn} logged in through node {found[0]}",
            )
        if agent_id:
            elsewhere = self._agent_ids.get(agent_id)
            if elsewhere is not None:
                raise Refusal(
                    call_id,
                    m.CallError(
                        FailedReq="AgentControl",
                        TlibErrCode=str(int(TErrorCode.TERR_SOFT_AGENT_ID_IN_USE)),
                        ReqId=req_id,
                    ),
                    f"{request}: agent {agent_id} is logged in on DN {elsewhere.dn} "
                    "through another node",
                )


def mirror_of(facts: Mapping[str, bytes]) -> list[NodeFacts]:
    """Decode the facts records read from the store (undecodable ones are skipped)."""
    found = (decode_facts(data) for data in facts.values())
    return [f for f in found if f is not None]
