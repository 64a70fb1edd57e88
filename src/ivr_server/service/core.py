"""The IVR service: what the server does with each IVR message, with no I/O at all.

Theory of operation. The runtime owns sockets and the clock; it hands this core every decoded
document (:meth:`IvrService.handle`) and every rejected one (:meth:`IvrService.handle_rejected`).
Handlers are found in one table keyed by message class (no if/elif ladder on tags). A handler
either queues replies on session links (:meth:`IvrService._send`) or raises
:class:`~ivr_server.service.replies.Refusal`, which the dispatcher turns into its reply - the one
place where errors become answers. Requests to a switch are answered by switch events: after every
request the core drains the switches (:meth:`IvrService._pump`) and fans the events out as
``MonitorInfo`` to the sessions that must see them, tagging those caused by a session's own request
with its ``ReqId``. After each call into the core, the runtime writes out the sessions returned by
:meth:`IvrService.take_dirty`.

Monitoring is derived, never remembered as deltas: the T-Server statuses a monitoring session was
last told and the availability of every port are compared with the current state after anything
that can change them (link events, DN registration, reload), and only differences are sent.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ivr_server.calls import CallManager, CallSettings, PortTarget
from ivr_server.calls.replies import (
    LINK_DOWN,
    UNSUP_OPER,
    Refusal,
    answer_for_rejected,
    before_login,
    internal_error,
    invalid_request,
    no_such_call,
    too_long,
)
from ivr_server.config import IvrConfig, PortConfig, ServerConfig
from ivr_server.logs import fields
from ivr_server.memory import release_free_memory
from ivr_server.metrics import Metrics
from ivr_server.outbound import DialOutManager, DialOutOutcome, DialOutRequest
from ivr_server.routing import BuiltinRouter, Router, build_routers
from ivr_server.service.notices import (
    DialOutProgress,
    SessionClosed,
    SessionLoggedIn,
    SessionOpened,
)
from ivr_server.service.reload import (
    ReloadRefused,
    StrandedCall,
    describe_changes,
    stranded_calls,
)
from ivr_server.service.sessions import (
    SUPPORTED_VERSIONS,
    Login,
    LoginStatus,
    LogMsgBudget,
    Session,
)
from ivr_server.session import IvrLink
from ivr_server.stats import StatsEngine, StatValue, result_code
from ivr_server.switch import (
    AgentStatus,
    CallEvent,
    DnType,
    EventAddressInfo,
    EventAgentLogin,
    EventAgentLogout,
    EventAgentNotReady,
    EventAgentReady,
    EventError,
    EventLinkConnected,
    EventLinkDisconnected,
    EventRegistered,
    EventUnregistered,
    SwitchEvent,
    SwitchRequest,
    TAgentLogin,
    TAgentLogout,
    TAgentSetNotReady,
    TAgentSetReady,
    TQueryAddress,
    VirtualSwitch,
    WorkMode,
)
from ivr_server.throttle import LogThrottle, Summary
from ivr_server.timers import earliest
from ivr_server.wire import DecodeError, KvList, Message, forget_memos, str_node
from ivr_server.wire import messages as m
from ivr_server.wire.limits import (
    ECHO_ALWAYS_FITS,
    MAX_ECHOED,
    DocumentTooLarge,
    fit_echo,
    text_size,
)

__all__ = ["IvrService", "ReloadReport"]

log = logging.getLogger("ivr_server.service")

AgentStatusName = Literal["LoggedIn", "LoggedOut", "Ready", "NotReady", "Unknown"]
LinkStatusName = Literal["OK", "Unavailable"]

_AGENT_STATUS_OF_EVENT: Final[dict[type[SwitchEvent], AgentStatusName]] = {
    EventAgentLogin: "LoggedIn",
    EventAgentLogout: "LoggedOut",
    EventAgentReady: "Ready",
    EventAgentNotReady: "NotReady",
}
"""T-Library agent event -> ``Agent/@Status`` (PROTOCOL.md §3.2.1, XMLG p.68 Table 14)."""

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

_LOG_LEVELS: Final = {"Standard": logging.INFO, "Trace": logging.DEBUG, "Debug": logging.DEBUG}
"""LogMsg ``MsgType`` -> server log level."""

_ivr_log: Final = logging.getLogger("ivr_server.service.ivr")
"""Where IVRs' LogMsg texts are logged."""

_LOGMSG_SUMMARY_S: Final = 10.0
"""While a session's LogMsgs are dropped for its rate limit, one line sums them up this often."""

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
"""Requests about an existing call (answered as for an unknown CallId until calls exist)."""


@dataclass(frozen=True, slots=True)
class _Origin:
    """Who asked the switch for what: events carrying ``ref`` answer this session's request."""

    ref: int
    session: Session
    call_id: str
    req_id: str
    port: str


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What a configuration reload changed, for the log."""

    ports_unavailable: int
    ports_available: int
    switches_added: tuple[str, ...]
    switches_removed: tuple[str, ...]
    flow_control_changed: bool
    calls_stranded: int = 0
    """Live calls the new configuration took the IVR, port, switch or DN of, ended first (a
    forced reload only: otherwise such a reload is refused)."""
    stranded: tuple[StrandedCall, ...] = field(default=(), repr=False)
    """Those calls, and why."""
    changes: tuple[str, ...] = ()
    """What the new configuration adds, removes and changes, one phrase each
    (:func:`~ivr_server.service.reload.describe_changes`); empty: the same configuration."""

    def describe(self) -> str:
        """The report in words, for the log and ``ivr-server reload``: ``IVR IVR_3 added;
        server.flow-control false -> true; 32 ports became available``, or ``nothing changed``."""
        parts = list(self.changes)
        if self.ports_available:
            parts.append(f"{_count(self.ports_available, 'port')} became available")
        if self.ports_unavailable:
            parts.append(f"{_count(self.ports_unavailable, 'port')} became unavailable")
        if self.calls_stranded:
            parts.append(f"{_count(self.calls_stranded, 'live call')} ended first")
        return "; ".join(parts) if parts else "nothing changed"


PortKey = tuple[str, str]

_Unsent = tuple[Session, str | None, DocumentTooLarge]
"""A document that was too long to send: to whom, on which CallId, and its size."""
"""(IVR name, port number)."""


class IvrService:
    """The sans-IO core of the IVR Server. See the module docstring."""

    def __init__(self, config: ServerConfig, *, id_seed: int = 0) -> None:
        self.config = config
        self.now = 0.0
        """The clock as of the latest input (the runtime passes it in; this core never reads it)."""
        self._id_seed = id_seed
        self.metrics = Metrics()
        """What the server counted (exported by the API's /metrics)."""
        self.refusal_log: LogThrottle[tuple[str, str]] = LogThrottle()
        """Refusals by (request, cause): the first logged at INFO, then one summary line per
        cause per interval; each at DEBUG (:meth:`_refused`)."""
        self.listeners: list[Callable[[str, SwitchEvent], None]] = []
        """Called with (switch name, event) for every switch event (the API's event stream);
        empty when nobody listens, which costs nothing."""
        self.calls = CallManager(
            _call_settings(config), self._send_to_owner, self.metrics, self._call_dial_out_report
        )
        self._router_refs = itertools.count(2_000_000_001)
        self.routers: Mapping[str, Router] = build_routers(config, self._next_router_ref)
        """Switch name -> the router serving its routing points (built-in rules for now)."""
        self.flow_control = config.server.flow_control
        self.stopping = False
        """The server is stopping (:meth:`begin_stop`): no new call, T-Servers reported
        ``Unavailable``."""
        self.switches: dict[str, VirtualSwitch] = {}
        self.sessions: dict[int, Session] = {}
        self._dirty: dict[Session, None] = {}
        self._unsent: list[_Unsent] = []
        """Documents too long to send since the last look (:meth:`_send`)."""
        self._removed: list[str] = []
        """Calls removed again since the last look because their start failed (``_undo_start``)."""
        self._session_ids = itertools.count(1)
        self._refs = itertools.count(1)
        self._port_of_dn: dict[tuple[str, str], PortKey] = {}
        self._routing_points: frozenset[str] = frozenset()
        self._targets: dict[str, dict[str, PortTarget]] = {}
        """IVR name -> port number -> where its calls go, for every port that can take calls
        (built with the configuration: keyed by its own strings, nothing grows with calls)."""
        """(IVR, port number) -> where its calls land (mode procedure), for configured ports."""
        self._ports_reported: dict[PortKey, bool] = {}
        self.outbound = DialOutManager(self._report_dial_out)
        """DialOut registrations and predictive-call requests (PROTOCOL.md §3.10)."""
        self._handlers: dict[type[Message], Callable[[Session, str | None, Any], None]] = {
            m.LoginReq: self._on_login_req,
            m.LogMsg: self._on_log_msg,
            m.Reset: self._on_reset,
            m.AgentQuery: self._on_agent_query,
            m.AgentLogin: self._on_agent_login,
            m.AgentLogout: self._on_agent_logout,
            m.AgentReady: self._on_agent_ready,
            m.AgentNotReady: self._on_agent_not_ready,
            m.DialOutRegistry: self._on_dial_out_registry,
            m.DialOutError: self._on_dial_out_error,
            m.NewCall: self._on_new_call,
            m.MakeCall: self._on_make_call,
            m.DialOutInit: self._on_dial_out_init,
            m.PeekStatReq: self._on_stat,
            m.GetStatReq: self._on_stat,
            m.CallStatus: self._on_ivr_call_status,
        }
        self._apply_switches(config)
        self._index_ports(config)
        self.stats = StatsEngine(
            config, self.switches, self._calls_of_ivr, waiting_for_queue=self._waiting_for_queue
        )
        """The built-in statistics engine (PeekStatReq/GetStatReq, the API)."""
        self._ports_reported = self._port_availability()
        self._pump()
        self._auto_login()

    # ------------------------------------------------------------------ sessions

    def open_session(self, peer: str, link: IvrLink, now: float) -> Session:
        """Register a new connection."""
        link.dtd_file = self.config.server.dtd_file
        link.encoding = self.config.server.output_encoding
        session = Session(id=next(self._session_ids), peer=peer, link=link, opened_at=now)
        self.sessions[session.id] = session
        self.metrics.sessions_opened += 1
        if self.listeners:
            self._notify(SessionOpened(switch="", session=session.id, peer=peer))
        log.info("session %d opened from %s", session.id, peer, extra=_ctx(session, None))
        return session

    def close_session(self, session: Session, reason: str, now: float | None = None) -> None:
        """Forget a connection. Its registrations go with it; its calls stay, passed to another
        session of the same IVR or kept for ``orphan-call-timeout`` (DECISIONS.md)."""
        if now is not None:
            self.now = now
        if self.sessions.pop(session.id, None) is None:
            return
        self.metrics.sessions_closed += 1
        if self.listeners:
            self._notify(
                SessionClosed(
                    switch="",
                    session=session.id,
                    peer=session.peer,
                    ivr=session.ivr_name,
                    reason=reason,
                )
            )
        self._dirty.pop(session, None)
        ivr = session.ivr_name
        successor = next(
            (s for s in self.sessions.values() if ivr is not None and s.ivr_name == ivr), None
        )
        self.calls.owner_gone(session, successor, self.now)
        self.outbound.session_closed(session)
        self._pump()
        if session.logmsg_budget is not None and session.logmsg_budget.dropped:
            _log_logmsg_drops(session, session.logmsg_budget.take_dropped())
        log.info(
            "session %d from %s closed: %s",
            session.id,
            session.peer,
            reason,
            extra=_ctx(session, None),
        )

    def take_dirty(self) -> list[Session]:
        """Sessions with data queued since the last call; the runtime writes them out."""
        if self._unsent:  # documents of timers or operator actions that could not be sent
            self._log_unsent(self._take_unsent())
        if not self._dirty:
            return []
        dirty = list(self._dirty)
        self._dirty.clear()
        return dirty

    def _next_router_ref(self) -> int:
        return next(self._router_refs)

    def _send_to_owner(self, owner: Any, call_id: str, message: Message) -> None:
        """A call's message to the session that owns the call (none: dropped, DECISIONS.md)."""
        if isinstance(owner, Session) and owner.id in self.sessions:
            self._send(owner, call_id, message)
        else:
            log.debug(
                "CallId %s: %s dropped, no session of its IVR is connected", call_id, message.tag
            )

    def _send(self, session: Session, call_id: str | None, message: Message) -> None:
        """Queue ``message`` on ``session``. The safety net of issue 19: a document longer than a
        link sends (a bug: the bounds on what IVRs send should make it impossible) is not sent at
        all and noted in ``_unsent``; the request being handled then gets a small error answer
        instead (:meth:`handle`), a call it was starting is removed again (:meth:`_undo_start`),
        and one line is logged. The link stays open."""
        try:
            session.link.send(call_id, message)
        except DocumentTooLarge as too_large:
            self._unsent.append((session, call_id, too_large))
            self.metrics.errors["oversize"] += 1
            return
        session.documents_out += 1
        self.metrics.messages_out[message.tag] += 1
        self._dirty[session] = None

    # ------------------------------------------------------------------ dispatch

    def handle(
        self, session: Session, call_id: str | None, message: Message, now: float | None = None
    ) -> None:
        """Carry out one document received on ``session`` at time ``now``."""
        if now is not None:
            self.now = now
        session.documents_in += 1
        self.metrics.messages_in[message.tag] += 1
        handler = self._handlers.get(type(message))
        failed = False
        try:
            echoed = _ECHOED.get(message.tag)
            if echoed is not None or (call_id is not None and len(call_id) > ECHO_ALWAYS_FITS):
                _check_echoed(call_id, message, echoed)
            if handler is not None:
                handler(session, call_id, message)
            elif message.tag in _CALL_REQUESTS:
                login = self._require_login(session, call_id, message)
                self.calls.handle(session, login.client_name, call_id, message, self.now)
                self._pump()
            else:
                self._on_other(session, call_id, message)
        except Refusal as refusal:
            self._refused(session, call_id, message.tag, refusal)
            if refusal.reply is not None:
                self._send(session, refusal.call_id, refusal.reply)
            self._pump()
        except Exception:  # a bug of ours: answered, logged, and nobody else is affected
            log.exception(
                "session %d: internal error handling %s",
                session.id,
                message.tag,
                extra=_ctx(session, call_id),
            )
            self.metrics.errors["internal"] += 1
            failed = True
        if failed or self._unsent:
            self._answer_failure(session, call_id, message, failed)

    def _refused(self, session: Session, call_id: str | None, tag: str, refusal: Refusal) -> None:
        """Count a refusal by cause (what the IVR is told) and log it: at INFO the first of its
        cause in an interval, then a summary line with the count (:meth:`_log_refusal_summaries`);
        each one at DEBUG. A flood of refused requests costs a few log lines, not one each."""
        kind = refusal.kind
        metrics = self.metrics
        metrics.errors[kind] += 1
        cause = (tag, kind)
        metrics.refusals[cause] += 1
        throttle = self.refusal_log
        if throttle.note(cause, self.now):
            log.info(
                "session %d: %s (%s refused: %s; more of these are counted, one line every %g s)",
                session.id,
                refusal.reason,
                tag,
                kind,
                throttle.interval,
                extra=_ctx(session, call_id),
            )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug(
                "session %d: %s (%s refused: %s)",
                session.id,
                refusal.reason,
                tag,
                kind,
                extra=_ctx(session, call_id),
            )
        deadline = throttle.next_deadline()
        if deadline is not None and deadline <= self.now:
            self._log_refusal_summaries(throttle.take_due(self.now))

    def _log_refusal_summaries(self, summaries: list[Summary[tuple[str, str]]]) -> None:
        for summary in summaries:
            tag, kind = summary.key
            log.info(
                "%d more %s refused (%s) in the last %g s",
                summary.count,
                tag,
                kind,
                round(summary.seconds, 1),
            )

    def _answer_failure(
        self, session: Session, call_id: str | None, message: Message, failed: bool
    ) -> None:
        """After handling ``message`` failed, or some document it caused could not be sent: the
        request gets a small error answer in place of the one lost (``internal_error``: its own
        error form, identifiers cut to fit), and what was not sent is logged in one line."""
        if failed or any(entry[0] is session for entry in self._unsent):
            answer = internal_error(call_id, message)
            if answer is not None and answer.reply is not None:
                self._send(session, answer.call_id, answer.reply)
        unsent = self._take_unsent()  # with the answer itself, if even that could not be sent
        removed = self._removed
        if removed:
            self._removed = []
        if unsent:
            self._log_unsent(unsent, session, message.tag, call_id, removed)
        elif removed:
            log.info(
                "session %d: %s: call removed again, its port is free",
                session.id,
                message.tag,
                extra=_ctx(session, call_id),
            )

    def _take_unsent(self) -> list[_Unsent]:
        unsent = self._unsent
        self._unsent = []
        return unsent

    def _log_unsent(
        self,
        unsent: list[_Unsent],
        session: Session | None = None,
        tag: str | None = None,
        call_id: str | None = None,
        removed: list[str] | None = None,
    ) -> None:
        """One line for every document of one request (or one timer, one operator action) that
        was too long to send; no traceback: the cause is the size, said here."""
        shown = ", ".join(
            f"{error.tag} of {error.size} bytes to session {target.id} on CallId "
            f"{_log_id(target_call_id)}"
            for target, target_call_id, error in unsent[:3]
        )
        more = f" and {len(unsent) - 3} more" if len(unsent) > 3 else ""
        cause = f"session {session.id}: {tag}: " if session is not None else ""
        undone = "; the call was removed again, its port is free" if removed else ""
        log.warning(
            "%s%d document(s) not sent, longer than a link sends (%d bytes): %s%s%s",
            cause,
            len(unsent),
            unsent[0][2].limit,
            shown,
            more,
            undone,
            extra=_ctx(session, call_id) if session is not None else None,
        )

    def handle_rejected(
        self, session: Session, error: DecodeError, now: float | None = None
    ) -> None:
        """Answer a Data frame that did not decode (PROTOCOL.md §9.4.2)."""
        if now is not None:
            self.now = now
        session.documents_in += 1
        self.metrics.messages_in["rejected"] += 1
        self.metrics.errors["rejected"] += 1
        log.warning(
            "session %d from %s: rejected document: %s",
            session.id,
            session.peer,
            error.reason,
            extra=_ctx(session, None),
        )
        answer = answer_for_rejected(error, self.config.server.version_string)
        if answer is not None:
            self._send(session, *answer)

    def _require_login(self, session: Session, call_id: str | None, message: Message) -> Login:
        login = session.login
        if login is None or not login.known_client:
            raise before_login(call_id, message)
        return login

    def _on_other(self, session: Session, call_id: str | None, message: Message) -> None:
        if message.tag in _SERVER_TO_IVR:
            raise invalid_request(
                call_id,
                f"{message.tag} is sent by the server, not to it",
                getattr(message, "ReqId", None),
            )
        self._require_login(session, call_id, message)
        raise invalid_request(call_id, f"{message.tag} is not supported")

    # ------------------------------------------------------------------ session messages

    def _on_login_req(self, session: Session, call_id: str | None, msg: m.LoginReq) -> None:
        cfg = self.config.server
        if call_id is None:  # the codec guarantees form A; keep mypy and readers sure
            return
        version = msg.Version or "2.0"  # DECISIONS.md: a LoginReq without Version is 2.0
        if version not in SUPPORTED_VERSIONS:
            session.login = None
            self.metrics.logins["InvalidProtocolVer"] += 1
            self._send(
                session,
                call_id,
                m.LoginResp(IServerVer=cfg.version_string, Result="InvalidProtocolVer"),
            )
            log.info(
                "session %d: login refused, version %s",
                session.id,
                version,
                extra=_ctx(session, call_id),
            )
            return
        ivr = self.config.ivr(msg.ClientName)
        if ivr is None:
            status = LoginStatus.NO_SUCH_CLIENT
        elif not all(self._tserver_up(name) for name in ivr.tservers):
            status = LoginStatus.INIT_IN_PROGRESS
        else:
            status = LoginStatus.OK
        self.metrics.logins[status.value] += 1
        if self.listeners:
            self._notify(
                SessionLoggedIn(
                    switch="",
                    session=session.id,
                    ivr=msg.ClientName,
                    version=version,
                    status=status.value,
                )
            )
        monitor = version == "4.0" and msg.ServerMonitor == "set" and ivr is not None
        previous, previous_encoding = session.login, session.link.encoding
        session.login = Login(
            call_id=call_id,
            client_name=msg.ClientName,
            version=version,
            monitor=monitor,
            known_client=ivr is not None,
        )
        if ivr is not None:
            session.link.encoding = ivr.output_encoding or cfg.output_encoding
        options = None
        if ivr is not None and ivr.data_transport:
            options = tuple(str_node(k, v) for k, v in ivr.data_transport)
        mark = len(self._unsent)
        self._send(
            session,
            call_id,
            m.LoginResp(
                IServerVer=cfg.version_string,
                Result="Success",
                Status=status.value if msg.ReportStatus == "true" else None,
                ConfigOptions=options,
            ),
        )
        if len(self._unsent) > mark:  # too long to send (configuration): no login happened
            session.login, session.link.encoding = previous, previous_encoding
            return
        log.info(
            "session %d logged in as %r (version %s, status %s, monitor %s)",
            session.id,
            msg.ClientName,
            version,
            status.value,
            "set" if monitor else "clear",
            extra=_ctx(session, call_id),
        )
        if version == "4.0":
            self._send(session, call_id, m.FlowControl(Status="On" if self.flow_control else "Off"))
        session.servers_reported = {}
        if monitor:
            self._report_servers(session)
        if ivr is not None:
            adopted = self.calls.adopt(ivr.name, session)
            if adopted:
                log.info(
                    "session %d continues %d call(s) of %s",
                    session.id,
                    adopted,
                    ivr.name,
                    extra=_ctx(session, call_id),
                )

    def _on_log_msg(self, session: Session, call_id: str | None, msg: m.LogMsg) -> None:
        level = _LOG_LEVELS.get(msg.MsgType, logging.INFO)
        if not _ivr_log.isEnabledFor(level):
            return
        server = self.config.server
        if server.logmsg_rate > 0:
            budget = session.logmsg_budget
            if budget is None:
                budget = session.logmsg_budget = LogMsgBudget(server.logmsg_burst, self.now)
            admitted = budget.admit(self.now, server.logmsg_rate, server.logmsg_burst)
            if not admitted:
                self.metrics.logmsg_dropped["rate_limit"] += 1
                if budget.drop(self.now):
                    log.warning(
                        "session %d: LogMsg over the rate limit (%g/s, burst %d): the excess is "
                        "dropped, and counted every %g s",
                        session.id,
                        server.logmsg_rate,
                        server.logmsg_burst,
                        _LOGMSG_SUMMARY_S,
                        extra=_ctx(session, None),
                    )
            dropped = budget.summary_due(self.now, _LOGMSG_SUMMARY_S)
            if dropped > 0:
                _log_logmsg_drops(session, dropped)
            if not admitted:
                return
        text = msg.Msg
        cap = server.logmsg_max_length
        if 0 < cap < len(text):
            text = f"{text[:cap]}... [LogMsg cut: {len(text)} characters in all]"
            self.metrics.logmsg_truncated += 1
        call = self.calls.calls.get(call_id) if call_id is not None else None
        _ivr_log.log(
            level,
            "%s",
            text,
            extra={
                **_ctx(session, call_id),
                **fields(ivr_level=msg.MsgType, conn_id=call.conn_id if call else None),
            },
        )

    def _on_reset(self, session: Session, call_id: str | None, msg: m.Reset) -> None:
        log.info(
            "session %d: Reset on CallId %s ignored (reserved)",
            session.id,
            call_id,
            extra=_ctx(session, call_id),
        )

    def _on_ivr_call_status(self, session: Session, call_id: str | None, msg: m.CallStatus) -> None:
        login = self._require_login(session, call_id, msg)
        self.calls.ivr_call_status(session, login.client_name, call_id, msg, self.now)
        self._pump()

    def _on_new_call(self, session: Session, call_id: str | None, msg: m.NewCall) -> None:
        login = self._require_login(session, call_id, msg)
        assert call_id is not None  # NewCall is a form-A document: the codec requires a CallId
        if self.calls.is_active(call_id) or call_id == login.call_id:
            raise invalid_request(call_id, f"NewCall: CallId {call_id!r} is already active")
        target = self._mode(login, call_id, msg.tag, msg.CalledNum)
        if msg.CallControlMode == "Genesys":
            raise _end(call_id, "FeatureNotSupported", "CallControlMode Genesys is Network only")
        if self.flow_control or not target.switch.link_up:
            raise _end(call_id, "ServerPaused", self._paused_reason())
        mark = len(self._unsent)
        try:
            self.calls.new_call(session, call_id, msg, target, self.now)
            self._pump()
        except Exception:
            self._undo_start(call_id, mark, failed=True)
            raise
        if len(self._unsent) > mark:
            self._undo_start(call_id, mark)

    def _paused_reason(self) -> str:
        if self.stopping:
            return "the server is stopping"
        return "flow control is on or the T-Server link is down"

    def _undo_start(self, call_id: str, mark: int, failed: bool = False) -> None:
        """A call just admitted (NewCall, DialOutInit) whose start failed, or a document about it
        (its first ``CallStatus``) could not be sent since ``_unsent`` had ``mark`` entries: the
        call is removed again, released on the switch, its port free at once. A request is fully
        admitted, every reply it implies delivered, or refused with nothing left behind; the
        request's answer follows in :meth:`handle`."""
        if not failed and all(entry[1] != call_id for entry in self._unsent[mark:]):
            return
        if self.calls.discard(call_id):
            self._removed.append(call_id)
            self._pump()

    def _on_make_call(self, session: Session, call_id: str | None, msg: m.MakeCall) -> None:
        login = self._require_login(session, call_id, msg)
        assert call_id is not None
        if self.calls.is_active(call_id) or call_id == login.call_id:
            raise invalid_request(call_id, f"MakeCall: CallId {call_id!r} is already active")
        target = self._mode(login, call_id, msg.tag, msg.OrigNum)
        raise Refusal(
            call_id,
            m.CallError(FailedReq="MakeCall", TlibErrCode=UNSUP_OPER),
            f"MakeCall is Behind-mode only; port {target.port} is {target.mode}",
        )

    def _on_dial_out_init(self, session: Session, call_id: str | None, msg: m.DialOutInit) -> None:
        login = self._require_login(session, call_id, msg)
        assert call_id is not None
        if self.calls.is_active(call_id) or call_id == login.call_id:
            raise invalid_request(call_id, f"DialOutInit: CallId {call_id!r} is already active")
        request = self.outbound.take_init(session, msg.RefID)
        if request is None:  # unknown, expired, or sent to another session (PROTOCOL.md §3.10.5)
            raise _end(call_id, "FeatureNotSupported", f"DialOutInit for unknown RefID {msg.RefID}")
        mark = len(self._unsent)
        try:
            target = self._mode(login, call_id, msg.tag, msg.CalledNum)
            if self.flow_control or not target.switch.link_up:
                raise _end(call_id, "ServerPaused", self._paused_reason())
            self.calls.dial_out_init(
                session, call_id, msg, target, request, request.dest, request.user_data, self.now
            )
        except Refusal as refusal:
            self.outbound.notify(
                request,
                DialOutOutcome("failed", request.ref_id, call_id=call_id, cause=refusal.kind),
            )
            raise
        except Exception:
            self._undo_start(call_id, mark, failed=True)
            raise
        try:
            self._pump()
        except Exception:
            self._undo_start(call_id, mark, failed=True)
            raise
        if len(self._unsent) > mark:
            self._undo_start(call_id, mark)

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
        request = self.outbound.request(
            requester,
            orig_dn,
            dest,
            self.now,
            timeout=timeout,
            user_data=user_data,
            extensions=extensions,
        )
        if request is None:
            return None
        session = request.session
        assert isinstance(session, Session)
        mark = len(self._unsent)
        self._send(session, None, request.dial_out())
        if len(self._unsent) > mark:  # its user data or extensions make it too long to send
            self.outbound.take_init(session, request.ref_id)
            self.outbound.notify(
                request, DialOutOutcome("failed", request.ref_id, cause="DocumentTooLarge")
            )
            return request
        log.info(
            "DialOut %s: %s -> %s via session %d",
            request.ref_id,
            orig_dn,
            dest,
            session.id,
            extra=_ctx(session, None),
        )
        return request

    def _report_dial_out(self, request: DialOutRequest, outcome: DialOutOutcome) -> None:
        log.info("DialOut %s: %s", request.ref_id, outcome, extra=fields(call_id=outcome.call_id))
        if self.listeners:
            self._notify(
                DialOutProgress(
                    switch="",
                    ref_id=request.ref_id,
                    kind=outcome.kind,
                    dn=request.orig_dn,
                    dest=request.dest,
                    call_id=outcome.call_id,
                    error_code=outcome.error_code,
                    cause=outcome.cause,
                )
            )
        if callable(request.requester):
            request.requester(request, outcome)

    def _call_dial_out_report(
        self, request: Any, kind: str, call_id: str, cause: str | None
    ) -> None:
        if isinstance(request, DialOutRequest):
            self.outbound.notify(
                request,
                DialOutOutcome(kind, request.ref_id, call_id=call_id, cause=cause),  # type: ignore[arg-type]
            )

    def _mode(self, login: Login, call_id: str, tag: str, key: str) -> PortTarget:
        """The mode procedure of PROTOCOL.md §5.2 for a new call; failure -> EndCall. Every
        port's target is worked out when the configuration is loaded (the hot path of NewCall);
        a port not in that table is resolved again, to say why it cannot take the call."""
        targets = self._targets.get(login.client_name)
        cached = targets.get(key) if targets is not None else None
        if cached is not None:
            return cached
        try:
            return self._resolve_port(login.client_name, key)
        except _NoPort as problem:
            raise _end(call_id, "FeatureNotSupported", f"{tag}: {problem}") from None

    def _resolve_port(self, client_name: str, key: str) -> PortTarget:
        if key in self._routing_points:
            raise _NoPort(f"{key} is a routing point (Network mode is not available)")
        ivr = self.config.ivr(client_name)
        port = ivr.port(key) if ivr is not None else None
        if ivr is None or port is None:
            raise _NoPort(f"{client_name} has no port {key!r}")
        if not (ivr.enabled and port.enabled):
            raise _NoPort(f"port {key} of {ivr.name} is disabled")
        target = self.config.port_dn(ivr, port)
        if target is None:
            raise _NoPort(f"port {key} of {ivr.name} has no DN")
        switch_cfg, dn = target
        tserver = self.config.tserver_for_switch(switch_cfg.name)
        vswitch = self.switches.get(switch_cfg.name)
        if tserver is None or tserver.name not in ivr.tservers or vswitch is None:
            raise _NoPort(
                f"the T-Server of switch {switch_cfg.name} is not a connection of {ivr.name}"
            )
        return PortTarget(
            ivr=ivr.name,
            port=port.number,
            dn=dn.number,
            switch=vswitch,
            mode="In-Front" if switch_cfg.type == "in-front" else "Behind",
            encoding=ivr.output_encoding or self.config.server.output_encoding,
        )

    def _waiting_for_queue(self, switch_name: str, queue: str) -> int:
        router: Any = self.routers.get(switch_name)
        router = getattr(router, "default", router)  # a per-routing-point dispatcher's rules
        return router.waiting_for_queue(queue) if isinstance(router, BuiltinRouter) else 0

    def _calls_of_ivr(self, ivr: str) -> int:
        return sum(1 for call in self.calls.calls.values() if call.ivr == ivr)

    def _on_stat(self, session: Session, call_id: str | None, msg: Any) -> None:
        """PeekStatReq / GetStatReq: only inside a call of the session's IVR (PROTOCOL.md §3.9)."""
        login = self._require_login(session, call_id, msg)
        call = self.calls.calls.get(call_id) if call_id is not None else None
        if call is None or call.ivr != login.client_name:
            raise no_such_call(call_id, msg)
        if isinstance(msg, m.PeekStatReq):
            result = self.stats.peek(msg.StatName, self.now)
        else:
            result = self.stats.get(
                msg.ServerName, msg.StatType, msg.ObjectId, msg.ObjectType, self.now
            )
        code = result_code(result)
        value = m.Result(Value=result.text) if isinstance(result, StatValue) else None
        self._send(
            session, call_id, m.StatResp(ResultCode=code, RequestId=msg.RequestId, Result=value)
        )

    def hang_up(self, switch_name: str, conn_id: str) -> bool:
        """The caller of call ``conn_id`` hangs up (tests, API): ``CallStatus Released``."""
        switch = self.switches.get(switch_name)
        if switch is None or not switch.hang_up(conn_id):
            return False
        self._pump()
        return True

    # ------------------------------------------------------------------ agent control

    def _agent_target(
        self, session: Session, call_id: str | None, msg: Any, control: bool
    ) -> tuple[VirtualSwitch, str, str]:
        """Check an agent request (PROTOCOL.md §3.2 common rules) -> (switch, DN, CallId)."""
        login = session.login
        req_id: str = msg.ReqId
        if (
            login is None
            or not login.known_client
            or login.version != "4.0"
            or call_id != login.call_id
        ):
            raise invalid_request(call_id, f"{msg.tag} outside a 4.0 session CallId", req_id)
        ivr = self.config.ivr(login.client_name)
        port = ivr.port(msg.PortNum) if ivr is not None else None
        target = self.config.port_dn(ivr, port) if ivr is not None and port is not None else None
        if ivr is None or port is None or target is None or not self._port_usable(ivr, port):
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
        switch = self.switches[target[0].name]
        if not switch.link_up:
            raise Refusal(
                call_id,
                m.CallError(FailedReq="AgentControl", TlibErrCode=LINK_DOWN, ReqId=req_id),
                f"{msg.tag}: T-Server link down",
            )
        return switch, target[1].number, call_id

    def _agent_request(
        self,
        session: Session,
        call_id: str | None,
        msg: Any,
        control: bool,
        build: Callable[[int, str], SwitchRequest],
    ) -> None:
        switch, dn, cid = self._agent_target(session, call_id, msg, control)
        origin = _Origin(next(self._refs), session, cid, msg.ReqId, msg.PortNum)
        switch.request(build(origin.ref, dn))
        self._pump(origin)

    def _on_agent_query(self, session: Session, call_id: str | None, msg: m.AgentQuery) -> None:
        self._agent_request(
            session, call_id, msg, False, lambda ref, dn: TQueryAddress(reference_id=ref, dn=dn)
        )

    def _on_agent_login(self, session: Session, call_id: str | None, msg: m.AgentLogin) -> None:
        self._agent_request(
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

    def _on_agent_logout(self, session: Session, call_id: str | None, msg: m.AgentLogout) -> None:
        self._agent_request(
            session,
            call_id,
            msg,
            True,
            lambda ref, dn: TAgentLogout(reference_id=ref, dn=dn, queue=msg.Queue or None),
        )

    def _on_agent_ready(self, session: Session, call_id: str | None, msg: m.AgentReady) -> None:
        self._agent_request(
            session,
            call_id,
            msg,
            True,
            lambda ref, dn: TAgentSetReady(
                reference_id=ref, dn=dn, queue=msg.Queue, work_mode=WorkMode(msg.WorkMode)
            ),
        )

    def _on_agent_not_ready(
        self, session: Session, call_id: str | None, msg: m.AgentNotReady
    ) -> None:
        self._agent_request(
            session,
            call_id,
            msg,
            True,
            lambda ref, dn: TAgentSetNotReady(
                reference_id=ref, dn=dn, queue=msg.Queue, work_mode=WorkMode(msg.WorkMode)
            ),
        )

    # ------------------------------------------------------------------ outbound registry

    def _on_dial_out_registry(
        self, session: Session, call_id: str | None, msg: m.DialOutRegistry
    ) -> None:
        login = session.login
        if login is None or not login.known_client or call_id != login.call_id:
            raise invalid_request(call_id, "DialOutRegistry outside the session CallId")
        if msg.Command == "RemoveAll":
            self.outbound.unregister(session)
        elif msg.DN is None:
            raise invalid_request(call_id, f"DialOutRegistry {msg.Command} without DN")
        elif msg.Command == "Remove":
            self.outbound.unregister(session, msg.DN)
        else:
            if not self.is_routing_point(msg.DN):
                self._send(session, call_id, m.DialOutRegistryResp(Result="ConfigError"))
                return
            self.outbound.register(session, msg.DN)
        self._send(session, call_id, m.DialOutRegistryResp(Result="Success"))

    def _on_dial_out_error(
        self, session: Session, call_id: str | None, msg: m.DialOutError
    ) -> None:
        if self.outbound.on_error(session, msg) is None:
            log.info(
                "session %d: DialOutError %s for unknown RefID %s ignored",
                session.id,
                msg.Error,
                msg.RefID,
                extra=_ctx(session, call_id),
            )

    def is_routing_point(self, number: str) -> bool:
        """Is ``number`` a routing point of some switch?"""
        return number in self._routing_points

    # ------------------------------------------------------------------ switch events

    def pump(self) -> None:
        """Deliver every queued switch event (after requests made from outside, e.g. the API)."""
        self._pump()

    def _notify(self, notice: SwitchEvent) -> None:
        """A server event (not a switch's) to the event-stream listeners."""
        for listener in self.listeners:
            listener("", notice)

    def _pump(self, origin: _Origin | None = None) -> None:
        """Drain every switch until quiet and fan its events out: to the calls, the routers and
        the sessions concerned (a router's answer makes more events, hence the loop)."""
        topology_changed = False
        calls = self.calls
        stats = self.stats
        now = self.now
        busy = True
        while busy:
            busy = False
            for switch in self.switches.values():
                events = switch.drain_events()
                if not events:
                    continue
                busy = True
                router = self.routers.get(switch.name)
                listeners = self.listeners
                for event in events:
                    if router is not None:
                        router.on_event(switch, event)
                    stats.on_event(switch.name, event, now)
                    if listeners:
                        for listener in listeners:
                            listener(switch.name, event)
                    if isinstance(event, CallEvent) or (
                        isinstance(event, EventError) and calls.awaits(event.reference_id)
                    ):
                        calls.on_event(event, now)
                    elif self._fan_out(event, switch, origin):
                        topology_changed = True
        if topology_changed:
            self._report_topology()
        if calls.compact_due:
            self._compact()

    def _compact(self) -> None:
        """Most calls have ended: give their tables' room, the codec's memos and the freed heap
        back (collecting first once few calls remain)."""
        rebuilt = self.calls.compact() + self.outbound.compact()
        rebuilt += sum(switch.compact() for switch in self.switches.values())
        forget_memos()
        trimmed = release_free_memory(collect=len(self.calls.calls) < _COLLECT_BELOW)
        log.info(
            "calls in progress fell to %d: %d tables rebuilt%s",
            len(self.calls.calls),
            rebuilt,
            ", heap trimmed" if trimmed else "",
        )

    def _fan_out(self, event: SwitchEvent, switch: VirtualSwitch, origin: _Origin | None) -> bool:
        """Agent, error and topology events to the sessions; True if the topology changed."""
        if isinstance(event, EventError):
            self._on_switch_error(event, origin)
        elif isinstance(event, EventAddressInfo):
            if origin is not None and event.reference_id == origin.ref:
                self._send(
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
        elif type(event) in _AGENT_STATUS_OF_EVENT:
            self._on_agent_event(switch.name, event, origin)
        elif isinstance(
            event,
            EventLinkConnected | EventLinkDisconnected | EventRegistered | EventUnregistered,
        ):
            return True
        return False

    def _on_switch_error(self, event: EventError, origin: _Origin | None) -> None:
        if origin is not None and event.reference_id == origin.ref:
            self._send(
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

    def _on_agent_event(self, switch: str, event: Any, origin: _Origin | None) -> None:
        key = self._port_of_dn.get((switch, event.dn))
        if key is None:
            return
        ivr_name, port = key
        status = _AGENT_STATUS_OF_EVENT[type(event)]
        mine = origin is not None and event.reference_id == origin.ref
        for session in self._v4_sessions(ivr_name):
            login = session.login
            assert login is not None
            if mine and origin is not None and session is origin.session:
                self._send(
                    session,
                    origin.call_id,
                    m.MonitorInfo(ReqId=origin.req_id, Agent=m.Agent(PortNum=port, Status=status)),
                )
            else:
                self._send(
                    session,
                    login.call_id,
                    m.MonitorInfo(Agent=m.Agent(PortNum=port, Status=status)),
                )

    def _v4_sessions(self, ivr_name: str) -> Iterable[Session]:
        return [s for s in self.sessions.values() if s.is_v4 and s.ivr_name == ivr_name]

    # ------------------------------------------------------------------ monitoring state

    def _tserver_up(self, name: str) -> bool:
        tserver = self.config.tserver(name)
        switch = self.switches.get(tserver.switch) if tserver is not None else None
        return switch is not None and switch.link_up

    def _server_statuses(
        self, ivr: IvrConfig | None
    ) -> dict[str, tuple[LinkStatusName, str | None]]:
        if ivr is None:
            return {}
        out: dict[str, tuple[LinkStatusName, str | None]] = {}
        for name in ivr.tservers:
            tserver = self.config.tserver(name)
            out[name] = (
                "OK" if self._tserver_up(name) and not self.stopping else "Unavailable",
                tserver.switch if tserver is not None else None,
            )
        return out

    def _report_servers(self, session: Session) -> None:
        """Send MonitorInfo/Server for every T-Server whose status the session has not seen."""
        login = session.login
        if login is None or not login.monitor:
            return
        now = self._server_statuses(self.config.ivr(login.client_name))
        for name in list(session.servers_reported):
            # no longer relevant: its last word is Unavailable
            if name not in now and session.servers_reported.pop(name) != "Unavailable":
                self._send(
                    session,
                    login.call_id,
                    m.MonitorInfo(Server=m.Server(Name=name, Status="Unavailable")),
                )
        for name, (status, switch) in now.items():
            if session.servers_reported.get(name) != status:
                session.servers_reported[name] = status
                self._send(
                    session,
                    login.call_id,
                    m.MonitorInfo(Server=m.Server(Name=name, Status=status, Switch=switch)),
                )

    def port_available(self, ivr: IvrConfig, port: PortConfig) -> bool:
        """Can ``port`` of ``ivr`` take calls (enabled, with a registered DN)? (MonitorInfo Port)"""
        return self._port_usable(ivr, port)

    def _port_usable(self, ivr: IvrConfig, port: PortConfig) -> bool:
        if not (ivr.enabled and port.enabled):
            return False
        target = self.config.port_dn(ivr, port)
        if target is None:
            return False
        switch = self.switches.get(target[0].name)
        snapshot = switch.dn(target[1].number) if switch is not None else None
        return snapshot is not None and snapshot.registered

    def _port_availability(self) -> dict[PortKey, bool]:
        return {
            (ivr.name, port.number): self._port_usable(ivr, port)
            for ivr in self.config.ivrs
            for port in ivr.ports
        }

    def _report_topology(self) -> None:
        """Tell sessions what changed in T-Server links and port availability."""
        for session in list(self.sessions.values()):
            self._report_servers(session)
        now = self._port_availability()
        before = self._ports_reported
        for key in before.keys() | now.keys():
            was, is_now = before.get(key, False), now.get(key, False)
            if was == is_now or (key not in before and not is_now):
                continue
            ivr_name, port = key
            status: LinkStatusName = "OK" if is_now else "Unavailable"
            for session in self._v4_sessions(ivr_name):
                assert session.login is not None
                self._send(
                    session,
                    session.login.call_id,
                    m.MonitorInfo(Port=m.Port(PortNum=port, Status=status)),
                )
        self._ports_reported = now

    # ------------------------------------------------------------------ configuration

    def _apply_switches(self, config: ServerConfig) -> tuple[list[str], list[str]]:
        added: list[str] = []
        removed: list[str] = []
        wanted = {s.name: s for s in config.switches}
        for name in list(self.switches):
            if name not in wanted:
                switch = self.switches.pop(name)
                switch.disconnect_link()
                self._pump_one(switch)
                removed.append(name)
        for name, sc in wanted.items():
            dns = [(dn.number, DnType(dn.type.value)) for dn in sc.dns]
            tserver = config.tserver_for_switch(name)
            existing = self.switches.get(name)
            if existing is None:
                switch = VirtualSwitch(
                    name,
                    tserver.name if tserver else "",
                    dns,
                    first_conn_id=(self._id_seed << 24) + 1,
                    first_call_id=1,
                )
                self.switches[name] = switch
                added.append(name)
            else:
                switch = existing
                switch.update_dns(dns)
            if tserver is not None:
                switch.connect_link()  # In-Front: the virtual switch is this process
            else:
                switch.disconnect_link()
        return added, removed

    def _pump_one(self, switch: VirtualSwitch) -> None:
        for event in switch.drain_events():
            if type(event) in _AGENT_STATUS_OF_EVENT:
                self._on_agent_event(switch.name, event, None)

    def _index_ports(self, config: ServerConfig) -> None:
        self._routing_points = frozenset(
            dn.number
            for switch in config.switches
            for dn in switch.dns
            if dn.type.value == DnType.ROUTING_POINT.value
        )
        targets: dict[str, dict[str, PortTarget]] = {}
        for ivr in config.ivrs:
            ports = targets[ivr.name] = {}
            for port in ivr.ports:
                with contextlib.suppress(_NoPort):
                    ports[port.number] = self._resolve_port(ivr.name, port.number)
        self._targets = targets
        index: dict[tuple[str, str], PortKey] = {}
        for ivr in config.ivrs:
            for port in ivr.ports:
                switch = config.port_switch_name(ivr, port)
                if switch is not None:
                    index[(switch, port.dn)] = (ivr.name, port.number)
        self._port_of_dn = index

    def _auto_login(self) -> None:
        """LegacyMode IVRs: log in the agents of their ports' [AutoLogin] settings."""
        for ivr in self.config.ivrs:
            if not ivr.legacy_mode:
                continue
            for port in ivr.ports:
                auto = port.auto_login
                target = self.config.port_dn(ivr, port)
                if target is None:
                    continue
                switch = self.switches.get(target[0].name)
                if switch is None or not switch.link_up:
                    continue
                snapshot = switch.dn(target[1].number)
                agent = snapshot.agent if snapshot is not None else None
                usable = self._port_usable(ivr, port)
                if auto is None or not auto.set_logged_in or not usable:
                    if agent is not None and agent.agent_id is not None and not usable:
                        switch.request(
                            TAgentLogout(
                                reference_id=next(self._refs), dn=target[1].number, queue=None
                            )
                        )
                    continue
                if agent is None or agent.agent_id is None:
                    switch.request(
                        TAgentLogin(
                            reference_id=next(self._refs),
                            dn=target[1].number,
                            queue=auto.queue,
                            agent_id=auto.agent_id,
                            password=auto.password,
                            work_mode=WorkMode.AUTO_IN if auto.set_ready else WorkMode.UNKNOWN,
                        )
                    )
        self._pump()

    def reload(
        self, config: ServerConfig, *, force: bool = False, now: float | None = None
    ) -> ReloadReport:
        """Switch to a new, already validated configuration without dropping anyone.

        A configuration that would take away the IVR, port, switch, DN, T-Server or routing
        point of a live call (an emptied file, say) raises :class:`ReloadRefused` and changes
        nothing, unless ``force``: then those calls are ended first, as their Call Timeout would
        end them (``EndCall EndCause='Timeout'`` to the IVR, the call released on the switch,
        the port freed).
        """
        if now is not None:
            self.now = now
        stranded = stranded_calls(self.calls.calls.values(), config)
        if stranded:
            if not force:
                raise ReloadRefused(stranded)
            for item in stranded:
                self.calls.end_by_operator(item.call_id, self.now)
            self._pump()
        old_flow = self.flow_control
        old_ports = self._ports_reported
        old_index = self._port_of_dn
        changes = describe_changes(self.config, config)
        self.config = config
        self.calls.reconfigure(_call_settings(config))
        self.stats.reconfigure(config)
        # calls in a routing dialog at this moment get the router timeout's default answer
        self.routers = build_routers(config, self._next_router_ref)
        added, removed = self._apply_switches(config)
        self._index_ports(config)
        new_index = self._port_of_dn
        self._port_of_dn = {**old_index, **new_index}  # events of removed DNs find their port
        self._pump()
        self._port_of_dn = new_index
        self._report_topology()
        self._auto_login()
        self.flow_control = config.server.flow_control or self.stopping
        if self.flow_control != old_flow:
            self._broadcast_flow_control()
        now_ports = self._ports_reported
        report = ReloadReport(
            ports_unavailable=sum(1 for k, v in old_ports.items() if v and not now_ports.get(k)),
            ports_available=sum(1 for k, v in now_ports.items() if v and not old_ports.get(k)),
            switches_added=tuple(added),
            switches_removed=tuple(removed),
            flow_control_changed=self.flow_control != old_flow,
            calls_stranded=len(stranded),
            stranded=stranded,
            changes=changes,
        )
        log.info("configuration reloaded: %s", report.describe())
        return report

    def set_flow_control(self, on: bool) -> None:
        """Drain (``on``) or resume the server; every 4.0 session hears about a change. A
        stopping server stays drained."""
        on = on or self.stopping
        if on != self.flow_control:
            self.flow_control = on
            self._broadcast_flow_control()

    # ------------------------------------------------------------------ stopping

    def begin_stop(self, now: float) -> None:
        """The server is stopping (SIGTERM): from now on it admits no new call. Every 4.0
        session is told ``FlowControl Status='On'`` (PROTOCOL.md §3.1.3: start no new calls here,
        the calls already started continue), and every session subscribed with
        ``ServerMonitor='set'`` ``MonitorInfo/Server Status='Unavailable'`` for each T-Server it
        was told about (§3.2.1: the T-Server is going away). ``NewCall``, ``MakeCall`` and
        ``DialOutInit`` get ``EndCall EndCause='ServerPaused'``, as under flow control. The calls
        in progress are served as before until :meth:`end_calls`."""
        self.now = now
        self.stopping = True
        self.set_flow_control(True)
        for session in list(self.sessions.values()):
            self._report_servers(session)

    def calls_in_hand(self) -> int:
        """Calls in progress that a connected session can still end (an orphan's IVR cannot log
        in again once the server stops accepting: waiting for it is pointless)."""
        return sum(1 for call in self.calls.calls.values() if call.owner is not None)

    def end_calls(self, now: float) -> int:
        """End every call in progress on the server's side, as its Call Timeout would
        (``EndCall EndCause='Timeout'`` to its IVR, released on the switch, the port freed);
        how many there were. The end of a stop's drain time."""
        self.now = now
        call_ids = list(self.calls.calls)
        for call_id in call_ids:
            self.calls.end_by_operator(call_id, now)
        self._pump()
        self._log_refusal_summaries(self.refusal_log.take_due(now, everything=True))
        return len(call_ids)

    def _broadcast_flow_control(self) -> None:
        status: Literal["On", "Off"] = "On" if self.flow_control else "Off"
        for session in list(self.sessions.values()):
            login = session.login
            if login is not None and login.version == "4.0":
                self._send(session, login.call_id, m.FlowControl(Status=status))

    def set_link(self, switch_name: str, up: bool) -> None:
        """Bring a switch's T-Server link up or down (maintenance, tests)."""
        switch = self.switches[switch_name]
        if up:
            switch.connect_link()
        else:
            switch.disconnect_link()
        self._pump()
        if up:
            self._auto_login()

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next run (``None``: no timer runs)."""
        deadline = earliest(self.calls.next_deadline(), self.outbound.next_deadline())
        return earliest(deadline, self.refusal_log.next_deadline())

    def handle_timer(self, now: float) -> None:
        """Run the timers that are due."""
        self.now = now
        self.calls.handle_timer(now)
        self.outbound.handle_timer(now)
        self._pump()
        if self.refusal_log.pending:
            self._log_refusal_summaries(self.refusal_log.take_due(now))


class _NoPort(Exception):
    """Why a port cannot take a call (the mode procedure failed); its text is the reason."""


def _log_id(call_id: str | None) -> str:
    """A CallId for a log line: quoted, cut after 64 characters."""
    if call_id is None:
        return "none"
    return repr(call_id) if len(call_id) <= 64 else f"{call_id[:64]!r}... ({len(call_id)} chars)"


_ECHOED: Final[dict[str, tuple[str, ...]]] = {
    tag: names
    for tag, spec in m.SPECS.items()
    if (
        names := tuple(a.name for a in spec.attrs if a.name == "ReqId")
        + tuple(c.name for c in spec.children if c.name == "RequestId" and c.kind == "text")
        + {"NewCall": ("ANI", "DNIS", "CalledNum"), "DialOutInit": ("CalledNum",)}.get(spec.tag, ())
    )
}
"""Per message, the fields (other than the CallId) that a reply or a later
``CallInfoResp`` writes back: ``ReqId``, ``RequestId``, a new call's ``ANI``, ``DNIS`` and
``CalledNum``. Each must fit ``MAX_ECHOED`` bytes written (issue 19)."""

_NEVER_ANSWERED: Final = frozenset({"LogMsg", "Reset"})
"""Messages never answered, whatever their CallId (PROTOCOL.md §9.4.3): nothing to echo."""


def _check_echoed(call_id: str | None, message: Message, echoed: tuple[str, ...] | None) -> None:
    """Refuse (:func:`too_long`) a request carrying a CallId, ReqId, RequestId, ANI... that a reply
    could not echo within ``MAX_ECHOED`` bytes. The caller only calls for messages that have such
    fields or a CallId longer than ``ECHO_ALWAYS_FITS`` characters; fields as short as that are
    not measured."""
    if (
        call_id is not None
        and len(call_id) > ECHO_ALWAYS_FITS
        and message.tag not in _NEVER_ANSWERED
    ):
        size = text_size(call_id)
        if size > MAX_ECHOED:
            raise too_long(call_id, message, "CallId", size)
    if echoed is not None:
        for name in echoed:
            value = getattr(message, name)
            if value is not None and len(value) > ECHO_ALWAYS_FITS:
                size = text_size(value)
                if size > MAX_ECHOED:
                    raise too_long(call_id, message, name, size)


def _ctx(session: Session, call_id: str | None = None) -> dict[str, Any]:
    """Log fields of a line about ``session`` (and a call; a CallId too long to echo is cut)."""
    if call_id is not None and len(call_id) > ECHO_ALWAYS_FITS:
        call_id = fit_echo(call_id)
    return fields(session=session.id, peer=session.peer, ivr=session.ivr_name, call_id=call_id)


def _log_logmsg_drops(session: Session, dropped: int) -> None:
    log.warning(
        "session %d: %d LogMsg dropped (rate limit)",
        session.id,
        dropped,
        extra=_ctx(session, None),
    )


def _count(n: int, noun: str) -> str:
    """``1 port``, ``3 ports``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _end(call_id: str | None, cause: Any, reason: str) -> Refusal:
    """``EndCall EndCause=<cause>`` on a new call's CallId (the call does not exist afterwards)."""
    return Refusal(call_id, m.EndCall(EndCause=cause), reason)


def _call_settings(config: ServerConfig) -> CallSettings:
    timers = config.server.timers
    return CallSettings(
        router_timeout=timers.router_timeout,
        call_timeout=timers.call_timeout,
        wait_for_ringing=timers.wait_for_ringing,
        orphan_call_timeout=timers.orphan_call_timeout,
        active_release=config.server.active_release,
    )
