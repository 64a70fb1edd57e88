"""The IVR service: what the server does with each IVR message, with no I/O at all.

Theory of operation. The runtime owns sockets and the clock; it hands this core every decoded
document (:meth:`IvrService.handle`) and every rejected one (:meth:`IvrService.handle_rejected`).
Handlers are found in one table keyed by message class (no if/elif ladder on tags), each in the
file of its family: login.py (sessions, login, LogMsg, FlowControl), agents.py (agent control on
IVR ports), admission.py (new calls), statistics.py, dialout.py; the requests about an existing
call go to the call manager (``ivr_server.calls``). The families share one
:class:`~ivr_server.service.context.ServiceContext`. A handler either queues replies on session
links or raises :class:`~ivr_server.calls.replies.Refusal`, which :meth:`IvrService.handle` turns
into its reply - the one place where errors become answers (and where refusals are counted and
logged by cause). Requests to a switch are answered by switch events: after every request the
switches are drained through the event bus (bus.py) to their subscribers: call events to the call
manager, agent and link events to monitoring (monitoring.py, ``MonitorInfo``), the answers to an
agent request to agent control. After each call into the core, the runtime writes out the
sessions returned by :meth:`IvrService.take_dirty`.

High availability (issue 25): :meth:`IvrService.set_role` makes the node a ``leader`` or a
``standby`` (standby.py: driver streams, the standby's journal, the leader's marks, the replay at
takeover); until then the role is ``single`` and :meth:`IvrService.handle` pays one ``None``
check for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from ivr_server.calls import CallManager, CallSettings, DeferPolicy
from ivr_server.calls.replies import (
    Refusal,
    answer_for_rejected,
    before_login,
    internal_error,
    invalid_request,
)
from ivr_server.calls.timeline import TimelineLimits
from ivr_server.config import IvrConfig, PortConfig, ServerConfig
from ivr_server.memory import release_free_memory
from ivr_server.metrics import Metrics
from ivr_server.outbound import DialOutManager, DialOutOutcome, DialOutRequest
from ivr_server.routing import BuiltinRouter, Router, build_routers
from ivr_server.service.access_numbers import AccessNumberService
from ivr_server.service.admission import Admission
from ivr_server.service.agents import AgentControl
from ivr_server.service.bus import SwitchEventBus
from ivr_server.service.context import ServiceContext, log_ctx
from ivr_server.service.dialout import DialOut
from ivr_server.service.echo import ECHOED, check_echoed
from ivr_server.service.login import Sessions
from ivr_server.service.monitoring import Monitoring
from ivr_server.service.peers_state import AgentAnswer, AgentAsk
from ivr_server.service.ports import PortIndex
from ivr_server.service.refusals import RefusalLog
from ivr_server.service.reload import (
    PreparedReload,
    ReloadRefused,
    ReloadReport,
    describe_changes,
    stranded_calls,
)
from ivr_server.service.sessions import Session
from ivr_server.service.standby import (
    JOURNAL_LIMIT,
    ROLES,
    HotStandby,
    JournalCounters,
    Role,
)
from ivr_server.service.statistics import Statistics
from ivr_server.service.switches import apply_switches, rebuilt_switches
from ivr_server.session import IvrLink
from ivr_server.stats import StatsEngine
from ivr_server.switch import Switch, SwitchEvent, TCallerHangUp, TCloseLink, TOpenLink
from ivr_server.throttle import LogThrottle
from ivr_server.timers import earliest
from ivr_server.wire import DecodeError, KvList, Message, forget_memos
from ivr_server.wire import messages as m
from ivr_server.wire.limits import ECHO_ALWAYS_FITS

__all__ = ["IvrService", "ReloadReport"]

log = logging.getLogger("ivr_server.service")

_COLLECT_BELOW: Final = 1000
"""A compaction with fewer calls in progress than this also runs a full garbage collection
(``release_free_memory(collect=True)``): about 1-2 ms then, where with 50,000 calls it would
stop them all for 40 ms."""

_SERVER_TO_IVR: Final = frozenset(
    tag for tag, spec in m.SPECS.items() if getattr(spec.cls, "direction", None) == "server->ivr"
)
"""Messages only the server sends: received from an IVR they are invalid (PROTOCOL.md §9.4.2)."""

_CALL_REQUESTS: Final = frozenset(
    tag
    for tag, spec in m.SPECS.items()
    if getattr(spec.cls, "call_id_kind", None) == "call"
    and getattr(spec.cls, "direction", None) in ("ivr->server", "both")
) - {"NewCall", "MakeCall", "DialOutInit", "LogMsg", "Reset"}
"""Requests about an existing call, for the call manager."""


class IvrService:
    """The sans-IO core of the IVR Server. See the module docstring."""

    def __init__(self, config: ServerConfig, *, id_seed: int = 0) -> None:
        ctx = self._ctx = ServiceContext(config, id_seed)
        self._refusals = RefusalLog(ctx.metrics)
        self._dial_out = DialOut(ctx)
        ctx.outbound = DialOutManager(self._dial_out.report)
        ctx.calls = CallManager(
            _call_settings(config), ctx.send_to_owner, ctx.metrics, self._dial_out.report_from_call
        )
        ctx.routers = build_routers(config, ctx.router_refs)
        self._monitoring = Monitoring(ctx)
        apply_switches(ctx, config, self._monitoring)
        ctx.ports = PortIndex.build(config, ctx.switches)
        self._statistics = Statistics(ctx)
        ctx.stats = StatsEngine(
            config,
            ctx.switches,
            self._statistics.calls_of_ivr,
            waiting_for_queue=self._statistics.waiting_for_queue,
        )
        self._access_numbers = AccessNumberService(ctx)
        bus = ctx.bus = SwitchEventBus(ctx.switches, ctx.listeners, ctx.stats)
        self._sessions = Sessions(ctx, self._monitoring)
        self._agents = AgentControl(ctx)
        self._admission = Admission(ctx)
        self._admission.subscribe(bus)  # first: a failed request of a call is the call's
        self._agents.subscribe(bus)
        self._monitoring.subscribe(bus)
        bus.when_quiet(self._compact_if_due)
        self._handlers: dict[type[Message], Callable[[Session, str | None, Any], None]] = {
            m.LoginReq: self._sessions.on_login_req,
            m.LogMsg: self._sessions.on_log_msg,
            m.Reset: self._sessions.on_reset,
            m.AgentQuery: self._agents.on_agent_query,
            m.AgentLogin: self._agents.on_agent_login,
            m.AgentLogout: self._agents.on_agent_logout,
            m.AgentReady: self._agents.on_agent_ready,
            m.AgentNotReady: self._agents.on_agent_not_ready,
            m.DialOutRegistry: self._dial_out.on_dial_out_registry,
            m.DialOutError: self._dial_out.on_dial_out_error,
            m.NewCall: self._admission.on_new_call,
            m.MakeCall: self._admission.on_make_call,
            m.DialOutInit: self._admission.on_dial_out_init,
            m.PeekStatReq: self._statistics.on_stat,
            m.GetStatReq: self._statistics.on_stat,
            m.CallStatus: self._admission.on_ivr_call_status,
        }
        self._monitoring.ports_reported = self._monitoring.port_availability()
        self._ha: HotStandby | None = None
        """High availability's side of the service (standby.py); ``None`` in the ``single``
        role (``[ha] mode = "off"``): then nothing of it runs."""
        ctx.pump()
        self._agents.auto_login()

    # ------------------------------------------------------------------ the shared state

    @property
    def refusal_log(self) -> LogThrottle[tuple[str, str]]:
        """Refusals by (request, cause): the first logged at INFO, then one summary line per
        cause per ``interval``; each at DEBUG (refusals.py)."""
        return self._refusals.throttle

    @property
    def config(self) -> ServerConfig:
        return self._ctx.config

    @property
    def now(self) -> float:
        """The clock as of the latest input (the runtime passes it in; this core never reads it)."""
        return self._ctx.now

    @now.setter
    def now(self, now: float) -> None:
        self._ctx.now = now

    @property
    def metrics(self) -> Metrics:
        """What the server counted (exported by the API's /metrics)."""
        return self._ctx.metrics

    @property
    def listeners(self) -> list[Callable[[str, SwitchEvent], None]]:
        """Called with (switch name, event) for every switch event (the API's event stream);
        empty when nobody listens, which costs nothing."""
        return self._ctx.listeners

    @property
    def calls(self) -> CallManager:
        return self._ctx.calls

    @property
    def routers(self) -> Mapping[str, Router]:
        """Switch name -> the router serving its routing points."""
        return self._ctx.routers

    @routers.setter
    def routers(self, routers: Mapping[str, Router]) -> None:
        self._ctx.routers = routers

    @property
    def flow_control(self) -> bool:
        return self._ctx.flow_control

    @property
    def stopping(self) -> bool:
        """The server is stopping (:meth:`begin_stop`): no new call, T-Servers reported
        ``Unavailable``."""
        return self._ctx.stopping

    @property
    def switches(self) -> dict[str, Switch]:
        return self._ctx.switches

    @property
    def sessions(self) -> dict[int, Session]:
        return self._ctx.sessions

    @property
    def outbound(self) -> DialOutManager:
        """DialOut registrations and predictive-call requests (PROTOCOL.md §3.10)."""
        return self._ctx.outbound

    @property
    def access_numbers(self) -> AccessNumberService:
        """The access numbers of ``AccessNumGet`` (DNIS pools, peers; docs/access-numbers.md)."""
        return self._access_numbers

    @property
    def stats(self) -> StatsEngine:
        """The built-in statistics engine (PeekStatReq/GetStatReq, the API)."""
        return self._ctx.stats

    # ------------------------------------------------------------------ sessions

    def open_session(self, peer: str, link: IvrLink, now: float) -> Session:
        """Register a new connection."""
        return self._sessions.open(peer, link, now)

    def close_session(self, session: Session, reason: str, now: float | None = None) -> None:
        """Forget a connection. Its registrations go with it; its calls stay, passed to another
        session of the same IVR or kept for ``orphan-call-timeout`` (DECISIONS.md)."""
        if now is not None:
            self._ctx.now = now
        self._sessions.close(session, reason)
        self._ctx.bus.forget(session)
        if self._ha is not None:
            self._ha.closed(session)

    def take_dirty(self) -> list[Session]:
        """Sessions with data queued since the last call; the runtime writes them out."""
        ctx = self._ctx
        if ctx.unsent:  # documents of timers or operator actions that could not be sent
            ctx.log_unsent(ctx.take_unsent())
        if not ctx.dirty:
            return []
        dirty = list(ctx.dirty)
        ctx.dirty.clear()
        return dirty

    # ------------------------------------------------------------------ dispatch

    def handle(
        self, session: Session, call_id: str | None, message: Message, now: float | None = None
    ) -> None:
        """Carry out one document received on ``session`` at time ``now``."""
        ctx = self._ctx
        if now is not None:
            ctx.now = now
        session.documents_in += 1
        ctx.metrics.messages_in[message.tag] += 1
        ha = self._ha
        if ha is None:
            self._dispatch(session, call_id, message)
        elif not ha.intercepts(session, call_id, message):  # a standby keeps it (standby.py)
            self._dispatch(session, call_id, message)
            if type(message) is m.LoginReq:
                ha.logged_in(session)

    def _dispatch(self, session: Session, call_id: str | None, message: Message) -> None:
        """Carry out one document (counted already): :meth:`handle`, and a takeover's replay."""
        ctx = self._ctx
        handler = self._handlers.get(type(message))
        failed = False
        try:
            echoed = ECHOED.get(message.tag)
            if echoed is not None or (call_id is not None and len(call_id) > ECHO_ALWAYS_FITS):
                check_echoed(call_id, message, echoed)
            if handler is not None:
                handler(session, call_id, message)
            elif message.tag in _CALL_REQUESTS:
                login = session.login
                if login is not None and login.known_client:
                    ivr = login.client_name
                elif ctx.calls.owns_network_call(session, call_id):
                    ivr = ""  # a login-less session's own Network call (G23)
                else:
                    raise before_login(call_id, message)
                ctx.calls.handle(session, ivr, call_id, message, ctx.now)
                ctx.pump()
            else:
                self._on_other(session, call_id, message)
        except Refusal as refusal:
            self._refusals.refused(session, call_id, message.tag, refusal, ctx.now)
            if refusal.reply is not None:
                ctx.send(session, refusal.call_id, refusal.reply)
            ctx.pump()
        except Exception:  # a bug of ours: answered, logged, and nobody else is affected
            log.exception(
                "session %d: internal error handling %s",
                session.id,
                message.tag,
                extra=log_ctx(session, call_id),
            )
            ctx.metrics.errors["internal"] += 1
            failed = True
        if failed or ctx.unsent:
            self._answer_failure(session, call_id, message, failed)

    def _answer_failure(
        self, session: Session, call_id: str | None, message: Message, failed: bool
    ) -> None:
        """After handling ``message`` failed, or some document it caused could not be sent: the
        request gets a small error answer in place of the one lost (``internal_error``: its own
        error form, identifiers cut to fit), and what was not sent is logged in one line."""
        ctx = self._ctx
        if failed or any(entry[0] is session for entry in ctx.unsent):
            answer = internal_error(call_id, message)
            if answer is not None and answer.reply is not None:
                ctx.send(session, answer.call_id, answer.reply)
        unsent = ctx.take_unsent()  # with the answer itself, if even that could not be sent
        removed = ctx.removed
        if removed:
            ctx.removed = []
        if unsent:
            ctx.log_unsent(unsent, session, message.tag, call_id, removed)
        elif removed:
            log.info(
                "session %d: %s: call removed again, its port is free",
                session.id,
                message.tag,
                extra=log_ctx(session, call_id),
            )

    def handle_rejected(
        self, session: Session, error: DecodeError, now: float | None = None
    ) -> None:
        """Answer a Data frame that did not decode (PROTOCOL.md §9.4.2)."""
        ctx = self._ctx
        if now is not None:
            ctx.now = now
        session.documents_in += 1
        ctx.metrics.messages_in["rejected"] += 1
        ha = self._ha
        if ha is not None and ha.intercepts_rejected(session, error):
            return  # a standby keeps it: the leader answers it (standby.py)
        self._answer_rejected(session, error)

    def _answer_rejected(self, session: Session, error: DecodeError) -> None:
        """The answer to a document that did not decode (counted already)."""
        ctx = self._ctx
        ctx.metrics.errors["rejected"] += 1
        log.warning(
            "session %d from %s: rejected document: %s",
            session.id,
            session.peer,
            error.reason,
            extra=log_ctx(session, None),
        )
        answer = answer_for_rejected(error, ctx.config.server.version_string)
        if answer is not None:
            ctx.send(session, *answer)

    def _on_other(self, session: Session, call_id: str | None, message: Message) -> None:
        if message.tag in _SERVER_TO_IVR:
            raise invalid_request(
                call_id,
                f"{message.tag} is sent by the server, not to it",
                getattr(message, "ReqId", None),
            )
        self._ctx.require_login(session, call_id, message)
        raise invalid_request(call_id, f"{message.tag} is not supported")

    # ------------------------------------------------------------------ high availability

    @property
    def role(self) -> Role:
        """``single`` (``[ha] mode = "off"``, the default), ``leader`` or ``standby``
        (standby.py; MODES-AND-HA §3.5)."""
        return "single" if self._ha is None else self._ha.role

    def set_role(self, role: Role, now: float, *, journal_limit: int = JOURNAL_LIMIT) -> None:
        """Become ``leader`` or ``standby`` (or ``single`` again), at ``now``.

        From ``single``: the logged-in sessions get their driver streams, counted from here.
        ``standby``: nothing leaves but ``LoginResp`` and ``FlowControl`` (PROTOCOL.md §8.1);
        every other document is journaled, not handled. From ``leader`` to ``standby`` (fenced:
        another node leads): the calls are dropped without a word to anyone
        (``CallManager.clear_silently``), since the new leader carries them on; the runtime closes
        the IVR sessions. From ``standby`` to ``leader``: the monitoring sessions are told the
        T-Servers' status (a standby told them nothing); the journal stays for :meth:`replay`,
        which must follow in the same turn. ``journal_limit``: the most documents a stream's
        journal keeps (taken when leaving ``single``)."""
        if role not in ROLES:
            raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
        ctx = self._ctx
        ctx.now = now
        ha = self._ha
        if role == "single":
            if ha is not None:
                ha.set_role("leader")  # unmuted
                self._ha = None
                for session in ctx.sessions.values():
                    session.stream = None
            return
        if ha is None:
            ha = self._ha = HotStandby(ctx, journal_limit)
            for session in ctx.sessions.values():
                ha.logged_in(session)
        before = ha.role
        ha.set_role(role)
        if before == role:
            return
        if role == "standby":
            if before == "leader":
                dropped = ctx.calls.clear_silently()
                log.warning("HA: no longer the leader: %d call(s) dropped without a word", dropped)
        elif before == "standby":
            for session in list(ctx.sessions.values()):
                if session.login is not None and session.login.monitor:
                    session.servers_reported = {}
                    self._monitoring.report_servers(session)
            log.info("HA: leader now: %d session(s) logged in", len(ha.streams))

    def take_marks(self) -> dict[str, int]:
        """Leader: driver stream -> index of its last document handled, for the streams that
        moved since the last call; the runtime writes them with the turn's batch (standby.py).
        Empty in the ``single`` role."""
        return self._ha.take_marks() if self._ha is not None else {}

    def trim_journal(self, marks: Mapping[str, int]) -> int:
        """Standby: forget the journaled documents the leader committed (at or below their
        stream's mark); how many."""
        return self._ha.trim(marks) if self._ha is not None else 0

    def journal_streams(self) -> dict[str, int]:
        """Standby: driver stream -> documents journaled (the streams whose marks to read)."""
        return self._ha.journal_streams() if self._ha is not None else {}

    @property
    def journal_counters(self) -> JournalCounters | None:
        """What the journals counted (journaled, trimmed, overflowed, replayed...); ``None`` in
        the ``single`` role."""
        return self._ha.counters if self._ha is not None else None

    def bind_orphans(self, now: float) -> int:
        """Takeover: give the calls without a session (restored from the store) to a live
        logged-in session of their IVR, the first one (the adopt-on-login of DECISIONS.md);
        how many. A call whose IVR has no session here waits for one, as any orphan does."""
        ctx = self._ctx
        ctx.now = now
        bound = 0
        seen: set[str] = set()
        for session in list(ctx.sessions.values()):
            ivr = session.ivr_name
            if ivr is not None and ivr not in seen:
                seen.add(ivr)
                bound += ctx.calls.adopt(ivr, session)
        return bound

    def replay(self, marks: Mapping[str, int], now: float, limit: int | None = None) -> int:
        """Takeover, after :meth:`bind_orphans`: re-handle each stream's journaled documents
        after its mark (the requests the old leader never committed), in their order of arrival,
        on their sessions, through the normal path (the answers go out); how many. The node is
        ``leader`` afterwards and its journal empty. With ``limit``, at most that many now, the
        rest by :meth:`replay_more` while :attr:`replaying`."""
        ctx = self._ctx
        ctx.now = now
        ha = self._ha
        if ha is None:
            return 0
        if ha.role != "leader":
            self.set_role("leader", now)
        return ha.replay(marks, self._dispatch, self._answer_rejected, limit)

    def answered_since(self, stream: str, call_id: str, index: int) -> bool:
        """Hot standby, at a takeover: did the driver send this node a document of
        ``call_id`` on ``stream`` after that stream's document ``index``
        (``HotStandby.received_since``)?"""
        return self._ha is not None and self._ha.received_since(stream, call_id, index)

    @property
    def replaying(self) -> bool:
        """Is a takeover's replay under way (:meth:`replay` with a limit)?"""
        return self._ha is not None and self._ha.replaying

    def replay_more(self, now: float, limit: int | None = None) -> int:
        """The next slice of a replay under way; how many documents were handled."""
        self._ctx.now = now
        ha = self._ha
        return ha.replay_more(self._dispatch, self._answer_rejected, limit) if ha else 0

    # ------------------------------------------------------------------ acts from outside

    def dial_out(
        self,
        requester: Callable[[DialOutRequest, DialOutOutcome], None] | None,
        orig_dn: str,
        dest: str,
        *,
        timeout: float | None = None,
        user_data: KvList = (),
        extensions: KvList = (),
    ) -> DialOutRequest | None:
        """A predictive call (the original's TMakePredictiveCall) on routing point ``orig_dn``:
        ``DialOut`` to the earliest session that registered it; ``None`` when none did. Each
        outcome is passed to ``requester`` (also after the call started: dialing, established,
        failed, ended)."""
        return self._dial_out.dial_out(
            requester, orig_dn, dest, timeout=timeout, user_data=user_data, extensions=extensions
        )

    def agent_answered(self, ask: AgentAsk, answer: AgentAnswer, now: float) -> None:
        """Active mode (issue 25): another node answered an agent control request forwarded to
        it (service/agents.py); the asking session gets what this node's switch would have
        sent. The caller writes the sessions out."""
        self._ctx.now = now
        self._agents.forwarded(ask, answer)

    def peers_changed(self, now: float) -> None:
        """Active mode (issue 25): the mirror of the other nodes' facts changed; the sessions
        are told what changed in their agents (monitoring.py). The caller writes them out."""
        self._ctx.now = now
        self._monitoring.report_peer_agents()

    def agent_reserved(self, switch_name: str, conn_id: str, dn: str, ok: bool, now: float) -> None:
        """Active mode (issue 25): the answer to the built-in router's reservation of the agent
        on ``dn`` for call ``conn_id`` (``routing/rules.py``, ``BuiltinRouter.reserved``): the
        call is routed to it, or to the next agent. The caller writes the sessions out."""
        ctx = self._ctx
        ctx.now = now
        switch = ctx.switches.get(switch_name)
        router: Any = ctx.routers.get(switch_name)
        router = getattr(router, "default", router)  # a per-routing-point dispatcher's rules
        if switch is not None and isinstance(router, BuiltinRouter):
            router.reserved(switch, conn_id, dn, ok)
            ctx.pump()

    def hang_up(self, switch_name: str, conn_id: str) -> bool:
        """The caller of call ``conn_id`` hangs up (tests, API): ``CallStatus Released``."""
        switch = self._ctx.switches.get(switch_name)
        if switch is None or switch.view.call(conn_id) is None:
            return False
        switch.request(TCallerHangUp(reference_id=self._ctx.refs(), conn_id=conn_id))
        self._ctx.pump()
        return True

    def port_available(self, ivr: IvrConfig, port: PortConfig) -> bool:
        """Can ``port`` of ``ivr`` take calls (enabled, with a registered DN)? (MonitorInfo Port)"""
        return self._ctx.port_usable(ivr, port)

    def is_routing_point(self, number: str) -> bool:
        """Is ``number`` a routing point of some switch?"""
        return number in self._ctx.ports.routing_points

    def pump(self) -> None:
        """Deliver every queued switch event (after requests made from outside, e.g. the API)."""
        self._ctx.pump()

    def _pump(self) -> None:
        self._ctx.pump()

    def _compact_if_due(self) -> None:
        """Most calls have ended: give their tables' room, the codec's memos and the freed heap
        back (collecting first once few calls remain)."""
        ctx = self._ctx
        if not ctx.calls.compact_due:
            return
        rebuilt = ctx.calls.compact() + ctx.outbound.compact()
        rebuilt += sum(switch.compact() for switch in ctx.switches.values())
        forget_memos()
        trimmed = release_free_memory(collect=len(ctx.calls.calls) < _COLLECT_BELOW)
        log.info(
            "calls in progress fell to %d: %d tables rebuilt%s",
            len(ctx.calls.calls),
            rebuilt,
            ", heap trimmed" if trimmed else "",
        )

    # ------------------------------------------------------------------ configuration

    def reload(
        self,
        config: ServerConfig,
        *,
        force: bool = False,
        now: float | None = None,
        prepared: PreparedReload | None = None,
    ) -> ReloadReport:
        """Switch to a new, already validated configuration without dropping anyone.

        A configuration that would take away the IVR, port, switch, DN, T-Server or routing
        point of a live call (an emptied file, say) raises :class:`ReloadRefused` and changes
        nothing, unless ``force``: then those calls are ended first, as their Call Timeout would
        end them (``EndCall EndCause='Timeout'`` to the IVR, the call released on the switch,
        the port freed). So are the calls on a switch that must be built anew (its type or its
        PBX link changes).

        ``prepared``: what the caller worked out beforehand (:func:`prepare_reload`; the runtime
        does, in its worker thread): each part is used if it still holds.
        """
        ctx = self._ctx
        if now is not None:
            ctx.now = now
        rebuilt = rebuilt_switches(ctx.config, config)
        stranded = stranded_calls(ctx.calls.calls.values(), config, rebuilt)
        if stranded:
            if not force:
                raise ReloadRefused(stranded)
            for item in stranded:
                ctx.calls.end_by_operator(item.key, ctx.now)
            ctx.pump()
        old_flow = ctx.flow_control
        monitoring = self._monitoring
        old_ports = monitoring.ports_reported
        old_index = ctx.ports.port_of_dn
        if prepared is not None and prepared.old is not ctx.config:
            prepared = None  # another reload came in between
        changes = describe_changes(ctx.config, config) if prepared is None else prepared.changes
        ctx.config = config
        ctx.calls.reconfigure(_call_settings(config))
        ctx.stats.reconfigure(config)
        self._access_numbers.reconfigure(config)
        # calls in a routing dialog at this moment get the router timeout's default answer
        ctx.routers = build_routers(config, ctx.router_refs)
        added, removed = apply_switches(ctx, config, self._monitoring, rebuilt)
        ready = prepared.ports_for(ctx.switches) if prepared is not None else None
        ports = ctx.ports = PortIndex.build(config, ctx.switches) if ready is None else ready
        new_index = ports.port_of_dn
        ports.port_of_dn = {**old_index, **new_index}  # events of removed DNs find their port
        monitoring.mark_topology_changed()  # reported once, when the pump is quiet
        ctx.pump()
        ports.port_of_dn = new_index
        self._agents.auto_login()
        ctx.flow_control = config.server.flow_control or ctx.stopping
        if ctx.flow_control != old_flow:
            self._sessions.broadcast_flow_control()
        now_ports = monitoring.ports_reported
        report = ReloadReport(
            ports_unavailable=sum(1 for k, v in old_ports.items() if v and not now_ports.get(k)),
            ports_available=sum(1 for k, v in now_ports.items() if v and not old_ports.get(k)),
            switches_added=tuple(added),
            switches_removed=tuple(removed),
            flow_control_changed=ctx.flow_control != old_flow,
            calls_stranded=len(stranded),
            stranded=stranded,
            changes=changes,
        )
        log.info("configuration reloaded: %s", report.describe())
        return report

    def set_flow_control(self, on: bool) -> None:
        """Drain (``on``) or resume the server; every 4.0 session hears about a change. A
        stopping server stays drained."""
        self._sessions.set_flow_control(on)

    def set_link(self, switch_name: str, up: bool) -> None:
        """Bring a switch's T-Server link up or down (maintenance, tests). A premise switch's
        link comes up later, when its adapter has connected and the PBX's session is usable."""
        switch = self._ctx.switches[switch_name]
        ref = self._ctx.refs()
        switch.request(TOpenLink(reference_id=ref) if up else TCloseLink(reference_id=ref))
        self._ctx.pump()
        self._agents.take_links_up()
        if up:
            self._agents.auto_login()

    def deliver(self, now: float) -> None:
        """Deliver what the switches queued by themselves at ``now``: the adapter of a switch
        at the far end of a link (a premise PBX, ``runtime/links.py``) calls it after each of its
        doors (connected, bytes read, timer, connection lost). A link that came up has the
        agents of LegacyMode IVRs' ports logged in, as :meth:`set_link` does."""
        ctx = self._ctx
        ctx.now = now
        ctx.pump()
        if self._agents.take_links_up():
            self._agents.auto_login()

    # ------------------------------------------------------------------ stopping

    def begin_stop(self, now: float) -> None:
        """The server is stopping (SIGTERM): from now on it admits no new call. Every 4.0
        session is told ``FlowControl Status='On'`` (PROTOCOL.md §3.1.3: start no new calls here,
        the calls already started continue), and every session subscribed with
        ``ServerMonitor='set'`` ``MonitorInfo/Server Status='Unavailable'`` for each T-Server it
        was told about (§3.2.1: the T-Server is going away). ``NewCall``, ``MakeCall`` and
        ``DialOutInit`` get ``EndCall EndCause='ServerPaused'``, as under flow control. The calls
        in progress are served as before until :meth:`end_calls`."""
        ctx = self._ctx
        ctx.now = now
        ctx.stopping = True
        self.set_flow_control(True)
        for session in list(ctx.sessions.values()):
            self._monitoring.report_servers(session)

    def calls_in_hand(self) -> int:
        """Calls in progress that a connected session can still end (an orphan's IVR cannot log
        in again once the server stops accepting: waiting for it is pointless)."""
        return sum(1 for call in self._ctx.calls.calls.values() if call.owner is not None)

    def end_calls(self, now: float) -> int:
        """End every call in progress on the server's side, as its Call Timeout would
        (``EndCall EndCause='Timeout'`` to its IVR, released on the switch, the port freed);
        how many there were. The end of a stop's drain time."""
        ctx = self._ctx
        ctx.now = now
        call_ids = list(ctx.calls.calls)
        for call_id in call_ids:
            ctx.calls.end_by_operator(call_id, now)
        ctx.pump()
        self._refusals.flush(now, everything=True)
        return len(call_ids)

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next run (``None``: no timer runs)."""
        ctx = self._ctx
        deadline = earliest(ctx.calls.next_deadline(), ctx.outbound.next_deadline())
        deadline = earliest(deadline, self._access_numbers.next_deadline())
        return earliest(deadline, self._refusals.next_deadline())

    def handle_timer(self, now: float) -> None:
        """Run the timers that are due."""
        ctx = self._ctx
        ctx.now = now
        ctx.calls.handle_timer(now)
        ctx.outbound.handle_timer(now)
        self._access_numbers.handle_timer(now)
        ctx.pump()
        self._refusals.flush(now)


def _call_settings(config: ServerConfig) -> CallSettings:
    timers = config.server.timers
    return CallSettings(
        router_timeout=timers.router_timeout,
        call_timeout=timers.call_timeout,
        wait_for_ringing=timers.wait_for_ringing,
        make_call_timeout=timers.make_call_timeout,
        orphan_call_timeout=timers.orphan_call_timeout,
        active_release=config.server.active_release,
        behind_ports=_behind_ports(config),
        timeline=TimelineLimits(
            entries=config.server.timeline_entries,
            retention=config.server.timeline_retention,
            calls=config.server.timeline_calls,
        ),
    )


def _behind_ports(config: ServerConfig) -> dict[tuple[str, str], DeferPolicy]:
    """Every IVR port DN on a premise switch, with how its T-Server keeps the premise events
    that come before a ``NewCall`` (``defer-tlib-events``, ``waiting-for-newcall-timeout``)."""
    ports: dict[tuple[str, str], DeferPolicy] = {}
    for ivr in config.ivrs:
        for port in ivr.ports:
            found = config.port_dn(ivr, port)
            if found is None or found[0].type == "in-front":
                continue
            tserver = config.tserver_for_switch(found[0].name)
            premise = tserver.premise if tserver is not None else None
            ports[(found[0].name, found[1].number)] = (
                DeferPolicy(premise.defer_tlib_events, premise.waiting_for_newcall_timeout)
                if premise is not None
                else DeferPolicy()
            )
    return ports
