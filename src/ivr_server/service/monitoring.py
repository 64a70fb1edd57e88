"""Monitoring: ``MonitorInfo`` Server, Port and Agent to the sessions that must see them.

Theory of operation. Monitoring is derived, never remembered as deltas: the T-Server statuses a
monitoring session was last told (``Session.servers_reported``) and the availability of every
port (:attr:`Monitoring.ports_reported`) are compared with the current state after anything that
can change them (link and registration events, reload, a stop), and only differences are sent
(:meth:`Monitoring.report_topology`). Agent events of a port's DN go to every 4.0 session of the
port's IVR; the session whose request caused one gets it on its request's CallId with its
``ReqId`` (PROTOCOL.md §3.2.1).

Active nodes (``[ha] mode = "active"``, issue 25): the agents another node holds change on that
node's switch, not here. :meth:`Monitoring.report_peer_agents` compares the other nodes' agents,
as their facts say after each poll (``service/peers_state.py``), with what this node's sessions
were last told of them (``PeerState.told``) and tells the differences as the agent events would
have been told: a new agent ``LoggedIn`` then its state, a gone one ``LoggedOut``, a change its
new state. A DN whose agent is this node's own is told by its own switch's events. What happened
within one poll is told as its outcome (Ready, NotReady and Ready again in 0.1 s: nothing). A
forwarded agent request's answer was told already (agents.py): facts that disagree with it are
taken as older than it (``PeerState.expected``), not told, for :data:`EXPECT_POLLS` polls (at
least a second), until the facts agree. The agents of a node gone from the mirror (dead: a
survivor adopts them) are not told ``LoggedOut`` while they may come back in the adopter's facts
(a lease and :data:`EXPECT_POLLS` polls, at least a second, more): back as they were, nothing is
told.
"""

from __future__ import annotations

from typing import Any, Final

from ivr_server.config import IvrConfig
from ivr_server.service.bus import Origin, SwitchEventBus
from ivr_server.service.context import ServiceContext
from ivr_server.service.ports import PortKey
from ivr_server.service.sessions import Session
from ivr_server.switch import (
    EventAgentLogin,
    EventAgentLogout,
    EventAgentNotReady,
    EventAgentReady,
    EventLinkConnected,
    EventLinkDisconnected,
    EventRegistered,
    EventUnregistered,
    Switch,
    SwitchEvent,
)
from ivr_server.vocabulary import AgentStatusName, LinkStatus
from ivr_server.wire import messages as m

__all__ = ["AGENT_STATUS_OF_EVENT", "AgentStatusName", "LinkStatus", "Monitoring"]


AGENT_STATUS_OF_EVENT: Final[dict[type[SwitchEvent], AgentStatusName]] = {
    EventAgentLogin: "LoggedIn",
    EventAgentLogout: "LoggedOut",
    EventAgentReady: "Ready",
    EventAgentNotReady: "NotReady",
}
"""T-Library agent event -> ``Agent/@Status`` (PROTOCOL.md §3.2.1, XMLG p.68 Table 14)."""

EXPECT_POLLS: Final = 4
"""How many ``[ha] poll`` periods facts older than a forwarded answer are ignored (their
staleness: two polls and a round trip)."""

_TOPOLOGY_EVENTS: tuple[type[SwitchEvent], ...] = (
    EventLinkConnected,
    EventLinkDisconnected,
    EventRegistered,
    EventUnregistered,
)
"""Events that may change a T-Server's status or a port's availability."""


class Monitoring:
    """``MonitorInfo`` to the sessions (see the module docstring)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.ports_reported: dict[PortKey, bool] = {}
        """Each port's availability as the sessions were last told."""
        self._topology_changed = False

    def subscribe(self, bus: SwitchEventBus) -> None:
        for event_type in AGENT_STATUS_OF_EVENT:
            bus.subscribe(event_type, self._on_agent_status)
        for event_type in _TOPOLOGY_EVENTS:
            bus.subscribe(event_type, self._on_topology_event)
        bus.when_quiet(self._after_events)

    def _on_agent_status(self, switch: Switch, event: Any, origin: Origin | None) -> bool:
        self.on_agent_event(switch.name, event, origin)
        return True

    def _on_topology_event(self, switch: Switch, event: Any, origin: Origin | None) -> bool:
        self._topology_changed = True
        return True

    def mark_topology_changed(self) -> None:
        """Report the topology (:meth:`report_topology`) when the switches are next quiet, once
        whatever else changes meanwhile (a reload: it is O(ports))."""
        self._topology_changed = True

    def _after_events(self) -> None:
        if self._topology_changed:
            self._topology_changed = False
            self.report_topology()

    def on_agent_event(self, switch: str, event: Any, origin: Origin | None) -> None:
        """An agent's status changed on DN ``event.dn`` of ``switch``: tell the 4.0 sessions of
        its port's IVR."""
        key = self.ctx.ports.port_of_dn.get((switch, event.dn))
        if key is None:
            return
        ivr_name, port = key
        status = AGENT_STATUS_OF_EVENT[type(event)]
        mine = origin is not None and event.reference_id == origin.ref
        send = self.ctx.send
        for session in self.ctx.v4_sessions(ivr_name):
            login = session.login
            assert login is not None
            if mine and origin is not None and session is origin.session:
                send(
                    session,
                    origin.call_id,
                    m.MonitorInfo(ReqId=origin.req_id, Agent=m.Agent(PortNum=port, Status=status)),
                )
            else:
                send(
                    session,
                    login.call_id,
                    m.MonitorInfo(Agent=m.Agent(PortNum=port, Status=status)),
                )

    def report_peer_agents(self) -> None:
        """Tell the 4.0 sessions of each port's IVR what changed in the agents other nodes hold
        on its DN (see the module docstring)."""
        peers = self.ctx.peers
        if peers is None:
            return
        now = peers.statuses()
        told = peers.told
        if told is None:
            peers.told = dict(now)
            return  # the first mirror: what the sessions' logins found, nothing changed
        clock, expected = self.ctx.now, peers.expected
        ha = self.ctx.config.ha
        for key in peers.orphaned:
            if key in told and key not in now:  # its node is gone: adopted, soon seen again
                window = float(ha.lease) + max(1.0, EXPECT_POLLS * float(ha.poll))
                expected[key] = (told[key], clock + window)
        for key in told.keys() | now.keys():
            was, status = told.get(key), now.get(key)
            if key in expected:
                answered, until = expected[key]
                if status != answered and clock < until:
                    continue  # facts older than the forwarded request's answer
                del expected[key]
            if was == status:
                continue
            if status is None:
                del told[key]
            else:
                told[key] = status
            switch, dn = key
            found = self.ctx.switches.get(switch)
            record = found.view.dn(dn) if found is not None else None
            if record is not None and record.agent is not None:
                continue  # this node's own agent there: its switch tells
            if status is None:
                self._tell_agent(switch, dn, ("LoggedOut",))
            elif was is None:
                self._tell_agent(switch, dn, ("LoggedIn", status))
            else:
                self._tell_agent(switch, dn, (status,))

    def _tell_agent(self, switch: str, dn: str, statuses: tuple[AgentStatusName, ...]) -> None:
        key = self.ctx.ports.port_of_dn.get((switch, dn))
        if key is None:
            return
        ivr_name, port = key
        for session in self.ctx.v4_sessions(ivr_name):
            login = session.login
            assert login is not None
            for status in statuses:
                self.ctx.send(
                    session,
                    login.call_id,
                    m.MonitorInfo(Agent=m.Agent(PortNum=port, Status=status)),
                )

    def port_availability(self) -> dict[PortKey, bool]:
        ctx = self.ctx
        return {
            (ivr.name, port.number): ctx.port_usable(ivr, port)
            for ivr in ctx.config.ivrs
            for port in ivr.ports
        }

    def report_topology(self) -> None:
        """Tell sessions what changed in T-Server links and port availability."""
        ctx = self.ctx
        for session in list(ctx.sessions.values()):
            self.report_servers(session)
        now = self.port_availability()
        before = self.ports_reported
        for key in before.keys() | now.keys():
            was, is_now = before.get(key, False), now.get(key, False)
            if was == is_now or (key not in before and not is_now):
                continue
            ivr_name, port = key
            status: LinkStatus = "OK" if is_now else "Unavailable"
            for session in ctx.v4_sessions(ivr_name):
                assert session.login is not None
                ctx.send(
                    session,
                    session.login.call_id,
                    m.MonitorInfo(Port=m.Port(PortNum=port, Status=status)),
                )
        self.ports_reported = now

    def _server_statuses(self, ivr: IvrConfig | None) -> dict[str, tuple[LinkStatus, str | None]]:
        if ivr is None:
            return {}
        ctx = self.ctx
        out: dict[str, tuple[LinkStatus, str | None]] = {}
        for name in ivr.tservers:
            tserver = ctx.config.tserver(name)
            out[name] = (
                "OK" if ctx.tserver_up(name) and not ctx.stopping else "Unavailable",
                tserver.switch if tserver is not None else None,
            )
        return out

    def report_servers(self, session: Session) -> None:
        """Send MonitorInfo/Server for every T-Server whose status the session has not seen."""
        login = session.login
        if login is None or not login.monitor:
            return
        send = self.ctx.send
        now = self._server_statuses(self.ctx.config.ivr(login.client_name))
        for name in list(session.servers_reported):
            # no longer relevant: its last word is Unavailable
            if name not in now and session.servers_reported.pop(name) != "Unavailable":
                send(
                    session,
                    login.call_id,
                    m.MonitorInfo(Server=m.Server(Name=name, Status="Unavailable")),
                )
        for name, (status, switch) in now.items():
            if session.servers_reported.get(name) != status:
                session.servers_reported[name] = status
                send(
                    session,
                    login.call_id,
                    m.MonitorInfo(Server=m.Server(Name=name, Status=status, Switch=switch)),
                )
