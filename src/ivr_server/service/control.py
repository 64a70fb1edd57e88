"""Operator actions on the running service, sans-IO: what the HTTP API's act endpoints do.

Theory of operation. :class:`Control` wraps one :class:`~ivr_server.service.IvrService` and
offers one method per action (attach user data, release a call, route a waiting call, agent
login...). An action first looks everything up and raises :class:`NotFound` or
:class:`Conflict` before it changes anything; then it sends the switch T-Library requests with
ReferenceIDs of its own, drains the switches (:meth:`Control.pump`: the same fan-out as after an
IVR message, so the IVR sessions get what the action caused), and returns an :class:`ActResult`:
every switch event the action caused, in order, and the switch's ``EventError`` if it refused the
action's own request (then nothing changed). The caller writes out the sessions afterwards
(``IvrServer.flush()``).

Every act of the HTTP API on the service, its switches and its calls comes through here: the
switch requests above, a caller's hang-up (:meth:`Control.release`), ending a call
(:meth:`Control.end_call`), a link's state (:meth:`Control.set_link`), a predictive call
(:meth:`Control.dial_out`) and the router chosen per routing point at run time
(:meth:`Control.set_router`, kept by :class:`~ivr_server.service.router_choice.RouterChoices`).

No clock is read here: every action takes ``now`` (the event loop's time), which becomes the
service's clock for the action, as an IVR message's arrival time does.
"""

from __future__ import annotations

__all__ = [
    "ActResult",
    "Conflict",
    "Control",
    "ControlError",
    "NotFound",
    "RouterChoice",
    "RouterMode",
]

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ivr_server.calls import Call
from ivr_server.calls.timeline import Entry
from ivr_server.errors import LocalProtocolError
from ivr_server.outbound import DialOutOutcome, DialOutRequest
from ivr_server.routing import ExternalRouter, Router
from ivr_server.service import IvrService
from ivr_server.service.router_choice import RouterChoice, RouterChoices, RouterMode
from ivr_server.switch import (
    EventError,
    RouteType,
    Switch,
    SwitchEvent,
    SwitchRequest,
    TAgentLogin,
    TAgentLogout,
    TAgentSetNotReady,
    TAgentSetReady,
    TApplyTreatment,
    TAttachUserData,
    TDeleteAllUserData,
    TDeleteUserData,
    TRouteCall,
    TUpdateUserData,
    WorkMode,
)
from ivr_server.switch.references import CONTROL, ReferenceIds
from ivr_server.vocabulary import ROUTABLE_DN_TYPES
from ivr_server.wire import KvList

log = logging.getLogger("ivr_server.control")


class ControlError(LocalProtocolError):
    """An action that cannot be carried out; nothing was changed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(ControlError):
    """The action names something that does not exist (switch, DN, routing point, call)."""


class Conflict(ControlError):
    """The action does not fit the current state (e.g. a call that has no ConnID yet)."""


@dataclass(frozen=True, slots=True)
class ActResult:
    """What an action caused."""

    events: tuple[SwitchEvent, ...]
    """Every switch event published while the action ran, in order (the routers' and the
    calls' reactions included)."""
    error: EventError | None
    """The switch's refusal of one of the action's own requests; ``None`` when it did them."""


class Control:
    """Operator actions on ``service``. See the module docstring."""

    def __init__(self, service: IvrService) -> None:
        self._service = service
        self._refs = ReferenceIds(*CONTROL)
        """The actions' ReferenceIDs (the service, the calls and the routers use other ranges),
        so an action's events are told apart from everyone else's."""
        self._sent: set[int] = set()
        """ReferenceIDs of the requests of the action running now."""
        self._routers = RouterChoices(service)

    @property
    def service(self) -> IvrService:
        return self._service

    # ------------------------------------------------------------------ plumbing

    def pump(self) -> None:
        """Drain every switch and fan the events out (calls, routers, sessions, listeners)."""
        self._service.pump()

    def next_ref(self) -> int:
        """A fresh ReferenceID for an action's request."""
        return self._refs()

    def run(self, now: float | None, act: Callable[[], object]) -> ActResult:
        """Run ``act`` (which sends switch requests through :meth:`send`), drain the switches,
        and collect every event published meanwhile."""
        service = self._service
        if now is not None:
            service.now = now
        events: list[SwitchEvent] = []

        def collect(switch: str, event: SwitchEvent) -> None:
            events.append(event)

        sent = self._sent = set()
        service.listeners.append(collect)
        try:
            act()
            self.pump()
        finally:
            service.listeners.remove(collect)
        error = next(
            (e for e in events if isinstance(e, EventError) and e.reference_id in sent), None
        )
        return ActResult(tuple(events), error)

    def send(self, switch: Switch, build: Callable[[int], SwitchRequest]) -> int:
        """Send one request built with a fresh ReferenceID; returns the ReferenceID."""
        ref = self._refs()
        self._sent.add(ref)
        switch.request(build(ref))
        return ref

    # ------------------------------------------------------------------ look-ups

    def switch(self, name: str) -> Switch:
        switch = self._service.switches.get(name)
        if switch is None:
            raise NotFound(f"no switch {name!r}")
        return switch

    def dn(self, switch_name: str, number: str) -> Switch:
        """The switch of DN ``number``, which must exist on it."""
        switch = self.switch(switch_name)
        if switch.view.dn(number) is None:
            raise NotFound(f"switch {switch_name!r} has no DN {number!r}")
        return switch

    def routing_point(self, switch_name: str, number: str) -> Switch:
        """The switch of routing point ``number``."""
        switch = self.dn(switch_name, number)
        snapshot = switch.view.dn(number)
        if snapshot is None or snapshot.type not in ROUTABLE_DN_TYPES:
            raise NotFound(f"DN {number!r} of switch {switch_name!r} is not a routing point")
        return switch

    def call(self, call_id: str, ivr: str | None = None) -> Call:
        """The IVR call with CallId ``call_id`` (of IVR ``ivr``, when given). CallIds are
        unique per IVR: a CallId several IVRs use now is :class:`Conflict` without ``ivr``."""
        found = self._service.calls.find(call_id, ivr)
        if not found:
            raise NotFound(f"no call {call_id!r}" + (f" of IVR {ivr!r}" if ivr else ""))
        if len(found) > 1:
            raise Conflict(_several(call_id, [call.ivr for call in found]))
        return found[0]

    def timeline(
        self, call_id: str, now: float, ivr: str | None = None
    ) -> tuple[list[Entry], float | None]:
        """The entries of call ``call_id``'s timeline (of IVR ``ivr``, when given) and when the
        call ended (``None``: in progress); :class:`NotFound` for a call never seen or ended
        longer ago than ``timeline-retention`` (or beyond ``timeline-calls``)."""
        found = self._service.calls.timeline(call_id, now, ivr)
        if not found:
            raise NotFound(f"no call {call_id!r} (nor a timeline of one that ended lately)")
        if len(found) > 1:
            raise Conflict(_several(call_id, [scope for scope, _, _ in found]))
        _, entries, ended = found[0]
        return entries, ended

    def _connected(self, call_id: str, ivr: str | None) -> tuple[Call, str]:
        call = self.call(call_id, ivr)
        if call.conn_id is None:
            raise Conflict(f"call {call_id!r} is not on the switch yet (no ConnID)")
        return call, call.conn_id

    # ------------------------------------------------------------------ calls

    def set_user_data(
        self,
        call_id: str,
        items: KvList,
        *,
        replace: bool,
        now: float | None = None,
        ivr: str | None = None,
    ) -> ActResult:
        """``TAttachUserData`` (``replace=False``: appended, duplicates kept) or
        ``TUpdateUserData`` (``replace=True``: existing keys overwritten) on the call's port DN."""
        call, conn_id = self._connected(call_id, ivr)
        kind = TUpdateUserData if replace else TAttachUserData
        return self._one(
            call.switch,
            lambda ref: kind(reference_id=ref, conn_id=conn_id, dn=call.dn, user_data=items),
            now,
        )

    def delete_user_data(
        self,
        call_id: str,
        key: str | None = None,
        *,
        now: float | None = None,
        ivr: str | None = None,
    ) -> ActResult:
        """``TDeleteUserData`` of ``key`` (every pair with that key), or ``TDeleteAllUserData``
        when ``key`` is ``None``."""
        call, conn_id = self._connected(call_id, ivr)
        if key is None:
            return self._one(
                call.switch,
                lambda ref: TDeleteAllUserData(reference_id=ref, conn_id=conn_id, dn=call.dn),
                now,
            )
        return self._one(
            call.switch,
            lambda ref: TDeleteUserData(reference_id=ref, conn_id=conn_id, dn=call.dn, key=key),
            now,
        )

    def release(
        self, call_id: str, *, now: float | None = None, ivr: str | None = None
    ) -> ActResult:
        """The caller hangs up: every party gets ``EventReleased``, the IVR ``CallStatus
        Released``."""
        call, conn_id = self._connected(call_id, ivr)
        if call.switch.view.call(conn_id) is None:
            raise Conflict(f"call {call_id!r} is already released")

        return self.run(now, lambda: self._service.hang_up(call.switch.name, conn_id))

    # ------------------------------------------------------------------ routing

    def _waiting_call(self, switch_name: str, rp: str, conn_id: str) -> Switch:
        switch = self.routing_point(switch_name, rp)
        if switch.view.call(conn_id) is None:
            raise NotFound(f"no call with ConnID {conn_id!r} on switch {switch_name!r}")
        return switch

    def route_call(
        self,
        switch_name: str,
        rp: str,
        conn_id: str,
        *,
        route_type: RouteType = "Normal",
        dest: str | None = None,
        extensions: KvList = (),
        now: float | None = None,
    ) -> ActResult:
        """``TRouteCall`` for the call waiting at routing point ``rp``: the IVR gets
        ``RouteResponse``."""
        switch = self._waiting_call(switch_name, rp, conn_id)
        self.router_heard(switch_name, rp, now)
        return self._one(
            switch,
            lambda ref: TRouteCall(
                reference_id=ref,
                conn_id=conn_id,
                dn=rp,
                route_type=route_type,
                dest=dest,
                extensions=extensions,
            ),
            now,
        )

    def apply_treatment(
        self,
        switch_name: str,
        rp: str,
        conn_id: str,
        *,
        treatment_type: str,
        parameters: KvList = (),
        extensions: KvList = (),
        now: float | None = None,
    ) -> ActResult:
        """``TApplyTreatment`` for the call waiting at routing point ``rp``: the IVR gets
        ``TreatCall``."""
        switch = self._waiting_call(switch_name, rp, conn_id)
        self.router_heard(switch_name, rp, now)
        return self._one(
            switch,
            lambda ref: TApplyTreatment(
                reference_id=ref,
                conn_id=conn_id,
                dn=rp,
                treatment_type=treatment_type,
                parameters=parameters,
                extensions=extensions,
            ),
            now,
        )

    def configured_router(self, switch_name: str) -> Router | None:
        """The router the configuration gave the switch (under a dispatcher, if any)."""
        return self._routers.configured_router(switch_name)

    def router_choice(self, switch_name: str, rp: str) -> RouterChoice:
        """Who serves routing point ``rp`` now."""
        return self._routers.get(switch_name, rp)

    def router_heard(self, switch_name: str | None, rp: str | None, now: float | None) -> None:
        """An API client acted as the external router of routing point ``rp`` of switch
        ``switch_name`` at ``now`` (``None``: of every one; it read them all): that router is
        live (MODES-AND-HA G19)."""
        at = self._service.now if now is None else now
        for (name, point), choice in self._routers.all().items():
            router = choice.router
            if (
                isinstance(router, ExternalRouter)
                and switch_name in (None, name)
                and rp in (None, point)
            ):
                router.heard(at)

    def set_router(
        self,
        switch_name: str,
        rp: str,
        mode: RouterMode,
        router: Router | None = None,
        url: str | None = None,
        now: float | None = None,
    ) -> RouterChoice:
        """Serve routing point ``rp`` by ``mode``: ``builtin`` (the configured rules; a
        :class:`Conflict` if the configuration has none for it), ``external`` (an
        :class:`~ivr_server.routing.ExternalRouter`, its client heard of at ``now``: the
        event loop's time, the service's clock when not given), ``webhook`` (``router``, built
        by the caller) or ``none``. Calls waiting there keep their router timeout."""
        self.routing_point(switch_name, rp)
        if mode == "builtin" and not self._routers.has_rules(switch_name, rp):
            raise Conflict(
                f"routing point {rp!r} of switch {switch_name!r} has no built-in rules "
                "([[routing]] in the configuration)"
            )
        if mode == "external":
            window = self._service.config.api.external_router_window
            heard = self._service.now if now is None else now
            external = ExternalRouter(frozenset({rp}), window=window, now=heard)
            choice = RouterChoice("external", external)
        elif mode == "webhook":
            if router is None:
                raise ValueError("a webhook choice needs its router object")
            choice = RouterChoice("webhook", router, url)
        else:
            choice = RouterChoice(mode)
        return self._routers.choose(switch_name, rp, choice)

    def choices(self) -> dict[tuple[str, str], RouterChoice]:
        """The routing points not served as configured, and by whom."""
        return self._routers.all()

    def after_reload(self) -> None:
        """The service rebuilt its routers from a new configuration: keep the choices of the
        routing points that still exist, and put the dispatchers back."""
        self._routers.after_reload()

    # ------------------------------------------------------------------ agents

    def agent_login(
        self,
        switch_name: str,
        dn: str,
        *,
        agent_id: str,
        queue: str = "",
        password: str = "",
        work_mode: WorkMode = WorkMode.UNKNOWN,
        now: float | None = None,
    ) -> ActResult:
        """``TAgentLogin`` on any DN of a switch."""
        switch = self.dn(switch_name, dn)
        return self._one(
            switch,
            lambda ref: TAgentLogin(
                reference_id=ref,
                dn=dn,
                queue=queue,
                agent_id=agent_id,
                password=password,
                work_mode=work_mode,
            ),
            now,
        )

    def agent_logout(
        self, switch_name: str, dn: str, *, queue: str | None = None, now: float | None = None
    ) -> ActResult:
        """``TAgentLogout``."""
        switch = self.dn(switch_name, dn)
        return self._one(
            switch, lambda ref: TAgentLogout(reference_id=ref, dn=dn, queue=queue), now
        )

    def agent_ready(
        self,
        switch_name: str,
        dn: str,
        *,
        queue: str = "",
        work_mode: WorkMode = WorkMode.UNKNOWN,
        now: float | None = None,
    ) -> ActResult:
        """``TAgentSetReady``."""
        switch = self.dn(switch_name, dn)
        return self._one(
            switch,
            lambda ref: TAgentSetReady(reference_id=ref, dn=dn, queue=queue, work_mode=work_mode),
            now,
        )

    def agent_not_ready(
        self,
        switch_name: str,
        dn: str,
        *,
        queue: str = "",
        work_mode: WorkMode = WorkMode.UNKNOWN,
        now: float | None = None,
    ) -> ActResult:
        """``TAgentSetNotReady``."""
        switch = self.dn(switch_name, dn)
        return self._one(
            switch,
            lambda ref: TAgentSetNotReady(
                reference_id=ref, dn=dn, queue=queue, work_mode=work_mode
            ),
            now,
        )

    def _one(
        self, switch: Switch, build: Callable[[int], SwitchRequest], now: float | None
    ) -> ActResult:
        return self.run(now, lambda: self.send(switch, build))

    # ------------------------------------------------------------------ links

    def set_link(self, switch_name: str, up: bool, *, now: float | None = None) -> ActResult:
        """Bring a switch's T-Server link up or down (maintenance)."""
        self.switch(switch_name)
        return self.run(now, lambda: self._service.set_link(switch_name, up))

    # ------------------------------------------------------------------ outbound

    def dial_out(
        self,
        requester: Callable[[DialOutRequest, DialOutOutcome], None],
        dn: str,
        dest: str,
        *,
        timeout: float,
        user_data: KvList = (),
        extensions: KvList = (),
        now: float | None = None,
    ) -> DialOutRequest:
        """A predictive call (TMakePredictiveCall) from routing point ``dn``: ``DialOut`` to the
        IVR session that registered it. :class:`NotFound` if ``dn`` is no routing point,
        :class:`Conflict` if no session registered it. Each outcome is passed to
        ``requester``; the caller writes out the sessions afterwards, whatever happened."""
        service = self._service
        if not service.is_routing_point(dn):
            raise NotFound(f"{dn} is not a routing point")
        if now is not None:
            service.now = now
        dialled = service.dial_out(
            requester, dn, dest, timeout=timeout, user_data=user_data, extensions=extensions
        )
        if dialled is None:
            raise Conflict(f"no IVR session registered {dn} for outbound calls")
        return dialled

    # ------------------------------------------------------------------ ending calls

    def port_call(self, ivr_name: str, port_number: str) -> Call:
        """The call of port ``port_number`` of IVR ``ivr_name``: :class:`NotFound` for an
        unknown IVR or port, :class:`Conflict` for a port without a call."""
        call = self._service.calls.call_on_port(ivr_name, port_number)
        if call is not None:
            return call  # even of an IVR or port a forced reload removed
        ivr = self._service.config.ivr(ivr_name)
        if ivr is None:
            raise NotFound(f"no IVR {ivr_name!r}")
        if ivr.port(port_number) is None:
            raise NotFound(f"IVR {ivr_name!r} has no port {port_number!r}")
        raise Conflict(f"port {port_number} of {ivr_name} has no call")

    def end_call(
        self, call_id: str, *, by: str, now: float | None = None, ivr: str | None = None
    ) -> ActResult:
        """End call ``call_id`` on the server's side as its Call Timeout does: the IVR gets
        ``EndCall EndCause='Timeout'``, the port's call is released on the switch, the port is
        free at once. Logged (WARNING) with ``by``, who asked. For a stuck port."""
        call = self.call(call_id, ivr)
        log.warning(
            "call %s on port %s of %s (state %s) ended by the operator (%s): "
            "EndCall Timeout to the IVR, port freed",
            _cut(call.call_id),
            call.port,
            call.ivr,
            call.state.value,
            by,
        )
        return self.run(
            now, lambda: self._service.calls.end_by_operator(call.key, self._service.now)
        )

    def end_port_call(
        self,
        ivr_name: str,
        port_number: str,
        *,
        call_id: str | None = None,
        by: str,
        now: float | None = None,
    ) -> ActResult:
        """:meth:`end_call` for the call of a port, whatever its CallId; with ``call_id``, only
        if the port's call is that one (:class:`Conflict` otherwise)."""
        call = self.port_call(ivr_name, port_number)
        if call_id is not None and call.call_id != call_id:
            raise Conflict(
                f"port {port_number} of {ivr_name} has another call now: {_cut(call.call_id)!r}"
            )
        return self.end_call(call.call_id, by=by, now=now)


def _cut(text: str, limit: int = 100) -> str:
    """``text``, or its first ``limit`` characters and its length (a CallId can be 16 KB)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _several(call_id: str, ivrs: list[str]) -> str:
    """Why a CallId alone does not name one call: several IVRs use it (CallIds are unique per
    IVR, docs/decisions.md)."""
    names = ", ".join(sorted(repr(name) for name in ivrs))
    return f"CallId {call_id!r} is used by several IVRs ({names}): name one with ?ivr=<name>"
