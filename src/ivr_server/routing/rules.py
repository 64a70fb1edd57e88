"""The built-in router: ordered rules per routing point, no I/O, no clock.

Theory of operation
-------------------
:class:`BuiltinRouter` implements :class:`~ivr_server.routing.Router` for the routing points of
one switch. Its rules are the validated ``[[routing]]`` configuration
(:class:`~ivr_server.config.RoutingRule`), compiled once in the constructor: regular expressions
are precompiled, conditions become small closures, key/value tables become wire key/value lists.
Per route request the work is proportional to the rules of that routing point (plus one look at
the switch's ready agents when a rule targets agents).

One *dialog* per call (keyed by ConnID) remembers where the call is in its rule:

* ``EventRouteRequest`` on a served routing point opens it: the first rule whose conditions all
  hold and whose agent target (``queue`` / ``agent-group``) has a ready agent is chosen; none →
  ``TRouteCall RouteType=Default`` without Dest.
* The rule's treatments run one by one (``TApplyTreatment``; phase ``TREATING``); the next starts
  on ``EventTreatmentEnd`` or ``EventTreatmentNotApplied``.
* Then the rule routes (phase ``ROUTED``): its ``attach`` data is written (``TUpdateUserData`` on
  the port DN, Replace semantics) and ``TRouteCall`` is sent. An agent target is resolved again
  at that moment; no ready agent left → ``RouteType=Default``.
* A routing failure (``EventError`` for ``TRouteCall`` with the call's ConnID: the IVR sent
  ``Failure``) routes again with the next rule after the current one whose conditions hold and
  whose agent target is available, without treatments; none → Default. Conditions are evaluated
  against the ``EventRouteRequest`` that opened the dialog.
* ``EventRouteUsed`` ends the dialog — unless it reports the router's own ``TRouteCall`` (same
  ReferenceID): the switch reports a failure *after* that ``EventRouteUsed``, so a routed dialog
  is kept until the call ends. ``EventReleased`` of the call (or ``EventAbandoned``: a Network
  call the IVR ended before it was connected) forgets it in every case, so the table is empty
  once the calls are over.

Every other event, every event of another switch, and every event about a call or routing point
the router does not know is ignored: nothing here raises because of what a peer did.

Active nodes (``[ha] mode = "active"``, issue 25): with :attr:`BuiltinRouter.reservations` set,
an agent target chooses among this node's ready agents and then the other nodes' (their facts),
and no call is routed to an agent before the agent is reserved for it site-wide: the router asks
:meth:`AgentReservations.reserve` and leaves the call waiting (phase ``TREATING``, as while a
treatment plays); :meth:`BuiltinRouter.reserved` brings the answer: reserved, the call is routed
to that agent; taken by another node, the next agent is tried (none: Default). The reservation
is given back (:meth:`AgentReservations.release`) when the call ends, its route fails or its
dialog is aborted.
"""

from __future__ import annotations

__all__ = [
    "ROUTE_FAILURE_CODES",
    "AgentReservations",
    "BuiltinRouter",
    "DialogPhase",
    "DialogSnapshot",
    "kv_from_table",
]

import re
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Protocol

from ivr_server.config import UDATA_PREFIX, KvValue, MatchCondition, RoutingRule
from ivr_server.errors import LocalProtocolError
from ivr_server.switch import (
    EventAbandoned,
    EventError,
    EventReleased,
    EventRouteRequest,
    EventRouteUsed,
    EventTreatmentEnd,
    EventTreatmentNotApplied,
    ReadyAgent,
    RouteType,
    RoutingEvent,
    Switch,
    SwitchEvent,
    TApplyTreatment,
    TErrorCode,
    TRouteCall,
    TUpdateUserData,
)
from ivr_server.wire.kv import Item, KvList, List, Node

ROUTE_FAILURE_CODES: Final = frozenset(
    {TErrorCode.TERR_ORIG_DN_BUSY, TErrorCode.TERR_DN_NO_ANSWER, TErrorCode.TERR_CONN_ATMPT_FAIL}
)
"""AttributeErrorCode values of the EventError that reports a failed route (``Failure``
``Busy`` / ``NoAnswer`` / ``ConnectFailed``, PROTOCOL.md §3.3.5)."""


def kv_from_table(table: Iterable[tuple[str, KvValue]]) -> KvList:
    """A configuration key/value table (:data:`~ivr_server.config.KvTable`) as wire items:
    ``int`` → ``Int`` node, ``str`` → ``Str`` node, nested table → ``List``."""
    items: list[Item] = []
    for key, value in table:
        if isinstance(value, bool):  # the config turns booleans into strings; be safe anyway
            items.append(Node(Name=key, Type="Str", Val="true" if value else "false"))
        elif isinstance(value, int):
            items.append(Node(Name=key, Type="Int", Val=str(value)))
        elif isinstance(value, str):
            items.append(Node(Name=key, Type="Str", Val=value))
        else:
            items.append(List(Name=key, items=kv_from_table(value)))
    return tuple(items)


# --------------------------------------------------------------------------------------------
# Compiled rules


class _ListValue:
    """What a condition sees for a user-data key whose first item is a ``List``."""

    __slots__ = ()


_LIST: Final = _ListValue()

_Value = str | _ListValue | None
"""A field's value in a route request: a string, a List (user data only), or None = absent."""

_Getter = Callable[[EventRouteRequest], _Value]
_Test = Callable[[EventRouteRequest], bool]


def _attribute_getter(name: str) -> _Getter:
    def get(request: EventRouteRequest) -> _Value:
        value: str | None = getattr(request, name)
        return value or None  # an empty attribute is absent

    return get


_ATTRIBUTE_GETTERS: Final[Mapping[str, _Getter]] = {
    "dnis": _attribute_getter("dnis"),
    "ani": _attribute_getter("ani"),
    "ced": _attribute_getter("collected_digits"),
}


def _user_data_getter(key: str) -> _Getter:
    def get(request: EventRouteRequest) -> _Value:
        for item in request.user_data:
            if item.Name == key:
                return item.Val if isinstance(item, Node) else _LIST
        return None

    return get


def _compile_condition(condition: MatchCondition) -> _Test:
    field = condition.field
    get = _ATTRIBUTE_GETTERS.get(field) or _user_data_getter(field.removeprefix(UDATA_PREFIX))
    if condition.equals is not None:
        expected = condition.equals
        return lambda request: get(request) == expected
    if condition.prefix is not None:
        prefix = condition.prefix

        def starts(request: EventRouteRequest) -> bool:
            value = get(request)
            return isinstance(value, str) and value.startswith(prefix)

        return starts
    if condition.regex is not None:
        pattern = re.compile(condition.regex)

        def fullmatch(request: EventRouteRequest) -> bool:
            value = get(request)
            return isinstance(value, str) and pattern.fullmatch(value) is not None

        return fullmatch
    wanted = condition.present is True
    return lambda request: (get(request) is not None) is wanted


@dataclass(frozen=True, slots=True)
class _Treatment:
    type: str
    parameters: KvList
    extensions: KvList


@dataclass(frozen=True, slots=True)
class _Rule:
    """One compiled rule. Exactly one of ``dest``/``queue``/``group`` is set, or none of them
    (a ``default`` target: RouteType Default without Dest)."""

    name: str
    tests: tuple[_Test, ...]
    dest: str | None
    queue: str | None
    group: frozenset[str] | None
    route_type: RouteType
    extensions: KvList
    attach: KvList
    treatments: tuple[_Treatment, ...]

    def matches(self, request: EventRouteRequest) -> bool:
        return all(test(request) for test in self.tests)

    @property
    def wants_agent(self) -> bool:
        return self.queue is not None or self.group is not None

    def pick(self, agents: Sequence[ReadyAgent]) -> ReadyAgent | None:
        """The longest-idle agent of ``agents`` (sorted so) this rule may route to."""
        if self.queue is not None:
            queue = self.queue
            return next((agent for agent in agents if agent.queue == queue), None)
        group = self.group
        assert group is not None
        return next((agent for agent in agents if agent.agent_id in group), None)


def _compile_rule(rule: RoutingRule, groups: Mapping[str, frozenset[str]]) -> _Rule:
    group: frozenset[str] | None = None
    if rule.agent_group is not None:
        group = groups.get(rule.agent_group)
        if group is None:
            raise LocalProtocolError(
                f"rule {rule.name!r}: unknown agent group {rule.agent_group!r}"
            )
    return _Rule(
        name=rule.name,
        tests=tuple(_compile_condition(condition) for condition in rule.match),
        dest=rule.dn if rule.dn is not None else rule.routing_point,
        queue=rule.queue,
        group=group,
        route_type=rule.effective_route_type,
        extensions=kv_from_table(rule.extensions),
        attach=kv_from_table(rule.attach),
        treatments=tuple(
            _Treatment(t.type, kv_from_table(t.parameters), kv_from_table(t.extensions))
            for t in rule.treatments
        ),
    )


# --------------------------------------------------------------------------------------------
# Dialogs


class DialogPhase(Enum):
    """Where a call's dialog with the built-in router is."""

    TREATING = "treating"
    """A treatment of the chosen rule was asked for; waiting for it to end (or not start)."""
    ROUTED = "routed"
    """``TRouteCall`` was sent; kept until the call ends, in case the route fails."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogSnapshot:
    """Read-only view of one call's dialog with the built-in router."""

    conn_id: str
    """AttributeConnID of the call."""
    routing_point: str
    """The routing point the call was presented on."""
    rule: str | None
    """Name of the rule in use; None when no rule took the call (routed Default)."""
    phase: DialogPhase
    """Treating or routed."""
    treatment: int | None
    """Index (in the rule's ``treatments``) of the treatment running, while treating."""


class AgentReservations(Protocol):
    """Active nodes: the agents of the other nodes, and the site-wide reservation of an agent
    for a call (``service/peers_state.py``, ``runtime/ha_active.py``)."""

    def elsewhere(self, switch: str) -> list[ReadyAgent]:
        """The other nodes' ready agents without a call on DNs of ``switch``, as of their
        facts (after this node's own in the order of choice)."""
        ...

    def taken(self, switch: str) -> Container[str]:
        """DNs of ``switch`` whose agent another node's call holds: not ready for this node
        either, although its switch does not know."""
        ...

    def reserve(self, switch: str, dn: str, conn_id: str) -> None:
        """Ask for the agent on ``dn`` for call ``conn_id``; the answer comes later through
        :meth:`BuiltinRouter.reserved` (no I/O here)."""
        ...

    def release(self, switch: str, dn: str, conn_id: str) -> None:
        """Give back the agent on ``dn`` that call ``conn_id`` held."""
        ...


class _Dialog:
    """Mutable state of one call's dialog. Only :class:`BuiltinRouter` writes it."""

    __slots__ = (
        "held",
        "phase",
        "port",
        "request",
        "reserving",
        "route_ref",
        "routing_point",
        "rule",
        "treatment",
        "tried",
    )

    def __init__(
        self, routing_point: str, port: str | None, request: EventRouteRequest | None
    ) -> None:
        self.routing_point = routing_point
        self.port = port
        self.request = request
        self.rule = -1
        """Index of the rule in use; ``len(rules)`` = none (routed Default)."""
        self.phase = DialogPhase.TREATING
        self.treatment = 0
        self.route_ref: int | None = None
        """ReferenceID of the router's latest TRouteCall."""
        self.reserving: str | None = None
        """Active nodes: the agent DN asked for, its reservation not answered yet."""
        self.held: str | None = None
        """Active nodes: the agent DN reserved for the call (given back when it ends)."""
        self.tried: set[str] = set()
        """Active nodes: agent DNs another node had reserved (not asked again for this rule)."""


class BuiltinRouter:
    """The rule-based router of the routing points of one switch (see the module docstring).

    ``points`` maps each served routing point to its rules, in order; ``refs`` gives a fresh
    T-Library ReferenceID per request; ``agent_groups`` maps group names to agent ids (every
    group a rule names must be there, else :class:`~ivr_server.errors.LocalProtocolError`).
    """

    def __init__(
        self,
        points: Mapping[str, Sequence[RoutingRule]],
        refs: Callable[[], int],
        *,
        agent_groups: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        groups = {name: frozenset(agents) for name, agents in (agent_groups or {}).items()}
        self._rules: dict[str, tuple[_Rule, ...]] = {
            point: tuple(_compile_rule(rule, groups) for rule in rules)
            for point, rules in points.items()
        }
        self._points = frozenset(self._rules)
        self._refs = refs
        self._dialogs: dict[str, _Dialog] = {}
        self.reservations: AgentReservations | None = None
        """Active nodes (see the module docstring); ``None``: this node's agents only, routed
        at once."""
        """ConnID → the call's dialog."""

    # -- the Router interface ---------------------------------------------------------------------

    def routing_points(self) -> frozenset[str]:
        """The routing points this router has rules for."""
        return self._points

    def on_event(self, switch: Switch, event: SwitchEvent) -> None:
        """React to one event of ``switch``; see the module docstring."""
        handler = _HANDLERS.get(type(event))
        if handler is not None and event.switch == switch.name:
            handler(self, switch, event)

    # -- read side ----------------------------------------------------------------------------------

    def waiting_for_queue(self, queue: str) -> int:
        """Calls waiting at a routing point (their treatments running or about to) whose chosen
        rule targets ACD queue ``queue``: the calls waiting for that queue's agents."""
        count = 0
        for dialog in self._dialogs.values():
            if dialog.phase is not DialogPhase.TREATING or dialog.rule < 0:
                continue
            rules = self._rules.get(dialog.routing_point, ())
            if dialog.rule < len(rules) and rules[dialog.rule].queue == queue:
                count += 1
        return count

    def waiting_by_queue(self) -> dict[str, int]:
        """:meth:`waiting_for_queue` of every queue some waiting call's rule targets, in one
        pass (an active node's facts, issue 25)."""
        counts: dict[str, int] = {}
        for dialog in self._dialogs.values():
            if dialog.phase is not DialogPhase.TREATING or dialog.rule < 0:
                continue
            rules = self._rules.get(dialog.routing_point, ())
            queue = rules[dialog.rule].queue if dialog.rule < len(rules) else None
            if queue:
                counts[queue] = counts.get(queue, 0) + 1
        return counts

    def dialogs(self) -> list[DialogSnapshot]:
        """Snapshots of every dialog the router keeps, oldest first."""
        return [self._snapshot(conn_id, dialog) for conn_id, dialog in self._dialogs.items()]

    def dialog(self, conn_id: str) -> DialogSnapshot | None:
        """A snapshot of the dialog of call ``conn_id``, or None."""
        dialog = self._dialogs.get(conn_id)
        return None if dialog is None else self._snapshot(conn_id, dialog)

    def _snapshot(self, conn_id: str, dialog: _Dialog) -> DialogSnapshot:
        rules = self._rules[dialog.routing_point]
        treating = dialog.phase is DialogPhase.TREATING
        return DialogSnapshot(
            conn_id=conn_id,
            routing_point=dialog.routing_point,
            rule=rules[dialog.rule].name if 0 <= dialog.rule < len(rules) else None,
            phase=dialog.phase,
            treatment=dialog.treatment if treating else None,
        )

    # -- HA: a dialog as state, and back (issue 25, service/persist.py) ----------------------------

    def dialog_state(
        self, conn_id: str
    ) -> tuple[str, str | None, EventRouteRequest | None, int, str, int, int | None] | None:
        """The dialog of call ``conn_id`` as plain values (routing point, port, the route
        request, rule index, phase, treatment index, the latest TRouteCall's ReferenceID), or
        ``None``: what another node needs to carry the dialog on."""
        dialog = self._dialogs.get(conn_id)
        if dialog is None:
            return None
        return (
            dialog.routing_point,
            dialog.port,
            dialog.request,
            dialog.rule,
            dialog.phase.value,
            dialog.treatment,
            dialog.route_ref,
        )

    def restore_dialog(
        self,
        conn_id: str,
        state: tuple[str, str | None, EventRouteRequest | None, int, str, int, int | None],
    ) -> bool:
        """Take over the dialog :meth:`dialog_state` gave (another node's); ``False`` if its
        routing point or rule is not this router's."""
        routing_point, port, request, rule, phase, treatment, route_ref = state
        rules = self._rules.get(routing_point)
        if rules is None or rule > len(rules):
            return False
        dialog = _Dialog(routing_point, port, request)
        dialog.rule, dialog.phase, dialog.treatment = rule, DialogPhase(phase), treatment
        dialog.route_ref = route_ref
        self._dialogs[conn_id] = dialog
        return True

    # -- events -------------------------------------------------------------------------------------

    def _on_route_request(self, switch: Switch, event: EventRouteRequest) -> None:
        rules = self._rules.get(event.dn)
        if rules is None:
            return
        dialog = _Dialog(event.dn, event.other_dn, event)
        self._dialogs[event.conn_id] = dialog
        index, agent = self._choose(switch, rules, event, 0)
        dialog.rule = index
        if index == len(rules):
            self._route_default(switch, event.conn_id, dialog)
            return
        rule = rules[index]
        if rule.treatments:
            self._treat(switch, event.conn_id, dialog, rule, 0)
        else:
            self._route(switch, event.conn_id, dialog, rule, agent)

    def _on_treatment_over(
        self, switch: Switch, event: EventTreatmentEnd | EventTreatmentNotApplied
    ) -> None:
        dialog = self._dialog_at(event)
        if dialog is None or dialog.phase is not DialogPhase.TREATING or dialog.reserving:
            return
        rule = self._rules[dialog.routing_point][dialog.rule]
        following = dialog.treatment + 1
        if following < len(rule.treatments):
            self._treat(switch, event.conn_id, dialog, rule, following)
        else:
            self._route(switch, event.conn_id, dialog, rule, None)

    def _on_error(self, switch: Switch, event: EventError) -> None:
        conn_id, point = event.conn_id, event.dn
        if (
            event.request != TRouteCall.name
            or conn_id is None
            or point is None
            or event.error_code not in ROUTE_FAILURE_CODES
        ):
            return
        rules = self._rules.get(point)
        if rules is None:
            return
        dialog = self._dialogs.get(conn_id)
        if dialog is None or dialog.routing_point != point or dialog.request is None:
            # A call the router has no dialog for waits at its routing point: no rule is known
            # to have been tried, and none can be chosen without the route request. Default.
            dialog = _Dialog(point, None, None)
            dialog.rule = len(rules)
            self._dialogs[conn_id] = dialog
            self._route_default(switch, conn_id, dialog)
            return
        self._give_back(switch, conn_id, dialog)
        dialog.tried.clear()
        index, agent = self._choose(switch, rules, dialog.request, dialog.rule + 1)
        dialog.rule = index
        if index == len(rules):
            self._route_default(switch, conn_id, dialog)
        else:
            self._route(switch, conn_id, dialog, rules[index], agent)

    def _on_route_used(self, switch: Switch, event: EventRouteUsed) -> None:
        dialog = self._dialog_at(event)
        if dialog is None:
            return
        routed_by_us = (
            dialog.phase is DialogPhase.ROUTED
            and event.reference_id is not None
            and event.reference_id == dialog.route_ref
        )
        if not routed_by_us:  # aborted, timed out, or released while treating
            del self._dialogs[event.conn_id]
            self._give_back(switch, event.conn_id, dialog)

    def _on_released(self, switch: Switch, event: EventReleased) -> None:
        dialog = self._dialogs.pop(event.conn_id, None)
        if dialog is not None:
            self._give_back(switch, event.conn_id, dialog)

    def _give_back(self, switch: Switch, conn_id: str, dialog: _Dialog) -> None:
        """Active nodes: the call no longer needs the agent reserved for it (an answer still
        to come for a reservation asked is given back by :meth:`reserved`)."""
        dialog.reserving = None
        held, dialog.held = dialog.held, None
        if held is not None and self.reservations is not None:
            self.reservations.release(switch.name, held, conn_id)

    def reserved(self, switch: Switch, conn_id: str, dn: str, ok: bool) -> None:
        """Active nodes: the answer to :meth:`AgentReservations.reserve` of the agent on ``dn``
        for call ``conn_id``: reserved (``ok``), the call is routed to it; taken by another
        node, the next agent of the rule is tried. A call that no longer waits for it gives it
        back."""
        dialog = self._dialogs.get(conn_id)
        if dialog is None or dialog.reserving != dn:
            if ok and self.reservations is not None:
                self.reservations.release(switch.name, dn, conn_id)
            return
        dialog.reserving = None
        rules = self._rules[dialog.routing_point]
        if not 0 <= dialog.rule < len(rules):
            if ok and self.reservations is not None:
                self.reservations.release(switch.name, dn, conn_id)
            return
        rule = rules[dialog.rule]
        if ok and self._still_ready(switch, dn):
            dialog.held = dn
            self._send_agent_route(switch, conn_id, dialog, rule, dn)
            return
        if ok and self.reservations is not None:  # no longer ready meanwhile: given back
            self.reservations.release(switch.name, dn, conn_id)
        dialog.tried.add(dn)
        self._route(switch, conn_id, dialog, rule, None)

    def _dialog_at(self, event: RoutingEvent) -> _Dialog | None:
        dialog = self._dialogs.get(event.conn_id)
        if dialog is None or dialog.routing_point != event.dn:
            return None
        return dialog

    # -- decisions and requests ---------------------------------------------------------------------

    def _choose(
        self,
        switch: Switch,
        rules: tuple[_Rule, ...],
        request: EventRouteRequest,
        start: int,
    ) -> tuple[int, ReadyAgent | None]:
        """The first rule from ``start`` on that matches and can route, with its agent if it
        targets agents; ``(len(rules), None)`` when there is none."""
        agents: list[ReadyAgent] | None = None
        for index in range(start, len(rules)):
            rule = rules[index]
            if not rule.matches(request):
                continue
            if not rule.wants_agent:
                return index, None
            if agents is None:
                agents = self._ready_agents(switch, ())
            agent = rule.pick(agents)
            if agent is not None:
                return index, agent
        return len(rules), None

    def _still_ready(self, switch: Switch, dn: str) -> bool:
        """Is the agent on ``dn``, just reserved for a call, still ready (its reservation is
        now among the ``taken``: not filtered by them)?"""
        if any(agent.dn == dn for agent in switch.view.ready_agents()):
            return True
        reservations = self.reservations
        return reservations is not None and any(
            agent.dn == dn for agent in reservations.elsewhere(switch.name)
        )

    def _ready_agents(self, switch: Switch, tried: Iterable[str]) -> list[ReadyAgent]:
        """The agents to choose from: this switch's ready agents, the longest idle first; in
        active mode then the other nodes' (``ready_since`` orders only within one node), less
        those another node's call holds and those another node had reserved (``tried``)."""
        agents = switch.view.ready_agents()
        reservations = self.reservations
        if reservations is None:
            return agents
        taken = reservations.taken(switch.name)
        agents = [agent for agent in agents if agent.dn not in taken]
        agents.extend(reservations.elsewhere(switch.name))
        skip = set(tried)
        return [agent for agent in agents if agent.dn not in skip] if skip else agents

    def _treat(
        self, switch: Switch, conn_id: str, dialog: _Dialog, rule: _Rule, index: int
    ) -> None:
        treatment = rule.treatments[index]
        dialog.phase, dialog.treatment = DialogPhase.TREATING, index
        switch.request(
            TApplyTreatment(
                reference_id=self._refs(),
                conn_id=conn_id,
                dn=dialog.routing_point,
                treatment_type=treatment.type,
                parameters=treatment.parameters,
                extensions=treatment.extensions,
            )
        )

    def _route(
        self,
        switch: Switch,
        conn_id: str,
        dialog: _Dialog,
        rule: _Rule,
        agent: ReadyAgent | None,
    ) -> None:
        """Route with ``rule``; an agent target takes ``agent``, else the longest-idle one now
        (none left: Default)."""
        dest = rule.dest
        if rule.wants_agent:
            if agent is None or agent.dn in dialog.tried:
                agent = rule.pick(self._ready_agents(switch, dialog.tried))
            if agent is None:
                self._route_default(switch, conn_id, dialog)
                return
            if self.reservations is not None:  # routed once the agent is the call's
                dialog.phase, dialog.reserving = DialogPhase.TREATING, agent.dn
                self.reservations.reserve(switch.name, agent.dn, conn_id)
                return
            dest = agent.dn
        self._send_agent_route(switch, conn_id, dialog, rule, dest)

    def _send_agent_route(
        self, switch: Switch, conn_id: str, dialog: _Dialog, rule: _Rule, dest: str | None
    ) -> None:
        """``rule``'s attached data, then its ``TRouteCall`` to ``dest``."""
        if rule.attach:
            switch.request(
                TUpdateUserData(
                    reference_id=self._refs(),
                    conn_id=conn_id,
                    # a Network call has no port: its one party is the routing DN
                    dn=dialog.port if dialog.port is not None else dialog.routing_point,
                    user_data=rule.attach,
                )
            )
        self._send_route(switch, conn_id, dialog, rule.route_type, dest, rule.extensions)

    def _route_default(self, switch: Switch, conn_id: str, dialog: _Dialog) -> None:
        self._send_route(switch, conn_id, dialog, "Default", None, ())

    def _send_route(
        self,
        switch: Switch,
        conn_id: str,
        dialog: _Dialog,
        route_type: RouteType,
        dest: str | None,
        extensions: KvList,
    ) -> None:
        reference_id = self._refs()
        dialog.phase, dialog.route_ref = DialogPhase.ROUTED, reference_id
        switch.request(
            TRouteCall(
                reference_id=reference_id,
                conn_id=conn_id,
                dn=dialog.routing_point,
                route_type=route_type,
                dest=dest,
                extensions=extensions,
            )
        )


_Handler = Callable[[BuiltinRouter, Switch, Any], None]

_HANDLERS: Final[Mapping[type[SwitchEvent], _Handler]] = {
    EventRouteRequest: BuiltinRouter._on_route_request,
    EventTreatmentEnd: BuiltinRouter._on_treatment_over,
    EventTreatmentNotApplied: BuiltinRouter._on_treatment_over,
    EventError: BuiltinRouter._on_error,
    EventRouteUsed: BuiltinRouter._on_route_used,
    EventReleased: BuiltinRouter._on_released,
    EventAbandoned: BuiltinRouter._on_released,
}
"""Event type → handler: the events the built-in router reacts to; every other is ignored."""
