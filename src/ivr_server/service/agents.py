"""Agent control on IVR ports: AgentQuery, AgentLogin, AgentLogout, AgentReady, AgentNotReady,
and the agents a LegacyMode IVR's ports log in by configuration (``[AutoLogin]``).

Theory of operation. An agent request is checked (PROTOCOL.md §3.2 common rules: a 4.0 session,
on its session CallId, a usable port, not a server-controlled port for a change, the T-Server
link up) and becomes one T-Library request on the port's DN, tagged with an :class:`Origin`. Its
answer comes back as switch events: ``EventAddressInfo`` becomes the ``MonitorInfo Agent`` of an
``AgentQuery``; the agent events of a change are told by monitoring (monitoring.py), the asking
session's on its request's CallId with its ``ReqId``; an ``EventError`` becomes ``CallError
FailedReq='AgentControl'`` with the T-Library error code.

Active nodes (``[ha] mode = "active"``, issue 25): a DN whose agent another node holds is that
node's to serve. An ``AgentQuery`` there is answered from the mirror of the other nodes' facts
(peers_state.py); a control request is forwarded to the owner (:meth:`AgentControl._elsewhere`
hands an :class:`~ivr_server.service.peers_state.AgentAsk` to the runtime) and its answer,
:meth:`AgentControl.forwarded`, becomes what this node's own switch would have made of it: a
``MonitorInfo Agent`` per status with the ``ReqId`` to the asking session and without it to the
port's IVR's other 4.0 sessions here, or the ``CallError`` of the owner's refusal (57 when the
owner did not answer in time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from ivr_server.calls.replies import LINK_DOWN, Refusal, invalid_request
from ivr_server.service.bus import Origin, SwitchEventBus
from ivr_server.service.context import ServiceContext
from ivr_server.service.monitoring import EXPECT_POLLS, AgentStatusName
from ivr_server.service.peers_state import AgentAnswer, AgentAsk, PeerState
from ivr_server.service.sessions import Session
from ivr_server.switch import (
    AgentStatus,
    EventAddressInfo,
    EventError,
    EventLinkConnected,
    Switch,
    SwitchRequest,
    TAgentLogin,
    TAgentLogout,
    TAgentSetNotReady,
    TAgentSetReady,
    TQueryAddress,
    WorkMode,
)
from ivr_server.wire import messages as m

__all__ = ["AgentControl"]

log = logging.getLogger("ivr_server.service")

_AGENT_STATUS_OF_QUERY: Final[dict[AgentStatus, AgentStatusName]] = {
    AgentStatus.UNKNOWN: "Unknown",
    AgentStatus.LOGGED_OUT: "Unknown",  # sic: the guide's Table 16
    AgentStatus.LOGGED_IN: "LoggedIn",
    AgentStatus.READY: "Ready",
    AgentStatus.NOT_READY: "NotReady",
    AgentStatus.ACW: "NotReady",
    AgentStatus.WALK_AWAY: "NotReady",
}
"""EventAddressInfo ``AgentStatus`` -> ``Agent/@Status`` (XMLG p.69 Table 16)."""


_ACTS: Final[dict[type, str]] = {
    m.AgentLogin: "login",
    m.AgentLogout: "logout",
    m.AgentReady: "ready",
    m.AgentNotReady: "not-ready",
}
"""IVR agent control request -> the API's agent act its owner node serves it with
(``POST /api/v1/agents/{switch}/{dn}/<act>``)."""


def _act_body(msg: Any) -> dict[str, str | None]:
    """The API act's body of an IVR agent control request: the T-Library request's attributes
    exactly as :meth:`AgentControl._request` builds them here."""
    if isinstance(msg, m.AgentLogin):
        return {"agent_id": msg.AgentId, "queue": msg.Queue, "password": msg.Password}
    if isinstance(msg, m.AgentLogout):
        return {"queue": msg.Queue or None}
    return {"queue": msg.Queue, "work_mode": WorkMode(msg.WorkMode).value}


class AgentControl:
    """The agent requests of IVRs, and the server's own auto-login (see the module docstring)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._links_up = False
        """A switch's link came up since :meth:`take_links_up` last looked."""

    def subscribe(self, bus: SwitchEventBus) -> None:
        bus.subscribe(EventAddressInfo, self._on_address_info)
        bus.subscribe(EventError, self._on_error)
        bus.subscribe(EventLinkConnected, self._on_link_connected)

    def _on_link_connected(self, switch: Switch, event: Any, origin: Origin | None) -> bool:
        self._links_up = True
        return False  # monitoring tells the sessions

    def take_links_up(self) -> bool:
        """Whether a switch's link came up since the last call (the LegacyMode agents of its
        ports are then logged in: :meth:`auto_login`)."""
        up, self._links_up = self._links_up, False
        return up

    # ------------------------------------------------------------------ requests

    def _target(
        self, session: Session, call_id: str | None, msg: Any, control: bool
    ) -> tuple[Switch, str, str]:
        """Check an agent request (PROTOCOL.md §3.2 common rules) -> (switch, DN, CallId)."""
        ctx = self.ctx
        login = session.login
        req_id: str = msg.ReqId
        if (
            login is None
            or not login.known_client
            or login.version != "4.0"
            or call_id != login.call_id
        ):
            raise invalid_request(call_id, f"{msg.tag} outside a 4.0 session CallId", req_id)
        ivr = ctx.config.ivr(login.client_name)
        port = ivr.port(msg.PortNum) if ivr is not None else None
        target = ctx.config.port_dn(ivr, port) if ivr is not None and port is not None else None
        if ivr is None or port is None or target is None or not ctx.port_usable(ivr, port):
            raise Refusal(
                call_id,
                m.CallError(FailedReq="AgentControl", TlibErrCode="INVALID_REQ", ReqId=req_id),
                f"{msg.tag}: no usable port {msg.PortNum!r}",
            )
        if control and ivr.legacy_mode:
            raise Refusal(
                call_id,
                m.CallError(FailedReq="NotAllowed", ReqId=req_id),
                f"{msg.tag}: agents of {ivr.name!r} are server-controlled (LegacyMode)",
            )
        switch = ctx.switches[target[0].name]
        if not switch.view.link_up:
            raise Refusal(
                call_id,
                m.CallError(FailedReq="AgentControl", TlibErrCode=LINK_DOWN, ReqId=req_id),
                f"{msg.tag}: T-Server link down",
            )
        return switch, target[1].number, call_id

    def _request(
        self,
        session: Session,
        call_id: str | None,
        msg: Any,
        control: bool,
        build: Callable[[int, str], SwitchRequest],
    ) -> None:
        switch, dn, cid = self._target(session, call_id, msg, control)
        peers = self.ctx.peers
        if peers is not None and self._elsewhere(peers, session, switch, dn, cid, msg, control):
            return
        origin = Origin(self.ctx.refs(), session, cid, msg.ReqId, msg.PortNum)
        self.ctx.bus.expect(origin)  # a premise switch answers in a later pump
        switch.request(build(origin.ref, dn))
        self.ctx.pump(origin)

    def _elsewhere(
        self,
        peers: PeerState,
        session: Session,
        switch: Switch,
        dn: str,
        call_id: str,
        msg: Any,
        control: bool,
    ) -> bool:
        """Active mode (issue 25, peers_state.py): a DN this node's switch has no agent on, whose
        agent logged in through another node: an ``AgentQuery`` is answered with that agent's
        state (``True``: answered); a control request is refused (that node serves it), as is
        an ``AgentLogin`` of an agent id logged in through another node."""
        snapshot = switch.view.dn(dn)
        if snapshot is not None and snapshot.agent is not None:
            return False  # the agent is this node's: its switch answers
        if not control:
            answer = peers.query_answer(switch.name, dn, msg.PortNum, msg.ReqId)
            if answer is None:
                return False
            self.ctx.send(session, call_id, answer)
            return True
        owner = peers.agent(switch.name, dn)
        forward = peers.forward
        if owner is not None and forward is not None:
            api = peers.api_of(owner[0])
            act = _ACTS.get(type(msg))
            if api and act is not None:
                ivr = session.ivr_name or ""
                forward(
                    AgentAsk(
                        node=owner[0],
                        api=api,
                        switch=switch.name,
                        dn=dn,
                        act=act,
                        body=_act_body(msg),
                        session=session,
                        call_id=call_id,
                        req_id=msg.ReqId,
                        port=msg.PortNum,
                        ivr=ivr,
                        request=msg.tag,
                    )
                )
                return True
        agent_id = msg.AgentId if isinstance(msg, m.AgentLogin) else None
        peers.check_control(call_id, switch.name, dn, agent_id, msg.tag, msg.ReqId)
        return False

    def forwarded(self, ask: AgentAsk, answer: AgentAnswer) -> None:
        """The owner's answer to a forwarded agent request (see the module docstring): to the
        asking session if it is still here, as this node's switch's events would have been."""
        ctx = self.ctx
        session = ask.session
        if ctx.sessions.get(session.id) is not session:
            log.info(
                "%s on DN %s answered by node %s after its session %d closed",
                ask.request,
                ask.dn,
                ask.node,
                session.id,
            )
            return
        if answer.error is not None:
            if answer.reason:
                log.warning(
                    "%s on DN %s forwarded to node %s: %s (TlibErrCode %d)",
                    ask.request,
                    ask.dn,
                    ask.node,
                    answer.reason,
                    answer.error,
                )
            ctx.send(
                session,
                ask.call_id,
                m.CallError(
                    FailedReq="AgentControl", TlibErrCode=str(answer.error), ReqId=ask.req_id
                ),
            )
            return
        peers = ctx.peers
        if peers is not None and peers.told is not None and answer.statuses:
            key = (ask.switch, ask.dn)  # told here now: the facts' diff must not tell it again
            last = answer.statuses[-1]
            if last == "LoggedOut":
                peers.told.pop(key, None)
            else:
                peers.told[key] = last
            window = max(1.0, EXPECT_POLLS * float(ctx.config.ha.poll))
            peers.expected[key] = (None if last == "LoggedOut" else last, ctx.now + window)
        others = [s for s in ctx.v4_sessions(ask.ivr) if s is not session]
        for status in answer.statuses:
            ctx.send(
                session,
                ask.call_id,
                m.MonitorInfo(ReqId=ask.req_id, Agent=m.Agent(PortNum=ask.port, Status=status)),
            )
            for other in others:
                assert other.login is not None
                ctx.send(
                    other,
                    other.login.call_id,
                    m.MonitorInfo(Agent=m.Agent(PortNum=ask.port, Status=status)),
                )

    def on_agent_query(self, session: Session, call_id: str | None, msg: m.AgentQuery) -> None:
        self._request(
            session, call_id, msg, False, lambda ref, dn: TQueryAddress(reference_id=ref, dn=dn)
        )

    def on_agent_login(self, session: Session, call_id: str | None, msg: m.AgentLogin) -> None:
        self._request(
            session,
            call_id,
            msg,
            True,
            lambda ref, dn: TAgentLogin(
                reference_id=ref,
                dn=dn,
                queue=msg.Queue,
                agent_id=msg.AgentId,
                password=msg.Password,
            ),
        )

    def on_agent_logout(self, session: Session, call_id: str | None, msg: m.AgentLogout) -> None:
        self._request(
            session,
            call_id,
            msg,
            True,
            lambda ref, dn: TAgentLogout(reference_id=ref, dn=dn, queue=msg.Queue or None),
        )

    def on_agent_ready(self, session: Session, call_id: str | None, msg: m.AgentReady) -> None:
        self._request(
            session,
            call_id,
            msg,
            True,
            lambda ref, dn: TAgentSetReady(
                reference_id=ref, dn=dn, queue=msg.Queue, work_mode=WorkMode(msg.WorkMode)
            ),
        )

    def on_agent_not_ready(
        self, session: Session, call_id: str | None, msg: m.AgentNotReady
    ) -> None:
        self._request(
            session,
            call_id,
            msg,
            True,
            lambda ref, dn: TAgentSetNotReady(
                reference_id=ref, dn=dn, queue=msg.Queue, work_mode=WorkMode(msg.WorkMode)
            ),
        )

    # ------------------------------------------------------------------ answers

    def _on_address_info(
        self, switch: Switch, event: EventAddressInfo, origin: Origin | None
    ) -> bool:
        if origin is not None and event.reference_id == origin.ref:
            self.ctx.send(
                origin.session,
                origin.call_id,
                m.MonitorInfo(
                    ReqId=origin.req_id,
                    Agent=m.Agent(
                        PortNum=origin.port,
                        Status=_AGENT_STATUS_OF_QUERY.get(event.agent_status, "Unknown"),
                    ),
                ),
            )
        return True

    def _on_error(self, switch: Switch, event: EventError, origin: Origin | None) -> bool:
        """A failed request that no call awaited: the asking session's, or logged."""
        if origin is not None and event.reference_id == origin.ref:
            self.ctx.send(
                origin.session,
                origin.call_id,
                m.CallError(
                    FailedReq="AgentControl",
                    TlibErrCode=str(int(event.error_code)),
                    ReqId=origin.req_id,
                ),
            )
        else:
            log.warning(
                "switch %s: %s on %s: %s (%d)",
                event.switch,
                event.request,
                event.dn,
                event.error_message,
                event.error_code,
            )
        return True

    # ------------------------------------------------------------------ LegacyMode

    def auto_login(self) -> None:
        """LegacyMode IVRs: log in the agents of their ports' [AutoLogin] settings."""
        ctx = self.ctx
        config = ctx.config
        for ivr in config.ivrs:
            if not ivr.legacy_mode:
                continue
            for port in ivr.ports:
                auto = port.auto_login
                target = config.port_dn(ivr, port)
                if target is None:
                    continue
                switch = ctx.switches.get(target[0].name)
                if switch is None or not switch.view.link_up:
                    continue
                snapshot = switch.view.dn(target[1].number)
                agent = snapshot.agent if snapshot is not None else None
                usable = ctx.port_usable(ivr, port)
                if auto is None or not auto.set_logged_in or not usable:
                    if agent is not None and agent.agent_id is not None and not usable:
                        switch.request(
                            TAgentLogout(reference_id=ctx.refs(), dn=target[1].number, queue=None)
                        )
                    continue
                if agent is None or agent.agent_id is None:
                    switch.request(
                        TAgentLogin(
                            reference_id=ctx.refs(),
                            dn=target[1].number,
                            queue=auto.queue,
                            agent_id=auto.agent_id,
                            password=auto.password,
                            work_mode=WorkMode.AUTO_IN if auto.set_ready else WorkMode.UNKNOWN,
                        )
                    )
        ctx.pump()
