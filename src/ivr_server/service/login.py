"""Sessions: a connection opened and closed, its login (``LoginReq``), ``LogMsg``, ``Reset``, and
``FlowControl`` (told at a 4.0 login and at every change).

Theory of operation. A session is one IVR connection (sessions.py). ``LoginReq`` names its IVR and
protocol version (2.0-4.0; DECISIONS.md: none is 2.0); the answer's ``Status`` says whether every
T-Server of the IVR is up. A re-login replaces the previous login. A session that logs in as an IVR
whose calls lost their session adopts them (DECISIONS.md). A closing session's calls pass to
another session of the same IVR, or wait for ``orphan-call-timeout``. ``LogMsg`` texts go to the
``ivr_server.service.ivr`` log, rate-limited per session (``logmsg-rate``).
"""

from __future__ import annotations

import logging
from typing import Final, Literal

from ivr_server.logs import fields
from ivr_server.service.context import ServiceContext, log_ctx
from ivr_server.service.monitoring import Monitoring
from ivr_server.service.notices import SessionClosed, SessionLoggedIn, SessionOpened
from ivr_server.service.sessions import (
    SUPPORTED_VERSIONS,
    Login,
    LoginStatus,
    LogMsgBudget,
    Session,
)
from ivr_server.session import IvrLink
from ivr_server.wire import messages as m
from ivr_server.wire import str_node

__all__ = ["Sessions"]

log = logging.getLogger("ivr_server.service")

_LOG_LEVELS: Final = {"Standard": logging.INFO, "Trace": logging.DEBUG, "Debug": logging.DEBUG}
"""LogMsg ``MsgType`` -> server log level."""

_ivr_log: Final = logging.getLogger("ivr_server.service.ivr")
"""Where IVRs' LogMsg texts are logged."""

_LOGMSG_SUMMARY_S: Final = 10.0
"""While a session's LogMsgs are dropped for its rate limit, one line sums them up this often."""


class Sessions:
    """Opening, login, LogMsg, Reset, FlowControl and closing (see the module docstring)."""

    def __init__(self, ctx: ServiceContext, monitoring: Monitoring) -> None:
        self.ctx = ctx
        self._monitoring = monitoring
        self._session_ids = 1

    def open(self, peer: str, link: IvrLink, now: float) -> Session:
        """Register a new connection."""
        ctx = self.ctx
        link.dtd_file = ctx.config.server.dtd_file
        link.encoding = ctx.config.server.output_encoding
        session = Session(id=self._session_ids, peer=peer, link=link, opened_at=now)
        self._session_ids += 1
        ctx.sessions[session.id] = session
        ctx.metrics.sessions_opened += 1
        if ctx.listeners:
            ctx.notify(SessionOpened(switch="", session=session.id, peer=peer))
        log.info("session %d opened from %s", session.id, peer, extra=log_ctx(session, None))
        return session

    def close(self, session: Session, reason: str) -> None:
        """Forget a connection. Its registrations go with it; its calls stay, passed to another
        session of the same IVR or kept for ``orphan-call-timeout`` (DECISIONS.md)."""
        ctx = self.ctx
        if ctx.sessions.pop(session.id, None) is None:
            return
        ctx.metrics.sessions_closed += 1
        if ctx.listeners:
            ctx.notify(
                SessionClosed(
                    switch="",
                    session=session.id,
                    peer=session.peer,
                    ivr=session.ivr_name,
                    reason=reason,
                )
            )
        ctx.dirty.pop(session, None)
        ivr = session.ivr_name
        successor = next(
            (s for s in ctx.sessions.values() if ivr is not None and s.ivr_name == ivr), None
        )
        ctx.calls.owner_gone(session, successor, ctx.now)
        ctx.outbound.session_closed(session)
        ctx.pump()
        if session.logmsg_budget is not None and session.logmsg_budget.dropped:
            _log_logmsg_drops(session, session.logmsg_budget.take_dropped())
        log.info(
            "session %d from %s closed: %s",
            session.id,
            session.peer,
            reason,
            extra=log_ctx(session, None),
        )

    def on_login_req(self, session: Session, call_id: str | None, msg: m.LoginReq) -> None:
        ctx = self.ctx
        cfg = ctx.config.server
        if call_id is None:  # the codec guarantees form A; keep mypy and readers sure
            return
        version = msg.Version or "2.0"  # DECISIONS.md: a LoginReq without Version is 2.0
        if version not in SUPPORTED_VERSIONS:
            session.login = None
            ctx.metrics.logins["InvalidProtocolVer"] += 1
            ctx.send(
                session,
                call_id,
                m.LoginResp(IServerVer=cfg.version_string, Result="InvalidProtocolVer"),
            )
            log.info(
                "session %d: login refused, version %s",
                session.id,
                version,
                extra=log_ctx(session, call_id),
            )
            return
        ivr = ctx.config.ivr(msg.ClientName)
        if ivr is None:
            status = LoginStatus.NO_SUCH_CLIENT
        elif not all(ctx.tserver_up(name) for name in ivr.tservers):
            status = LoginStatus.INIT_IN_PROGRESS
        else:
            status = LoginStatus.OK
        ctx.metrics.logins[status.value] += 1
        if ctx.listeners:
            ctx.notify(
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
        mark = len(ctx.unsent)
        ctx.send(
            session,
            call_id,
            m.LoginResp(
                IServerVer=cfg.version_string,
                Result="Success",
                Status=status.value if msg.ReportStatus == "true" else None,
                ConfigOptions=options,
            ),
        )
        if len(ctx.unsent) > mark:  # too long to send (configuration): no login happened
            session.login, session.link.encoding = previous, previous_encoding
            return
        log.info(
            "session %d logged in as %r (version %s, status %s, monitor %s)",
            session.id,
            msg.ClientName,
            version,
            status.value,
            "set" if monitor else "clear",
            extra=log_ctx(session, call_id),
        )
        if version == "4.0":
            ctx.send(session, call_id, m.FlowControl(Status="On" if ctx.flow_control else "Off"))
        session.servers_reported = {}
        if monitor:
            self._monitoring.report_servers(session)
        if ivr is not None:
            adopted = ctx.calls.adopt(ivr.name, session)
            if adopted:
                log.info(
                    "session %d continues %d call(s) of %s",
                    session.id,
                    adopted,
                    ivr.name,
                    extra=log_ctx(session, call_id),
                )

    def on_log_msg(self, session: Session, call_id: str | None, msg: m.LogMsg) -> None:
        level = _LOG_LEVELS.get(msg.MsgType, logging.INFO)
        if not _ivr_log.isEnabledFor(level):
            return
        ctx = self.ctx
        server = ctx.config.server
        if server.logmsg_rate > 0:
            budget = session.logmsg_budget
            if budget is None:
                budget = session.logmsg_budget = LogMsgBudget(server.logmsg_burst, ctx.now)
            admitted = budget.admit(ctx.now, server.logmsg_rate, server.logmsg_burst)
            if not admitted:
                ctx.metrics.logmsg_dropped["rate_limit"] += 1
                if budget.drop(ctx.now):
                    log.warning(
                        "session %d: LogMsg over the rate limit (%g/s, burst %d): the excess is "
                        "dropped, and counted every %g s",
                        session.id,
                        server.logmsg_rate,
                        server.logmsg_burst,
                        _LOGMSG_SUMMARY_S,
                        extra=log_ctx(session, None),
                    )
            dropped = budget.summary_due(ctx.now, _LOGMSG_SUMMARY_S)
            if dropped > 0:
                _log_logmsg_drops(session, dropped)
            if not admitted:
                return
        text = msg.Msg
        cap = server.logmsg_max_length
        if 0 < cap < len(text):
            text = f"{text[:cap]}... [LogMsg cut: {len(text)} characters in all]"
            ctx.metrics.logmsg_truncated += 1
        call = (
            ctx.calls.calls.get(ctx.calls.key(session.ivr_name, session, call_id))
            if call_id is not None
            else None
        )
        _ivr_log.log(
            level,
            "%s",
            text,
            extra={
                **log_ctx(session, call_id),
                **fields(ivr_level=msg.MsgType, conn_id=call.conn_id if call else None),
            },
        )

    def on_reset(self, session: Session, call_id: str | None, msg: m.Reset) -> None:
        log.info(
            "session %d: Reset on CallId %s ignored (reserved)",
            session.id,
            call_id,
            extra=log_ctx(session, call_id),
        )

    # ------------------------------------------------------------------ flow control

    def set_flow_control(self, on: bool) -> None:
        """Drain (``on``) or resume the server; every 4.0 session hears about a change. A
        stopping server stays drained."""
        ctx = self.ctx
        on = on or ctx.stopping
        if on != ctx.flow_control:
            ctx.flow_control = on
            self.broadcast_flow_control()

    def broadcast_flow_control(self) -> None:
        ctx = self.ctx
        status: Literal["On", "Off"] = "On" if ctx.flow_control else "Off"
        for session in list(ctx.sessions.values()):
            login = session.login
            if login is not None and login.version == "4.0":
                ctx.send(session, login.call_id, m.FlowControl(Status=status))


def _log_logmsg_drops(session: Session, dropped: int) -> None:
    log.warning(
        "session %d: %d LogMsg dropped (rate limit)",
        session.id,
        dropped,
        extra=log_ctx(session, None),
    )
