"""The built-in statistics engine: what PeekStatReq / GetStatReq are answered with (PROTOCOL.md §3.9).

Theory of operation
-------------------
The original asks Genesys Stat Server; here the server computes the values itself, from what it
already has:

* the switches (a live ``name → Switch`` mapping): calls waiting at routing points,
  agents and their calls — read at the moment of the question;
* the switch events, fed to :meth:`StatsEngine.on_event` with the ``now`` they were handled at:
  they time the waits at routing points for ``ExpectedWaitTime`` (:mod:`ivr_server.stats.waits`);
* the call side, through ``calls_of_ivr(ivr_name) -> int``: calls in progress per IVR;
* the access numbers, through :attr:`StatsEngine.access_numbers`: a Location's DNIS pool.

A *statistic* is a configured ``[[statistics]]`` entry (:class:`~ivr_server.config.StatisticConfig`):
a name, a Stat Server name, a statistic type, an object id and an object type. ``PeekStatReq``
names one; ``GetStatReq`` gives the other four, which must equal a configured entry's exactly
(PROTOCOL.md §9.4.5). What each statistic type computes, for which object types, is the table
:data:`_COMPUTE` — (statistic type, object type) → function — which covers exactly the pairs the
configuration accepts (:data:`~ivr_server.config.STAT_TYPES`).

Each request has one of three outcomes (:mod:`ivr_server.stats.values`): a :class:`StatValue`
(``Success``), a :class:`StatUnavailable` (``MiscError``: the value cannot be computed now — e.g.
its switch or DN is missing from the running switches — and none ever was), or ``None``
(``NoSuchStat``). When a value cannot be computed but one was before, that last value is handed
out with ``last_known=True``: the original's rule after a Stat Timeout (PROTOCOL.md §7).

``update-frequency`` > 0 caches: a value computed at ``t`` is handed out unchanged to every
request before ``t + update-frequency``; the first request after that computes a new one.
0 computes on every request. The engine keeps no clock: every question carries ``now``.
"""

from __future__ import annotations

__all__ = ["StatsEngine"]

from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any, Final

from ivr_server.config import ServerConfig, StatisticConfig, split_object_id
from ivr_server.switch import DnType, Switch, SwitchEvent

from .agents import AgentActivity, AgentCounts, agent_activities, count_activities
from .values import StatUnavailable, StatValue, format_value, result_code
from .waits import EWT_MAX_SAMPLES, EWT_WINDOW_S, QUEUE_KEY, PeerWaits, WaitTracker

_TIME_DECIMALS: Final = 3
"""Time statistics are rounded to the millisecond: the wire carries no float noise."""


class _Unavailable(Exception):
    """A value cannot be computed; never leaves this module (see :class:`StatUnavailable`)."""


class StatsEngine:
    """Statistics over ``switches`` (live: looked up on every question) and ``calls_of_ivr``.

    ``config`` gives the named statistics and the agent groups and IVRs they refer to;
    :meth:`reconfigure` replaces it. ``ewt_window_s`` and ``ewt_max_samples`` bound the
    expected-wait-time estimate (see :mod:`ivr_server.stats.waits`).
    """

    def __init__(
        self,
        config: ServerConfig,
        switches: Mapping[str, Switch],
        calls_of_ivr: Callable[[str], int],
        *,
        waiting_for_queue: Callable[[str, str], int] | None = None,
        ewt_window_s: float = EWT_WINDOW_S,
        ewt_max_samples: int = EWT_MAX_SAMPLES,
    ) -> None:
        self._switches = switches
        self._calls_of_ivr = calls_of_ivr
        self._waiting_for_queue = waiting_for_queue
        """(switch, queue) -> calls waiting at routing points for that queue's agents (the
        routers know); ``None``: no router targets queues."""
        self._waits = WaitTracker(
            self._still_waiting,
            window_s=ewt_window_s,
            max_samples=ewt_max_samples,
            queue_of=self._agent_queue,
        )
        self.peers: Callable[[str, Switch], Iterable[tuple[Any, AgentActivity]]] | None = None
        """Active nodes (issue 25, ``service/peers_state.py``): (switch name, switch) -> the
        agents other nodes hold on its DNs (each with ``agent_id`` and ``queue``) and their
        activity, counted with this node's; ``None`` (a single node): nothing added."""
        self.peer_held: Callable[[str], Container[str]] | None = None
        """Active nodes (issue 25): switch name -> its DNs whose agent a call holds (routed
        there once reserved, by any node): busy, not ready; ``None``: none."""
        self.peer_waits: Callable[[str, str], PeerWaits | None] | None = None
        """Active nodes (issue 25): (switch name, routing point or ``QUEUE_KEY`` + queue) -> the
        other nodes' calls waiting there, their oldest wait and their routed waits, counted
        with this node's by the routing point and queue statistics; ``None``: nothing added."""
        self.access_numbers: Callable[[str], tuple[int, int] | None] | None = None
        """Location -> (free, reserved) numbers of its DNIS pool, ``None`` for no such pool (the
        service's access numbers set it)."""
        self._config = config
        self._by_name: dict[str, StatisticConfig] = {}
        self._by_key: dict[tuple[str, str, str, str], StatisticConfig] = {}
        self._values: dict[str, StatValue] = {}
        """Statistic name → the last value computed for it (cache and last-known value)."""
        self._index(config)

    # -- configuration ---------------------------------------------------------------------------

    def _index(self, config: ServerConfig) -> None:
        self._by_name = {}
        self._by_key = {}
        for stat in config.statistics:
            self._by_name.setdefault(stat.name, stat)
            key = (stat.server_name, stat.stat_type, stat.object_id, stat.object_type)
            self._by_key.setdefault(key, stat)  # the first in file order answers GetStatReq

    def reconfigure(self, config: ServerConfig) -> None:
        """Use ``config`` from now on. A statistic whose definition is unchanged keeps its cached
        value; the others start afresh. Waits of switches no longer running are forgotten."""
        old = self._by_name
        self._config = config
        self._index(config)
        self._values = {
            name: value
            for name, value in self._values.items()
            if name in self._by_name and self._by_name[name] == old.get(name)
        }
        self._waits.forget_switches(lambda name: name in self._switches)
        self._waits.sweep()

    @property
    def statistics(self) -> tuple[StatisticConfig, ...]:
        """The configured statistics, in file order."""
        return self._config.statistics

    # -- events ----------------------------------------------------------------------------------

    def on_event(self, switch_name: str, event: SwitchEvent, now: float) -> None:
        """Account for one event of switch ``switch_name``, handled at ``now``. Every event may be
        fed; those that do not concern waits at routing points are ignored."""
        self._waits.on_event(switch_name, event, now)

    def _still_waiting(self, switch_name: str, conn_id: str, routing_point: str) -> bool:
        switch = self._switches.get(switch_name)
        call = switch.view.call(conn_id) if switch is not None else None
        return call is not None and call.routing_point == routing_point

    # -- requests --------------------------------------------------------------------------------

    def peek(self, stat_name: str, now: float) -> StatValue | StatUnavailable | None:
        """``PeekStatReq StatName``: the value of the statistic named ``stat_name``;
        ``None`` = no such statistic (``NoSuchStat``)."""
        stat = self._by_name.get(stat_name)
        return None if stat is None else self._answer(stat, now)

    def get(
        self, server_name: str, stat_type: str, object_id: str, object_type: str, now: float
    ) -> StatValue | StatUnavailable | None:
        """``GetStatReq``: the value of the configured statistic whose four values equal these
        (byte for byte; the first in file order if several do); ``None`` = none (``NoSuchStat``)."""
        stat = self._by_key.get((server_name, stat_type, object_id, object_type))
        return None if stat is None else self._answer(stat, now)

    def _answer(self, stat: StatisticConfig, now: float) -> StatValue | StatUnavailable:
        last = self._values.get(stat.name)
        if (
            last is not None
            and stat.update_frequency > 0
            and now - last.computed_at < stat.update_frequency
        ):
            return last
        try:
            value = self._compute(stat.stat_type, stat.object_id, stat.object_type, now)
        except _Unavailable as error:
            if last is not None:
                return replace(last, last_known=True)
            return StatUnavailable(name=stat.name, reason=str(error))
        fresh = StatValue(name=stat.name, value=value, computed_at=now)
        self._values[stat.name] = fresh
        return fresh

    def value(self, stat_type: str, object_id: str, object_type: str, now: float) -> float | None:
        """The value of any supported statistic, computed now, configured or not (no cache).
        ``None``: the statistic type does not apply to that object type, or the object is not
        there."""
        try:
            return self._compute(stat_type, object_id, object_type, now)
        except _Unavailable:
            return None

    def _compute(self, stat_type: str, object_id: str, object_type: str, now: float) -> float:
        compute = _COMPUTE.get((stat_type, object_type))
        if compute is None:
            raise _Unavailable(f"{stat_type} does not apply to object type {object_type}")
        return compute(self, object_id, now)

    # -- views for the API -----------------------------------------------------------------------

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every configured statistic, in file order, with what a request would get now.

        Each item: ``name``, ``server_name``, ``stat_type``, ``object_id``, ``object_type``,
        ``update_frequency`` (seconds), ``result`` (``Success`` / ``MiscError``), ``value``
        (float or None), ``text`` (the wire form or None), ``computed_at`` (``now`` of the value,
        or None), ``last_known`` (bool) and ``reason`` (why MiscError, or None). Goes through
        the cache like a request.
        """
        items: list[dict[str, Any]] = []
        for stat in self._config.statistics:
            if self._by_name.get(stat.name) is not stat:
                continue  # a duplicate name (not in a validated configuration)
            answer = self._answer(stat, now)
            item: dict[str, Any] = {
                "name": stat.name,
                "server_name": stat.server_name,
                "stat_type": stat.stat_type,
                "object_id": stat.object_id,
                "object_type": stat.object_type,
                "update_frequency": stat.update_frequency,
                "result": result_code(answer),
            }
            if isinstance(answer, StatValue):
                item |= {
                    "value": answer.value,
                    "text": format_value(answer.value),
                    "computed_at": answer.computed_at,
                    "last_known": answer.last_known,
                    "reason": None,
                }
            else:
                item |= {
                    "value": None,
                    "text": None,
                    "computed_at": None,
                    "last_known": False,
                    "reason": answer.reason,
                }
            items.append(item)
        return items

    def overview(self, now: float) -> dict[str, list[dict[str, Any]]]:
        """Everything at a glance, computed now (no cache), for the API and web view::

            {"routing_points": [{"switch", "dn", "waiting", "ewt", "max_wait"}, ...],
             "queues":         [{"switch", "dn", "ready", "not_ready", "busy", "logged_in"}, ...],
             "agent_groups":   [{"name", "ready", "not_ready", "busy", "logged_in"}, ...],
             "ivrs":           [{"name", "calls"}, ...]}

        Routing points and queues are the ``routing-point`` / ``acd-queue`` DNs of the running
        switches; agent groups and IVRs those of the configuration. Seconds are floats.
        """
        points: list[dict[str, Any]] = []
        queues: list[dict[str, Any]] = []
        group_of = self._groups_by_agent()
        group_tally: dict[str, list[AgentActivity]] = {
            group.name: [] for group in self._config.agent_groups
        }
        for switch_name, switch in self._switches.items():
            queue_tally: dict[str, list[AgentActivity]] = {}
            for dn in switch.view.dns():
                if dn.type is DnType.ROUTING_POINT:
                    points.append(
                        {
                            "switch": switch_name,
                            "dn": dn.number,
                            "waiting": self._waiting_at(switch_name, switch, dn.number),
                            "ewt": self._ewt(switch_name, dn.number, now),
                            "max_wait": self._max_wait(switch_name, dn.number, now),
                        }
                    )
                elif dn.type is DnType.ACD_QUEUE:
                    queue_tally[dn.number] = []
            for agent, activity in self._activities(switch_name, switch):
                if agent.queue in queue_tally:
                    queue_tally[agent.queue].append(activity)
                for group in group_of.get(agent.agent_id, ()):
                    group_tally[group].append(activity)
            queues.extend(
                {"switch": switch_name, "dn": number} | count_activities(tally).as_dict()
                for number, tally in queue_tally.items()
            )
        return {
            "routing_points": points,
            "queues": queues,
            "agent_groups": [
                {"name": name} | count_activities(tally).as_dict()
                for name, tally in group_tally.items()
            ],
            "ivrs": [
                {"name": ivr.name, "calls": self._calls_of_ivr(ivr.name)}
                for ivr in self._config.ivrs
            ],
        }

    # -- computations ----------------------------------------------------------------------------

    def _dn(self, object_id: str, wanted: DnType) -> tuple[str, Switch, str]:
        """Object id ``DN`` or ``DN@Switch`` → (switch name, switch, DN) on the running switches;
        the DN must be of type ``wanted`` (and, without a switch, on exactly one switch)."""
        number, switch_name = split_object_id(object_id)
        if switch_name is None:
            found = [
                name
                for name, switch in self._switches.items()
                if switch.view.dn(number) is not None
            ]
            if len(found) != 1:
                where = "no running switch" if not found else f"{len(found)} running switches"
                raise _Unavailable(f"DN {number!r} is on {where}")
            switch_name = found[0]
        switch = self._switches.get(switch_name)
        if switch is None:
            raise _Unavailable(f"switch {switch_name!r} is not running")
        dn = switch.view.dn(number)
        if dn is None or dn.type is not wanted:
            what = "not there" if dn is None else f"a {dn.type.value}"
            raise _Unavailable(f"DN {number!r} on switch {switch_name!r} is {what}")
        return switch_name, switch, number

    def _peers(self, switch_name: str, key: str) -> PeerWaits | None:
        source = self.peer_waits
        return source(switch_name, key) if source is not None else None

    def _waiting_calls(self, object_id: str, now: float) -> float:
        switch_name, switch, number = self._dn(object_id, DnType.ROUTING_POINT)
        return self._waiting_at(switch_name, switch, number)

    def _waiting_at(self, switch_name: str, switch: Switch, number: str) -> int:
        """Calls waiting at routing point ``number``, the other active nodes' included."""
        peers = self._peers(switch_name, number)
        here = len(switch.view.waiting_calls(number))
        return here + peers.waiting if peers is not None else here

    def _expected_wait_time(self, object_id: str, now: float) -> float:
        switch_name, _, number = self._dn(object_id, DnType.ROUTING_POINT)
        return self._ewt(switch_name, number, now)

    def _max_waiting_time(self, object_id: str, now: float) -> float:
        switch_name, _, number = self._dn(object_id, DnType.ROUTING_POINT)
        return self._max_wait(switch_name, number, now)

    def _ewt(self, switch_name: str, number: str, now: float) -> float:
        """The expected wait (waits.py); in active mode the mean of every node's routed waits,
        else the longest wait of any node."""
        peers = self._peers(switch_name, number)
        if peers is None:
            return round(self._waits.expected_wait(switch_name, number, now), _TIME_DECIMALS)
        samples = self._waits.completed_waits(switch_name, number, now)
        count = len(samples) + peers.samples
        if count:
            return round((sum(samples) + peers.total) / count, _TIME_DECIMALS)
        return self._max_wait(switch_name, number, now)

    def _max_wait(self, switch_name: str, number: str, now: float) -> float:
        longest = self._waits.longest_wait(switch_name, number, now)
        peers = self._peers(switch_name, number)
        if peers is not None and peers.oldest is not None:
            longest = max(longest, now - peers.oldest)
        return round(longest, _TIME_DECIMALS)

    def wait_summary(self, now: float) -> Iterator[tuple[str, str, float | None, float, int]]:
        """What an active node tells the others of its waits (``WaitTracker.summary``)."""
        return self._waits.summary(now)

    def _agent_queue(self, switch_name: str, dn: str) -> str | None:
        switch = self._switches.get(switch_name)
        snapshot = switch.view.dn(dn) if switch is not None else None
        agent = snapshot.agent if snapshot is not None else None
        return agent.queue if agent is not None and agent.queue else None

    def _queue_waiting_calls(self, object_id: str, now: float) -> float:
        switch_name, _, number = self._dn(object_id, DnType.ACD_QUEUE)
        source = self._waiting_for_queue
        here = source(switch_name, number) if source is not None else 0
        peers = self._peers(switch_name, QUEUE_KEY + number)
        return here + peers.waiting if peers is not None else here

    def _queue_expected_wait_time(self, object_id: str, now: float) -> float:
        switch_name, _, number = self._dn(object_id, DnType.ACD_QUEUE)
        return self._ewt(switch_name, QUEUE_KEY + number, now)

    def _queue_agents(self, object_id: str) -> AgentCounts:
        name, switch, number = self._dn(object_id, DnType.ACD_QUEUE)
        return count_activities(
            activity for agent, activity in self._activities(name, switch) if agent.queue == number
        )

    def _group_agents(self, object_id: str) -> AgentCounts:
        group = self._config.agent_group(object_id)
        if group is None:
            raise _Unavailable(f"no agent group {object_id!r}")
        members = frozenset(group.agents)
        return count_activities(
            activity
            for name, switch in self._switches.items()
            for agent, activity in self._activities(name, switch)
            if agent.agent_id in members
        )

    def _activities(self, name: str, switch: Switch) -> Iterator[tuple[Any, AgentActivity]]:
        """The agents of ``switch`` with their activity, and those other nodes hold on its DNs
        (:attr:`peers`, active mode)."""
        held = self.peer_held(name) if self.peer_held is not None else ()
        yield from agent_activities(switch, held)
        if self.peers is not None:
            yield from self.peers(name, switch)

    def _groups_by_agent(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for group in self._config.agent_groups:
            for agent_id in group.agents:
                groups.setdefault(agent_id, []).append(group.name)
        return groups

    def _pool(self, object_id: str) -> tuple[int, int]:
        source = self.access_numbers
        counts = source(object_id) if source is not None else None
        if counts is None:
            raise _Unavailable(f"no DNIS pool for location {object_id!r}")
        return counts

    def _free_numbers(self, object_id: str, now: float) -> float:
        return self._pool(object_id)[0]

    def _reserved_numbers(self, object_id: str, now: float) -> float:
        return self._pool(object_id)[1]

    def _ivr_calls(self, object_id: str, now: float) -> float:
        if self._config.ivr(object_id) is None:
            raise _Unavailable(f"no IVR {object_id!r}")
        return self._calls_of_ivr(object_id)


def _agents(
    counts_of: Callable[[StatsEngine, str], AgentCounts], attribute: str
) -> Callable[[StatsEngine, str, float], float]:
    """A table entry reading one attribute of the agent counts of a queue or group."""

    def compute(engine: StatsEngine, object_id: str, now: float) -> float:
        count: int = getattr(counts_of(engine, object_id), attribute)
        return count

    return compute


_COMPUTE: Final[Mapping[tuple[str, str], Callable[[StatsEngine, str, float], float]]] = {
    ("CurrNumberWaitingCalls", "RoutePoint"): StatsEngine._waiting_calls,
    ("CurrNumberWaitingCalls", "Queue"): StatsEngine._queue_waiting_calls,
    ("ExpectedWaitTime", "RoutePoint"): StatsEngine._expected_wait_time,
    ("ExpectedWaitTime", "Queue"): StatsEngine._queue_expected_wait_time,
    ("CurrMaxCallWaitingTime", "RoutePoint"): StatsEngine._max_waiting_time,
    ("CurrentReadyAgents", "Queue"): _agents(StatsEngine._queue_agents, "ready"),
    ("CurrentReadyAgents", "AgentGroup"): _agents(StatsEngine._group_agents, "ready"),
    ("CurrentNotReadyAgents", "Queue"): _agents(StatsEngine._queue_agents, "not_ready"),
    ("CurrentNotReadyAgents", "AgentGroup"): _agents(StatsEngine._group_agents, "not_ready"),
    ("CurrentBusyAgents", "Queue"): _agents(StatsEngine._queue_agents, "busy"),
    ("CurrentBusyAgents", "AgentGroup"): _agents(StatsEngine._group_agents, "busy"),
    ("CurrentLoggedInAgents", "Queue"): _agents(StatsEngine._queue_agents, "logged_in"),
    ("CurrentLoggedInAgents", "AgentGroup"): _agents(StatsEngine._group_agents, "logged_in"),
    ("CurrNumberCallsInProgress", "IVR"): StatsEngine._ivr_calls,
    ("CurrNumberFreeAccessNumbers", "Location"): StatsEngine._free_numbers,
    ("CurrNumberReservedAccessNumbers", "Location"): StatsEngine._reserved_numbers,
}
"""(statistic type, object type) → computation: the one dispatch point of every value. Keys are
exactly the pairs of :data:`ivr_server.config.STAT_TYPES`."""
