"""Calls admission: NewCall, MakeCall and DialOutInit let in or refused, the IVR's CallStatus, and
the switch's call events to the call manager.

Theory of operation. A new call is admitted on the port its CalledNum (or OrigNum) names through
the mode procedure (ports.py; failure: ``EndCall EndCause='FeatureNotSupported'``), and refused
with ``EndCall EndCause='ServerPaused'`` under flow control, a stop, or a T-Server link down.
A ``NewCall`` whose CalledNum names a routing DN of an In-Front switch is a Network call (step 1
of the procedure, before any login is asked for: login is optional in Network mode, G23): it is
taken when the routing DN has a live router (:func:`has_router`, G19), else ``EndCall
FeatureNotSupported``; flow control does not pause Network calls (no FlowControl is sent to a
network IVR, N-a), a stop or the link down does.
Admission is all or nothing: a call whose start fails, or whose first documents cannot be sent,
is removed again at once, released on the switch, its port free (:meth:`Admission.undo_start`);
the request then gets its error answer from ``IvrService.handle``. What happens to a call once
admitted is the call manager's (``ivr_server.calls``); this family hands it the switch's call
events and the failures of its requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ivr_server.calls import PortTarget
from ivr_server.calls.replies import (
    LINK_DOWN,
    UNSUP_OPER,
    Refusal,
    before_login,
    invalid_request,
    unsupported,
)
from ivr_server.outbound import DialOutOutcome
from ivr_server.routing import routing_point_live
from ivr_server.service.bus import Origin, SwitchEventBus
from ivr_server.service.context import ServiceContext, end
from ivr_server.service.ports import NoPort, resolve_port
from ivr_server.service.sessions import Login, Session
from ivr_server.switch import CallEvent, EventError, Switch
from ivr_server.wire import messages as m

__all__ = ["Admission", "has_router"]


def has_router(ctx: ServiceContext, switch: Switch, dn: str) -> bool:
    """Does routing DN ``dn`` of ``switch`` have a router now, so that a Network call may wait
    there (MODES-AND-HA G19: "registered by a router")? The configured rules for it, an
    operator's choice (``PUT .../router``) of a router that is live (an external router whose
    client was heard of lately, a webhook that answers): :func:`~ivr_server.routing.
    routing_point_live`. ``none``, or no rules and no choice: no router."""
    return routing_point_live(ctx.routers.get(switch.name), dn, ctx.now)


class Admission:
    """New calls in, and the call manager's share of the switch events."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def subscribe(self, bus: SwitchEventBus) -> None:
        bus.subscribe(CallEvent, self._on_call_event)
        bus.subscribe(EventError, self._on_error)

    def _on_call_event(self, switch: Switch, event: Any, origin: Origin | None) -> bool:
        ctx = self.ctx
        ctx.calls.on_event(event, ctx.now)
        return True

    def _on_error(self, switch: Switch, event: EventError, origin: Origin | None) -> bool:
        """A call's request failed: the call manager's (others: agent control's)."""
        ctx = self.ctx
        if ctx.calls.awaits(event.reference_id):
            ctx.calls.on_event(event, ctx.now)
            return True
        return False

    # ------------------------------------------------------------------ requests

    def on_ivr_call_status(self, session: Session, call_id: str | None, msg: m.CallStatus) -> None:
        ctx = self.ctx
        login = ctx.require_login(session, call_id, msg)
        ctx.calls.ivr_call_status(session, login.client_name, call_id, msg, ctx.now)
        ctx.pump()

    def on_new_call(self, session: Session, call_id: str | None, msg: m.NewCall) -> None:
        ctx = self.ctx
        network = ctx.ports.network_point(msg.CalledNum)
        if network is not None:
            self._new_network_call(session, call_id, msg, *network)
            return
        login, call_id = self._new_call_id(session, call_id, msg)
        target = self.mode(login, call_id, msg.tag, msg.CalledNum)
        if msg.CallControlMode == "Genesys":
            raise end(call_id, "FeatureNotSupported", "CallControlMode Genesys is Network only")
        if ctx.flow_control or not target.switch.view.link_up:
            raise end(call_id, "ServerPaused", ctx.paused_reason())
        if ctx.peers is not None:  # active mode (issue 25): the port's call may be elsewhere
            ctx.peers.check_port(call_id, target.ivr, target.port, msg.tag)
        key = ctx.calls.key(target.ivr, session, call_id)
        self._start(
            call_id, key, lambda: ctx.calls.new_call(session, call_id, msg, target, ctx.now)
        )
        for hook in ctx.call_started:
            hook(key, msg)

    def _new_network_call(
        self, session: Session, call_id: str | None, msg: m.NewCall, dn: str, switch: Switch
    ) -> None:
        """A Network call at routing DN ``dn`` (PROTOCOL.md §6.3 N1, N2, N4). Its owner is the
        session; one that never logged in has no IVR (G23: ``Call.ivr`` empty, no adoption)."""
        ctx = self.ctx
        if call_id is None:  # a form-A document: the codec requires a CallId
            raise before_login(call_id, msg)
        login = session.login
        if ctx.calls.is_active(ctx.calls.key(session.ivr_name, session, call_id)) or (
            login is not None and call_id == login.call_id
        ):
            raise invalid_request(call_id, f"NewCall: CallId {call_id!r} is already active")
        if not has_router(ctx, switch, dn):
            raise end(call_id, "FeatureNotSupported", f"NewCall: routing DN {dn} has no router")
        if ctx.stopping or not switch.view.link_up:
            raise end(call_id, "ServerPaused", ctx.paused_reason())
        ivr_name = session.ivr_name
        ivr = ctx.config.ivr(ivr_name) if ivr_name is not None else None
        encoding = ivr.output_encoding if ivr is not None else None
        target = PortTarget(
            ivr=ivr_name or "",
            port=msg.CalledNum,
            dn=dn,
            switch=switch,
            mode="Network",
            encoding=encoding or ctx.config.server.output_encoding,
        )
        key = ctx.calls.key(target.ivr, session, call_id)
        self._start(
            call_id, key, lambda: ctx.calls.new_call(session, call_id, msg, target, ctx.now)
        )
        for hook in ctx.call_started:
            hook(key, msg)

    def _start(self, call_id: str, key: str, start: Callable[[], None]) -> None:
        """Run ``start`` (a new call handed to the call manager) all or nothing: a failure, or
        a first document that could not be sent, removes the call again (:meth:`undo_start`)."""
        ctx = self.ctx
        mark = len(ctx.unsent)
        try:
            start()
            ctx.pump()
        except Exception:
            self.undo_start(call_id, key, mark, failed=True)
            raise
        if len(ctx.unsent) > mark:
            self.undo_start(call_id, key, mark)

    def _new_call_id(
        self, session: Session, call_id: str | None, msg: m.NewCall | m.MakeCall | m.DialOutInit
    ) -> tuple[Login, str]:
        """The session's login and the CallId of a new call, which no call of its IVR and not
        its own session uses (CallIds are unique per IVR: another IVR's are none of its
        business, docs/decisions.md)."""
        ctx = self.ctx
        login = ctx.require_login(session, call_id, msg)
        assert call_id is not None  # a form-A document: the codec requires a CallId
        if ctx.calls.is_active(ctx.calls.key(login.client_name, session, call_id)) or (
            call_id == login.call_id
        ):
            raise invalid_request(call_id, f"{msg.tag}: CallId {call_id!r} is already active")
        return login, call_id

    def undo_start(self, call_id: str, key: str, mark: int, failed: bool = False) -> None:
        """A call just admitted (NewCall, DialOutInit) whose start failed, or a document about it
        (its first ``CallStatus``) could not be sent since ``unsent`` had ``mark`` entries: the
        call is removed again, released on the switch, its port free at once. A request is fully
        admitted, every reply it implies delivered, or refused with nothing left behind; the
        request's answer follows in ``IvrService.handle``."""
        ctx = self.ctx
        if not failed and all(entry[1] != call_id for entry in ctx.unsent[mark:]):
            return
        if ctx.calls.discard(key):
            ctx.removed.append(call_id)
            ctx.pump()

    def on_make_call(self, session: Session, call_id: str | None, msg: m.MakeCall) -> None:
        """A new call placed by the port of ``OrigNum`` (MODES-AND-HA B4): a ``Location``
        (another site) is ``UNSUP_OPER`` (G11); the switch's link down ``LINK_DOWN`` (G13);
        flow control ``EndCall ServerPaused`` as for a ``NewCall``."""
        ctx = self.ctx
        if ctx.ports.network_point(msg.OrigNum) is not None:  # G20: only Unknown in Network
            raise unsupported(call_id, f"MakeCall from routing DN {msg.OrigNum}: Network mode")
        login, call_id = self._new_call_id(session, call_id, msg)
        target = self.mode(login, call_id, msg.tag, msg.OrigNum)
        if msg.Location:
            raise Refusal(
                call_id,
                m.CallError(FailedReq="MakeCall", TlibErrCode=UNSUP_OPER),
                f"MakeCall to Location {msg.Location!r}: no remote site",
            )
        if ctx.flow_control:
            raise end(call_id, "ServerPaused", ctx.paused_reason())
        if ctx.peers is not None:  # active mode (issue 25): the port's call may be elsewhere
            ctx.peers.check_port(call_id, target.ivr, target.port, msg.tag)
        if not target.switch.view.link_up:
            raise Refusal(
                call_id,
                m.CallError(FailedReq="MakeCall", TlibErrCode=LINK_DOWN),
                f"MakeCall: the link to {target.switch.name} is down",
            )
        key = ctx.calls.key(target.ivr, session, call_id)
        self._start(
            call_id, key, lambda: ctx.calls.make_call(session, call_id, msg, target, ctx.now)
        )

    def on_dial_out_init(self, session: Session, call_id: str | None, msg: m.DialOutInit) -> None:
        ctx = self.ctx
        login, call_id = self._new_call_id(session, call_id, msg)
        request = ctx.outbound.take_init(session, msg.RefID)
        if request is None:  # unknown, expired, or sent to another session (PROTOCOL.md §3.10.5)
            raise end(call_id, "FeatureNotSupported", f"DialOutInit for unknown RefID {msg.RefID}")
        mark = len(ctx.unsent)
        key = ctx.calls.key(login.client_name, session, call_id)
        try:
            target = self.mode(login, call_id, msg.tag, msg.CalledNum)
            if ctx.flow_control or not target.switch.view.link_up:
                raise end(call_id, "ServerPaused", ctx.paused_reason())
            if ctx.peers is not None:  # active mode (issue 25): the port's call may be elsewhere
                ctx.peers.check_port(call_id, target.ivr, target.port, msg.tag)
            ctx.calls.dial_out_init(
                session, call_id, msg, target, request, request.dest, request.user_data, ctx.now
            )
        except Refusal as refusal:
            ctx.outbound.notify(
                request,
                DialOutOutcome("failed", request.ref_id, call_id=call_id, cause=refusal.kind),
            )
            raise
        except Exception:
            self.undo_start(call_id, key, mark, failed=True)
            raise
        try:
            ctx.pump()
        except Exception:
            self.undo_start(call_id, key, mark, failed=True)
            raise
        if len(ctx.unsent) > mark:
            self.undo_start(call_id, key, mark)

    def mode(self, login: Login, call_id: str, tag: str, key: str) -> PortTarget:
        """The mode procedure of PROTOCOL.md §5.2 for a new call; failure -> EndCall. Every
        port's target is worked out when the configuration is loaded (the hot path of NewCall);
        a port not in that table is resolved again, to say why it cannot take the call."""
        ctx = self.ctx
        ports = ctx.ports
        targets = ports.targets.get(login.client_name)
        cached = targets.get(key) if targets is not None else None
        if cached is not None:
            return cached
        try:
            return resolve_port(
                ctx.config, ctx.switches, ports.routing_points, login.client_name, key
            )
        except NoPort as problem:
            raise end(call_id, "FeatureNotSupported", f"{tag}: {problem}") from None
