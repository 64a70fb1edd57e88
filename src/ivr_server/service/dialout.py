"""Dial-out: DialOutRegistry and DialOutError from IVRs, and predictive calls asked from outside.

Theory of operation. An IVR session registers the routing points it dials out from
(``DialOutRegistry``, PROTOCOL.md §3.10). A predictive call (the original's
TMakePredictiveCall, asked through the API: :meth:`DialOut.dial_out`) goes as ``DialOut`` to the
earliest session that registered its routing point; that session answers ``DialOutInit`` on a
new CallId (admitted in admission.py) or ``DialOutError``. Every outcome goes to the requester
and the event stream (:meth:`DialOut.report`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ivr_server.calls.replies import invalid_request
from ivr_server.logs import fields
from ivr_server.outbound import DialOutOutcome, DialOutRequest
from ivr_server.service.context import ServiceContext, log_ctx
from ivr_server.service.notices import DialOutProgress
from ivr_server.service.sessions import Session
from ivr_server.wire import KvList
from ivr_server.wire import messages as m

__all__ = ["DialOut"]

log = logging.getLogger("ivr_server.service")


class DialOut:
    """DialOut registrations and predictive calls (see the module docstring)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def on_dial_out_registry(
        self, session: Session, call_id: str | None, msg: m.DialOutRegistry
    ) -> None:
        ctx = self.ctx
        login = session.login
        if login is None or not login.known_client or call_id != login.call_id:
            raise invalid_request(call_id, "DialOutRegistry outside the session CallId")
        if msg.Command == "RemoveAll":
            ctx.outbound.unregister(session)
        elif msg.DN is None:
            raise invalid_request(call_id, f"DialOutRegistry {msg.Command} without DN")
        elif msg.Command == "Remove":
            ctx.outbound.unregister(session, msg.DN)
        else:
            if msg.DN not in ctx.ports.routing_points:
                ctx.send(session, call_id, m.DialOutRegistryResp(Result="ConfigError"))
                return
            ctx.outbound.register(session, msg.DN)
        ctx.send(session, call_id, m.DialOutRegistryResp(Result="Success"))

    def on_dial_out_error(self, session: Session, call_id: str | None, msg: m.DialOutError) -> None:
        if self.ctx.outbound.on_error(session, msg) is None:
            log.info(
                "session %d: DialOutError %s for unknown RefID %s ignored",
                session.id,
                msg.Error,
                msg.RefID,
                extra=log_ctx(session, call_id),
            )

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
        """A predictive call on routing point ``orig_dn`` (``IvrService.dial_out``)."""
        ctx = self.ctx
        request = ctx.outbound.request(
            requester,
            orig_dn,
            dest,
            ctx.now,
            timeout=timeout,
            user_data=user_data,
            extensions=extensions,
        )
        if request is None:
            return None
        session = request.session
        assert isinstance(session, Session)
        mark = len(ctx.unsent)
        ctx.send(session, None, request.dial_out())
        if len(ctx.unsent) > mark:  # its user data or extensions make it too long to send
            ctx.outbound.take_init(session, request.ref_id)
            ctx.outbound.notify(
                request, DialOutOutcome("failed", request.ref_id, cause="DocumentTooLarge")
            )
            return request
        log.info(
            "DialOut %s: %s -> %s via session %d",
            request.ref_id,
            orig_dn,
            dest,
            session.id,
            extra=log_ctx(session, None),
        )
        return request

    def report(self, request: DialOutRequest, outcome: DialOutOutcome) -> None:
        """An outcome of ``request``: logged, to the event stream and to its requester."""
        log.info("DialOut %s: %s", request.ref_id, outcome, extra=fields(call_id=outcome.call_id))
        ctx = self.ctx
        if ctx.listeners:
            ctx.notify(
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

    def report_from_call(self, request: Any, kind: str, call_id: str, cause: str | None) -> None:
        """The call manager's word on a dial-out call (dialing, established, failed, ended)."""
        if isinstance(request, DialOutRequest):
            self.ctx.outbound.notify(
                request,
                DialOutOutcome(kind, request.ref_id, call_id=call_id, cause=cause),  # type: ignore[arg-type]
            )
