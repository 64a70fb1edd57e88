"""The read model of a switch, built from the events it publishes.

Theory of operation
-------------------
The layers above a switch never look into its tables: whatever they read (the link, DNs and their
agents, calls with their parties and user data, calls waiting at routing points, ready agents)
comes from a :class:`SwitchView`. A switch owns one view, seeded with its configured DNs
(:meth:`SwitchView.configure`, when it is built and when its DN set changes), and applies to it
every event it publishes, in the order it queues them (:meth:`SwitchView.apply`). So the view is
current as soon as a request returns, before the events are drained, and it never depends on
which switch implementation made the events: the virtual switch and a premise switch feed it
alike. The virtual switch goes further and keeps no tables of its own: it checks requests against
its view, and changes it only by publishing events.

What each event does to the view (an event about a DN or call the view does not hold changes
nothing):

==============================================  ==================================================
EventLinkConnected / EventLinkDisconnected      the link is up / down
EventRegistered / EventUnregistered             the DN is registered / not
EventDNBackInService / EventDNOutOfService      the DN is in / out of service
EventAgentLogin                                 the agent is on the DN (NotReady until the next
                                                event, which always follows: Ready or NotReady)
EventAgentReady / EventAgentNotReady            the agent's state and work mode; an agent that
                                                becomes Ready goes to the end of the idle order
EventAgentLogout                                the DN has no agent
EventRinging / EventEstablished / EventDialing  a new call (ConnID, CallID, ANI, DNIS, user data;
                                                EventDialing: the number dialled), or a new party
EventAttachedDataChanged                        the call's user data
EventQueued                                     a new Network-mode call queued at its routing DN
EventRouteRequest                               the call waits at the routing point (a Network
                                                call of ``CallControlMode='Genesys'``: a new call)
RequestApplyTreatment                           the treatment asked for the waiting call
EventTreatmentNotApplied / EventTreatmentEnd    no treatment any more
RequestRouteCall                                a Ready agent on the destination DN was just given
                                                a call: it goes to the end of the idle order; a
                                                Network call is routed (waits nowhere, its
                                                outcome not reported yet)
EventDiverted                                   a Network call is no longer queued
EventRouteUsed                                  the call waits nowhere; a routed Network call is
                                                connected
EventError about a call (``conn_id``) from      routing to the destination failed: the call waits
a TRouteCall                                    at the routing point again (PROTOCOL.md §6.2)
EventReleased / EventAbandoned                  the DN leaves the call / the call is gone; a call
                                                whose last party left is gone
EventHeld / EventRetrieved                      the DN holds the call / takes it back
EventPartyAdded / EventPartyDeleted             ``other_dn`` joins / leaves the call (a conference);
                                                a call whose last party left is gone
EventRinging / EventEstablished of a party      a Ready agent on that DN was just given a call (a
joining a call                                  transfer, a consultation): end of the idle order
==============================================  ==================================================

Readers get frozen snapshots (:mod:`ivr_server.switch.snapshots`). The mutable records
(:class:`DnRecord`, :class:`CallRecord`) are for the switch that feeds the view, which reads them
to check requests; only :meth:`SwitchView.apply` and :meth:`SwitchView.configure` write them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from msgspec.structs import replace

from ivr_server.errors import LocalProtocolError
from ivr_server.memory import shrink
from ivr_server.switch.agent import AgentState
from ivr_server.switch.events import (
    CallEvent,
    DnType,
    EventAbandoned,
    EventAgentLogin,
    EventAgentLogout,
    EventAgentNotReady,
    EventAgentReady,
    EventAttachedDataChanged,
    EventDialing,
    EventDiverted,
    EventDNBackInService,
    EventDNOutOfService,
    EventError,
    EventEstablished,
    EventHeld,
    EventLinkConnected,
    EventLinkDisconnected,
    EventPartyAdded,
    EventPartyDeleted,
    EventQueued,
    EventRegistered,
    EventReleased,
    EventRetrieved,
    EventRinging,
    EventRouteRequest,
    EventRouteUsed,
    EventTreatmentEnd,
    EventTreatmentNotApplied,
    EventUnregistered,
    RequestApplyTreatment,
    RequestRouteCall,
    SwitchEvent,
    WorkMode,
)
from ivr_server.switch.snapshots import AgentSnapshot, CallSnapshot, DnSnapshot, ReadyAgent
from ivr_server.wire.kv import KvList

__all__ = ["CallRecord", "DnRecord", "SwitchView", "checked_dns"]


class DnRecord:
    """One DN as the view holds it. Written only by :class:`SwitchView`."""

    def __init__(self, number: str, dn_type: DnType) -> None:
        self.number = number
        self.type = dn_type
        self.registered = True
        self.in_service = True
        self.agent: AgentSnapshot | None = None

    @property
    def state(self) -> AgentState:
        """The agent state of the DN (``LOGGED_OUT`` without an agent)."""
        return self.agent.state if self.agent is not None else AgentState.LOGGED_OUT

    def snapshot(self) -> DnSnapshot:
        return DnSnapshot(
            number=self.number,
            type=self.type,
            registered=self.registered,
            in_service=self.in_service,
            agent=self.agent,
        )


class CallRecord:
    """One call as the view holds it. Written only by :class:`SwitchView`."""

    def __init__(self, event: CallEvent) -> None:
        self.conn_id = event.conn_id
        self.call_id = event.call_id
        self.ani = event.ani
        self.dnis = event.dnis
        self.user_data: KvList = event.user_data
        self.parties: list[str] = [event.dn]
        """DNs in the call, in the order they joined."""
        self.dialed: str | None = None
        """The number an outbound call dialled."""
        self.routing_point: str | None = None
        """The routing point where the call waits for a router, if it does."""
        self.treatment: str | None = None
        """The treatment the router last asked for while the call waits, if any."""
        self.held: list[str] = []
        """Parties holding the call (the original call of a consultation)."""
        self.network = False
        """A Network-mode call: its one party is the routing DN it arrived on."""
        self.queued = False
        """Network: the call came queued (``CallControlMode='Network'``) and was never
        connected: its first ``Connected`` is reported with EventDiverted."""
        self.routed = False
        """Network: routed by the router, the IVR's outcome (Connected, Failure) to come."""
        self.routed_to: str | None = None
        """Network: the destination of that route."""
        self.connected = False
        """Network: the IVR reported ``Connected`` at least once."""

    def snapshot(self) -> CallSnapshot:
        return CallSnapshot(
            conn_id=self.conn_id,
            call_id=self.call_id,
            ani=self.ani,
            dnis=self.dnis,
            parties=tuple(self.parties),
            user_data=self.user_data,
            routing_point=self.routing_point,
            treatment=self.treatment,
            held=tuple(self.held),
            network=self.network,
            routed_to=self.routed_to,
            routed=self.routed,
            connected=self.connected,
        )


def checked_dns(dns: Iterable[tuple[str, DnType]]) -> dict[str, DnType]:
    """The configured DNs in order; a duplicate, empty number or unknown type is our caller's bug
    (:class:`~ivr_server.errors.LocalProtocolError`)."""
    result: dict[str, DnType] = {}
    for number, dn_type in dns:
        if not number:
            raise LocalProtocolError("a DN number must not be empty")
        if number in result:
            raise LocalProtocolError(f"DN {number!r} is configured twice")
        try:
            result[number] = DnType(dn_type)
        except ValueError:
            raise LocalProtocolError(f"DN {number!r} has an unknown type {dn_type!r}") from None
    return result


class SwitchView:
    """What the layers above know of one switch: its link, DNs, agents and calls.

    Built with the switch's configured DNs (registered, in service, no agent) and the link down;
    every later change comes from :meth:`apply`.
    """

    def __init__(self, dns: Iterable[tuple[str, DnType]]) -> None:
        self._link_up = False
        self._dns: dict[str, DnRecord] = {}
        self._agent_dn: dict[str, str] = {}
        """agent id → DN number where that agent is logged in."""
        self._calls: dict[str, CallRecord] = {}
        """ConnID → call, in creation order."""
        self._ready_seq = 0
        # HA tracking (issue 25, service/persist.py): None = off, the default, costing one test
        # per applied event; a set = the ConnIDs / DN numbers changed since the last collect
        self.changed_calls: set[str] | None = None
        """ConnIDs of the calls this view changed (or dropped) since the last collect."""
        self.changed_dns: set[str] | None = None
        """Numbers of the DNs whose state (registration, service, agent) changed."""
        self.configure(dns)

    # -- readers ---------------------------------------------------------------------------------

    @property
    def link_up(self) -> bool:
        """Whether the switch link is up (starts ``False``)."""
        return self._link_up

    def dn(self, number: str) -> DnSnapshot | None:
        """A snapshot of DN ``number``, or ``None`` if the switch has no such DN."""
        record = self._dns.get(number)
        return record.snapshot() if record is not None else None

    def dns(self) -> Iterator[DnSnapshot]:
        """Snapshots of every DN, in configuration order."""
        return iter([record.snapshot() for record in self._dns.values()])

    def agent_dn(self, agent_id: str) -> str | None:
        """The DN where agent ``agent_id`` is logged in, or ``None``."""
        return self._agent_dn.get(agent_id)

    def call(self, conn_id: str) -> CallSnapshot | None:
        """A snapshot of the call ``conn_id``, or ``None`` if the switch has no such call."""
        call = self._calls.get(conn_id)
        return call.snapshot() if call is not None else None

    def user_data(self, conn_id: str) -> KvList | None:
        """The attached data of call ``conn_id`` (cheaper than :meth:`call`), or ``None``."""
        call = self._calls.get(conn_id)
        return call.user_data if call is not None else None

    def calls(self) -> Iterator[CallSnapshot]:
        """Snapshots of every call, oldest first."""
        return iter([call.snapshot() for call in self._calls.values()])

    def waiting_calls(self, routing_point: str) -> list[CallSnapshot]:
        """Calls waiting for routing instructions at ``routing_point``, oldest first."""
        return [c.snapshot() for c in self._calls.values() if c.routing_point == routing_point]

    def ready_agents(self) -> list[ReadyAgent]:
        """Ready agents on in-service DNs without a call, the longest idle first."""
        busy = {dn for call in self._calls.values() for dn in call.parties}
        agents = [
            ReadyAgent(
                agent_id=record.agent.agent_id,
                dn=record.number,
                queue=record.agent.queue,
                ready_since=record.agent.ready_since,
            )
            for record in self._dns.values()
            if record.agent is not None
            and record.agent.state is AgentState.READY
            and record.number not in busy
            and record.in_service
        ]
        agents.sort(key=lambda a: a.ready_since)
        return agents

    # -- for the switch that feeds the view ------------------------------------------------------

    def record(self, number: str) -> DnRecord | None:
        """The record of DN ``number`` (read-only for the caller), or ``None``."""
        return self._dns.get(number)

    def call_record(self, conn_id: str) -> CallRecord | None:
        """The record of call ``conn_id`` (read-only for the caller), or ``None``."""
        return self._calls.get(conn_id)

    def call_records(self) -> Iterable[CallRecord]:
        """Every call's record (read-only for the caller), oldest first."""
        return self._calls.values()

    def configure(self, dns: Iterable[tuple[str, DnType]]) -> None:
        """The switch's DN set is now ``dns``, in this order: a DN kept with the same type keeps
        its state, a new one (or one whose type changed) starts registered, in service, without
        an agent, a removed one is forgotten. The switch publishes what the change means for its
        clients (EventAgentLogout, EventUnregistered, EventRegistered) on its own."""
        wanted = checked_dns(dns)
        rebuilt: dict[str, DnRecord] = {}
        for number, dn_type in wanted.items():
            kept = self._dns.get(number)
            if kept is None or kept.type is not dn_type:
                kept = DnRecord(number, dn_type)
            rebuilt[number] = kept
        for number, record in self._dns.items():
            if rebuilt.get(number) is not record and record.agent is not None:
                self._set_agent(record, None)
        self._dns = rebuilt

    def compact(self) -> int:
        """Rebuild the call table if it is mostly empty (see ``ivr_server.memory``); 1 if so."""
        return int(shrink(self._calls))

    def apply(self, event: SwitchEvent) -> None:
        """Bring the view up to date with ``event`` (the table in the module docstring)."""
        handler = _APPLY.get(type(event))
        if handler is not None:
            handler(self, event)
            changed = self.changed_calls
            if changed is not None:  # HA tracking (issue 25): the call the event was about
                conn_id = getattr(event, "conn_id", None)
                if conn_id is not None:
                    changed.add(conn_id)

    # -- HA: restore (issue 25, switch/persist.py; no event is published) ------------------------

    @property
    def ready_seq(self) -> int:
        """The idle-order sequence of Ready agents (persisted with the switch's counters)."""
        return self._ready_seq

    def restore_call(self, record: CallRecord) -> None:
        """Hold ``record`` as restored from the state store (HA takeover): no event."""
        self._calls[record.conn_id] = record

    def restore_dn(
        self, number: str, registered: bool, in_service: bool, agent: AgentSnapshot | None
    ) -> bool:
        """A configured DN's state as restored from the state store (no event; the agent's
        ``ready_since`` is kept as stored); ``False`` if the DN is not configured here."""
        record = self._dns.get(number)
        if record is None:
            return False
        record.registered, record.in_service = registered, in_service
        if record.agent is not None and self._agent_dn.get(record.agent.agent_id) == number:
            del self._agent_dn[record.agent.agent_id]
        record.agent = agent
        if agent is not None:
            self._agent_dn[agent.agent_id] = number
        return True

    def restore_ready_seq(self, seq: int) -> None:
        """The idle order goes on after ``seq`` (the stored sequence), never back."""
        self._ready_seq = max(self._ready_seq, seq)

    def _dn_changed(self, number: str) -> None:
        """HA tracking (issue 25): DN ``number``'s state changed."""
        changed = self.changed_dns
        if changed is not None:
            changed.add(number)

    # -- what each event does --------------------------------------------------------------------

    def _on_link_connected(self, event: EventLinkConnected) -> None:
        self._link_up = True

    def _on_link_disconnected(self, event: EventLinkDisconnected) -> None:
        self._link_up = False

    def _on_registered(self, event: EventRegistered) -> None:
        record = self._dns.get(event.dn)
        if record is not None:
            record.registered = True
            self._dn_changed(event.dn)

    def _on_unregistered(self, event: EventUnregistered) -> None:
        record = self._dns.get(event.dn)
        if record is not None:
            record.registered = False
            self._dn_changed(event.dn)

    def _on_in_service(self, event: EventDNBackInService) -> None:
        record = self._dns.get(event.dn)
        if record is not None:
            record.in_service = True
            self._dn_changed(event.dn)

    def _on_out_of_service(self, event: EventDNOutOfService) -> None:
        record = self._dns.get(event.dn)
        if record is not None:
            record.in_service = False
            self._dn_changed(event.dn)

    def _on_agent_login(self, event: EventAgentLogin) -> None:
        record = self._dns.get(event.dn)
        if record is not None:
            agent = AgentSnapshot(
                agent_id=event.agent_id,
                queue=event.queue,
                state=AgentState.NOT_READY,
                work_mode=WorkMode.UNKNOWN,
            )
            self._set_agent(record, agent)

    def _on_agent_ready(self, event: EventAgentReady) -> None:
        self._set_work_state(event.dn, AgentState.READY, event.work_mode)

    def _on_agent_not_ready(self, event: EventAgentNotReady) -> None:
        self._set_work_state(event.dn, AgentState.NOT_READY, event.work_mode)

    def _set_work_state(self, number: str, state: AgentState, work_mode: WorkMode) -> None:
        record = self._dns.get(number)
        if record is not None and record.agent is not None:
            self._set_agent(record, replace(record.agent, state=state, work_mode=work_mode))

    def _on_agent_logout(self, event: EventAgentLogout) -> None:
        record = self._dns.get(event.dn)
        if record is not None:
            self._set_agent(record, None)

    def _set_agent(self, record: DnRecord, agent: AgentSnapshot | None) -> None:
        """The only writer of agent state: the DN, the idle order and the agent-id index."""
        if agent is not None:
            if agent.state is not AgentState.READY:
                agent = replace(agent, ready_since=0)
            elif record.agent is None or record.agent.state is not AgentState.READY:
                self._ready_seq += 1
                agent = replace(agent, ready_since=self._ready_seq)
            else:
                agent = replace(agent, ready_since=record.agent.ready_since)
        if record.agent is not None and self._agent_dn.get(record.agent.agent_id) == record.number:
            del self._agent_dn[record.agent.agent_id]
        record.agent = agent
        if agent is not None:
            self._agent_dn[agent.agent_id] = record.number
        self._dn_changed(record.number)

    def _on_call_joined(self, event: CallEvent) -> None:
        call = self._calls.get(event.conn_id)
        if call is None:
            call = self._calls[event.conn_id] = CallRecord(event)
            if type(event) is EventDialing:
                call.dialed = event.other_dn
        elif event.dn not in call.parties:
            call.parties.append(event.dn)
            self._given_call(event.dn)

    def _given_call(self, number: str) -> None:
        """A Ready agent on DN ``number`` joined a call: it goes to the end of the idle order (as
        a routed call does, :meth:`_on_route_call`)."""
        target = self._dns.get(number)
        if (
            target is not None
            and target.agent is not None
            and target.agent.state is AgentState.READY
        ):
            self._ready_seq += 1
            target.agent = replace(target.agent, ready_since=self._ready_seq)
            self._dn_changed(number)

    def _on_held(self, event: EventHeld) -> None:
        call = self._calls.get(event.conn_id)
        if call is not None and event.dn in call.parties and event.dn not in call.held:
            call.held.append(event.dn)

    def _on_retrieved(self, event: EventRetrieved) -> None:
        call = self._calls.get(event.conn_id)
        if call is not None and event.dn in call.held:
            call.held.remove(event.dn)

    def _on_party_added(self, event: EventPartyAdded) -> None:
        call = self._calls.get(event.conn_id)
        if call is not None and event.other_dn is not None and event.other_dn not in call.parties:
            call.parties.append(event.other_dn)
            self._given_call(event.other_dn)

    def _on_party_deleted(self, event: EventPartyDeleted) -> None:
        call = self._calls.get(event.conn_id)
        if call is not None and event.other_dn is not None:
            self._leave(event.conn_id, call, event.other_dn)

    def _on_attached_data_changed(self, event: EventAttachedDataChanged) -> None:
        call = self._calls.get(event.conn_id)
        if call is not None:
            call.user_data = event.user_data

    def _on_queued(self, event: EventQueued) -> None:
        call = self._calls.get(event.conn_id)
        if call is None:
            call = self._calls[event.conn_id] = CallRecord(event)
            call.network = call.queued = True

    def _on_route_request(self, event: EventRouteRequest) -> None:
        call = self._calls.get(event.conn_id)
        if call is None:  # a Network call presented at once (CallControlMode='Genesys')
            call = self._calls[event.conn_id] = CallRecord(event)
            call.network = True
        call.routing_point, call.treatment = event.dn, None

    def _on_apply_treatment(self, event: RequestApplyTreatment) -> None:
        call = self._calls.get(event.conn_id)
        if call is not None:
            call.treatment = event.treatment_type

    def _on_treatment_over(self, event: CallEvent) -> None:
        call = self._calls.get(event.conn_id)
        if call is not None:
            call.treatment = None

    def _on_route_call(self, event: RequestRouteCall) -> None:
        if event.dest is not None:
            self._given_call(event.dest)
        call = self._calls.get(event.conn_id)
        if call is not None and call.network:
            call.routing_point, call.treatment = None, None
            call.routed, call.routed_to = True, event.dest

    def _on_diverted(self, event: EventDiverted) -> None:
        call = self._calls.get(event.conn_id)
        if call is not None:
            call.queued = False

    def _on_route_used(self, event: EventRouteUsed) -> None:
        call = self._calls.get(event.conn_id)
        if call is not None:
            call.routing_point, call.treatment = None, None
            if call.routed:
                call.connected, call.routed, call.routed_to = True, False, None

    def _on_error(self, event: EventError) -> None:
        if event.conn_id is None or event.request != "TRouteCall" or event.dn is None:
            return
        call = self._calls.get(event.conn_id)
        if call is not None:
            call.routing_point, call.treatment = event.dn, None
            call.routed, call.routed_to = False, None

    def _on_released(self, event: EventReleased) -> None:
        call = self._calls.get(event.conn_id)
        if call is None:
            return
        # as _leave, inline: every call's end passes here
        if event.dn in call.parties:
            call.parties.remove(event.dn)
        if call.held and event.dn in call.held:
            call.held.remove(event.dn)
        if not call.parties:
            del self._calls[event.conn_id]

    def _leave(self, conn_id: str, call: CallRecord, number: str) -> None:
        """DN ``number`` left the call; a call whose last party left is gone."""
        if number in call.parties:
            call.parties.remove(number)
        if call.held and number in call.held:
            call.held.remove(number)
        if not call.parties:
            del self._calls[conn_id]

    def _on_abandoned(self, event: EventAbandoned) -> None:
        self._calls.pop(event.conn_id, None)


_APPLY: Final[Mapping[type[SwitchEvent], Callable[[SwitchView, Any], None]]] = {
    EventLinkConnected: SwitchView._on_link_connected,
    EventLinkDisconnected: SwitchView._on_link_disconnected,
    EventRegistered: SwitchView._on_registered,
    EventUnregistered: SwitchView._on_unregistered,
    EventDNBackInService: SwitchView._on_in_service,
    EventDNOutOfService: SwitchView._on_out_of_service,
    EventAgentLogin: SwitchView._on_agent_login,
    EventAgentReady: SwitchView._on_agent_ready,
    EventAgentNotReady: SwitchView._on_agent_not_ready,
    EventAgentLogout: SwitchView._on_agent_logout,
    EventRinging: SwitchView._on_call_joined,
    EventEstablished: SwitchView._on_call_joined,
    EventDialing: SwitchView._on_call_joined,
    EventAttachedDataChanged: SwitchView._on_attached_data_changed,
    EventQueued: SwitchView._on_queued,
    EventRouteRequest: SwitchView._on_route_request,
    RequestApplyTreatment: SwitchView._on_apply_treatment,
    EventTreatmentNotApplied: SwitchView._on_treatment_over,
    EventTreatmentEnd: SwitchView._on_treatment_over,
    RequestRouteCall: SwitchView._on_route_call,
    EventDiverted: SwitchView._on_diverted,
    EventRouteUsed: SwitchView._on_route_used,
    EventError: SwitchView._on_error,
    EventReleased: SwitchView._on_released,
    EventAbandoned: SwitchView._on_abandoned,
    EventHeld: SwitchView._on_held,
    EventRetrieved: SwitchView._on_retrieved,
    EventPartyAdded: SwitchView._on_party_added,
    EventPartyDeleted: SwitchView._on_party_deleted,
}
"""Event type → what it does to the view; an event type missing here changes nothing."""
