"""The call side's door (:class:`CallManager`): every IVR message, switch event and timer of a call.

Theory of operation. The service admits a ``NewCall`` (login, mode, flow control: it owns the
configuration) and hands it to :meth:`CallManager.new_call` with the resolved port. From then on
every IVR message about the call comes through :meth:`CallManager.handle`, every switch event
through :meth:`CallManager.on_event`, and the clock through :meth:`CallManager.handle_timer`.
Messages to the IVR go out through the ``send`` callback given at construction, addressed to the
call's *owner* (the session that last spoke about the call; ``None`` while no session of the call's
IVR is connected, in which case unsolicited messages are dropped and the orphan timer runs).

The manager is the one door: it finds the call and hands the input to the family of messages it
belongs to, each in its own module around the shared :class:`~ivr_server.calls.context.CallContext`:

- :mod:`~ivr_server.calls.admission`: ``NewCall``, ``DialOutInit``, the call reaching the port;
- :mod:`~ivr_server.calls.info`: ``CallInfoReq``, ``AccessNumGet``/``AccessNumCancel``;
- :mod:`~ivr_server.calls.userdata`: ``UDataSet``/``UDataGet``/``UDataGetAll``/``UDataDel``;
- :mod:`~ivr_server.calls.routing`: ``RouteRequest``, treatments, the router's instructions;
- :mod:`~ivr_server.calls.ending`: ``EndCall``, ``EventReleased``, timeouts;
- :mod:`~ivr_server.calls.control`: transfers, conferences, ``RetrieveCall``, ``MakeCall``, and
  the events of a consultation call (``CallContext.consults``);
- :mod:`~ivr_server.calls.behind`: Behind calls meeting the premise switch's calls at their port
  DNs, and the premise events kept for a ``NewCall`` to come.

Call-control inputs go through the table of :mod:`ivr_server.calls.machine`
(:meth:`CallContext.input`): a pair the table does not hold is refused there and then, with the
state unchanged; an allowed one runs the family's ``do_<action>`` and moves the call. Side requests
(CallInfoReq, user data) are served directly.

Requests to the switch carry a ReferenceID; the events that answer them come back through
:meth:`CallManager.on_event` (the service drains the switches after every input) and find the
waiting request in the context's ``pending`` table, which says which family answers. An
unsolicited event with a ConnID no call has goes to :mod:`~ivr_server.calls.behind` (only while
the configuration has Behind ports).

Errors become answers only through :mod:`ivr_server.calls.replies` (``Refusal``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ivr_server.calls.admission import Admission
from ivr_server.calls.behind import Behind
from ivr_server.calls.call import (
    AccessNumbersFn,
    Call,
    CallSettings,
    DialOutReportFn,
    Owner,
    PortTarget,
    SendFn,
    call_key,
    scope_of,
)
from ivr_server.calls.context import Action, CallContext, Pending, PendingKind
from ivr_server.calls.control import REQUESTS, CallControl
from ivr_server.calls.ending import Ending
from ivr_server.calls.info import CallInfo
from ivr_server.calls.machine import TRANSITIONS, CallInput, CallState
from ivr_server.calls.network import Network
from ivr_server.calls.network_table import NETWORK_TRANSITIONS
from ivr_server.calls.replies import Refusal, invalid_request, no_such_call
from ivr_server.calls.routing import Routing
from ivr_server.calls.timeline import IN, OUT, SWITCH, Entry
from ivr_server.calls.userdata import UserData, user_data
from ivr_server.metrics import Metrics
from ivr_server.switch import (
    EventDestinationBusy,
    EventError,
    EventEstablished,
    EventHeld,
    EventPartyAdded,
    EventPartyDeleted,
    EventReleased,
    EventRetrieved,
    EventRinging,
    RequestApplyTreatment,
    RequestRouteCall,
    SwitchEvent,
)
from ivr_server.wire import KvList, Message
from ivr_server.wire import messages as m

__all__ = ["Call", "CallManager", "CallSettings", "PortTarget"]

log = logging.getLogger("ivr_server.calls")

Handler = Callable[[Call, Any, float], None]
"""``handler(call, message or event, now)``."""
Answer = Callable[[Pending, SwitchEvent, float], None]
"""``answer(pending request, event, now)``."""


class CallManager:
    """Every call of the server. See the module docstring."""

    def __init__(
        self,
        settings: CallSettings,
        send: SendFn,
        metrics: Metrics | None = None,
        dial_out_report: DialOutReportFn | None = None,
        access_numbers: AccessNumbersFn | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        ctx = self._ctx = CallContext(settings, send, self.metrics, dial_out_report, access_numbers)
        self.calls = ctx.calls
        """CallId -> call."""
        self._admission = admission = Admission(ctx)
        self._behind = Behind(ctx, admission)
        self._behind.configure(settings.behind_ports)
        info = CallInfo(ctx)
        user_data = self._user_data = UserData(ctx)
        routing = self._routing = Routing(ctx, user_data)
        ending = Ending(ctx, user_data)
        self._control = control = CallControl(ctx, admission)
        self._network = network = Network(ctx, routing, user_data)
        actions: dict[str, Action] = {
            **admission.actions(),
            **routing.actions(),
            **ending.actions(),
            **control.actions(),
            **network.actions(),
        }
        steps = (*TRANSITIONS.values(), *NETWORK_TRANSITIONS.values())
        missing = {step.action for step in steps} - actions.keys()
        assert not missing, f"table actions without a method: {sorted(missing)}"
        ctx.actions.update(actions)
        self._handlers: dict[type[Message], Handler] = {
            m.EndCall: ending.on_end_call,
            m.CallInfoReq: info.on_call_info,
            m.UDataSet: user_data.on_udata_set,
            m.UDataGet: user_data.on_udata_get,
            m.UDataGetAll: user_data.on_udata_get_all,
            m.UDataDel: user_data.on_udata_del,
            m.RouteRequest: self._on_route_request,
            m.TreatStatus: routing.on_treat_status,
            m.CancelCompleted: routing.on_cancel_completed,
            m.Connected: routing.on_connected,
            m.Failure: routing.on_failure,
            m.AccessNumGet: info.on_access_num,
            m.AccessNumCancel: info.on_access_num,
            **dict.fromkeys(REQUESTS, control.on_request),
        }
        """IVR message class -> its family's handler."""
        self._event_handlers: dict[type[SwitchEvent], Handler] = {
            EventRinging: admission.on_ringing,
            EventEstablished: admission.on_established,
            EventReleased: ending.on_released,
            EventError: _refused,
            RequestRouteCall: routing.on_route_call,
            RequestApplyTreatment: routing.on_apply_treatment,
            **dict.fromkeys(
                (
                    EventHeld,
                    EventRetrieved,
                    EventDestinationBusy,
                    EventPartyAdded,
                    EventPartyDeleted,
                ),
                control.on_event,
            ),
        }
        """Switch event class -> its family's handler, for events about a call at its port."""
        self._answers: dict[PendingKind, Answer] = {
            "inbound": admission.answer,
            "outbound": admission.answer,
            "udata": user_data.answer,
            "route": routing.answer,
            "control": control.answer,
            "network": network.answer,
        }
        """Kind of pending request -> the family that takes the events answering it."""

    # ------------------------------------------------------------------ state

    @property
    def settings(self) -> CallSettings:
        """The timer durations and the release default in force."""
        return self._ctx.settings

    @property
    def context(self) -> CallContext:
        """The call side's shared state (for ``service/persist.py``: HA snapshot and restore,
        issue 25; nothing else should need it)."""
        return self._ctx

    @property
    def completed(self) -> int:
        """Calls that ended since start (for statistics)."""
        return self._ctx.completed

    @property
    def compact_due(self) -> bool:
        """Calls in progress fell eightfold below a peak of thousands, or further on the way
        down to none: the owner should call :meth:`compact` (and every other per-call
        table's), then give the freed heap back."""
        return self._ctx.compact_due

    # ------------------------------------------------------------------ queries

    @staticmethod
    def key(ivr: str | None, owner: Owner, call_id: str) -> str:
        """The key of CallId ``call_id`` as a session logged in as ``ivr`` (``None``: not
        logged in) names it: CallIds are unique per IVR (``Call.key``)."""
        return call_key(scope_of(ivr, owner), call_id)

    def is_active(self, key: str) -> bool:
        """Is there a call with this key (:meth:`key`)?"""
        return key in self.calls

    def find(self, call_id: str, ivr: str | None = None) -> list[Call]:
        """The calls in progress whose CallId is ``call_id`` (of IVR ``ivr`` only, when given):
        several IVRs may use the same CallId (for the operator's API; not the hot path)."""
        return [
            call
            for call in self.calls.values()
            if call.call_id == call_id and (ivr is None or call.ivr == ivr)
        ]

    def port_busy(self, ivr: str, port: str) -> bool:
        """Does IVR port ``port`` of ``ivr`` have a call?"""
        return (ivr, port) in self._ctx.by_port

    def call_on_port(self, ivr: str, port: str) -> Call | None:
        """The call of IVR port ``port`` of ``ivr``, if it has one."""
        return self._ctx.by_port.get((ivr, port))

    def awaits(self, reference_id: int | None) -> bool:
        """Is a request with this ReferenceID waiting for its events here?"""
        return reference_id is not None and reference_id in self._ctx.pending

    def pending_count(self) -> int:
        """Switch requests awaiting their events (0 between inputs; for leak tests)."""
        return len(self._ctx.pending)

    def timer_count(self) -> int:
        """Running timers (for leak tests)."""
        return len(self._ctx.timers)

    # ------------------------------------------------------------------ ownership

    def owner_gone(self, owner: Owner, successor: Owner | None, now: float) -> None:
        """The session ``owner`` went away: its calls pass to ``successor`` (another session of
        the same IVR) or, without one, wait ``orphan-call-timeout`` for the IVR to come back (a
        Network call of a session that was not logged in always waits, then ends: G23)."""
        ctx = self._ctx
        for call in list(self.calls.values()):
            if call.owner is owner:
                # a call of a session that was not logged in has no IVR to pass to (G23)
                call.owner = successor if call.ivr else None
                if call.owner is None:
                    ctx.timers.orphan.set(call.key, now + ctx.settings.orphan_call_timeout)

    def adopt(self, ivr: str, owner: Owner) -> int:
        """A session of ``ivr`` logged in: it takes over the IVR's calls that have no owner."""
        adopted = 0
        for call in self.calls.values():
            if call.ivr == ivr and call.owner is None:
                call.owner = owner
                self._ctx.timers.orphan.cancel(call.key)
                adopted += 1
        return adopted

    # ------------------------------------------------------------------ IVR messages

    def new_call(
        self, owner: Owner, call_id: str, msg: m.NewCall, target: PortTarget, now: float
    ) -> None:
        """Start a call admitted by the service (login, mode, flow control already checked)."""
        self._ctx.timeline.now = now
        if target.mode == "Network":
            self._network.new_call(owner, call_id, msg, target, now)
        else:
            self._admission.new_call(owner, call_id, msg, target, now)
        key = self.key(target.ivr, owner, call_id)
        self._ctx.timeline.first(key, msg)
        if target.mode == "Behind":
            self._behind.wait(self.calls[key], now)

    def dial_out_init(
        self,
        owner: Owner,
        call_id: str,
        msg: m.DialOutInit,
        target: PortTarget,
        dial_out: Any,
        dest: str,
        user_data: KvList,
        now: float,
    ) -> None:
        """Start the outbound call a ``DialOutInit`` reports (admitted by the service): the
        port's DN dials ``dest``; ``CallStatus Dialing`` follows (PROTOCOL.md §3.10.5)."""
        self._ctx.timeline.now = now
        self._admission.dial_out_init(owner, call_id, msg, target, dial_out, dest, user_data, now)
        self._ctx.timeline.first(self.key(target.ivr, owner, call_id), msg)

    def make_call(
        self, owner: Owner, call_id: str, msg: m.MakeCall, target: PortTarget, now: float
    ) -> None:
        """Start the call a ``MakeCall`` asks for (admitted by the service): the port of
        ``OrigNum`` dials ``DestNum``; ``Dialing``, then ``Established`` or ``Busy``
        (:mod:`~ivr_server.calls.control`)."""
        self._ctx.timeline.now = now
        self._control.make_call(owner, call_id, msg, target, now)
        self._ctx.timeline.first(self.key(target.ivr, owner, call_id), msg)

    # ------------------------------------------------------------------ user data, access numbers

    def user_data_of(self, key: str) -> KvList | None:
        """The user data of the call with this key as it is now (``None``: no such call)."""
        call = self.calls.get(key)
        return user_data(call) if call is not None else None

    def attach_user_data(self, key: str, data: KvList, now: float) -> bool:
        """Attach ``data`` to the call with this key with Replace semantics (keys it names are
        replaced, others kept), as a ``TreatStatus Completed`` would: e.g. the data an access
        number carried to the call that arrived on it (MODES-AND-HA G24). ``False`` if there is
        no such call."""
        call = self.calls.get(key)
        if call is None:
            return False
        self._ctx.timeline.now = now
        self._user_data.attach_replace(call, data)
        return True

    def answer_access_num(self, key: str, answer: m.AccessNumResp) -> bool:
        """Send the late answer of an access-number request (the provider returned ``None``) to
        the call's owner; ``False`` if the call has ended meanwhile (nothing is sent)."""
        call = self.calls.get(key)
        if call is None:
            return False
        self._ctx.send(call.owner, call, answer)
        return True

    def set_access_numbers(self, provider: AccessNumbersFn | None) -> None:
        """Who answers ``AccessNumGet``/``AccessNumCancel`` from now on (``None``: ``Failure``)."""
        self._ctx.access_numbers = provider

    def discard(self, key: str) -> bool:
        """Remove a call whose start could not be completed (handling its ``NewCall`` or
        ``DialOutInit`` failed, or its first documents could not be sent): released on the
        switch (In-Front: a premise call is the PBX's) and forgotten, its port free at once;
        nothing is sent to the IVR (the service answers the request). ``False`` if there is no
        such call."""
        return self._admission.discard(key)

    def ivr_call_status(
        self, owner: Owner, ivr: str | None, call_id: str | None, msg: m.CallStatus, now: float
    ) -> None:
        """``CallStatus`` from the IVR: only ``Established`` of an outbound call means something
        (the dialled party answered, PROTOCOL.md §3.3.7); anything else is logged and ignored."""
        if call_id is not None:
            timeline = self._ctx.timeline
            timeline.now = now
            timeline.record(self.key(ivr, owner, call_id), IN, msg)
        self._admission.ivr_call_status(owner, ivr, call_id, msg, now)

    def handle(
        self, owner: Owner, ivr: str | None, call_id: str | None, msg: Message, now: float
    ) -> None:
        """An IVR message about an existing call, from a session logged in as ``ivr``."""
        key = (
            call_key(ivr if ivr else scope_of(None, owner), call_id) if call_id is not None else ""
        )
        call = self.calls.get(key)
        if call is None and ivr and call_id is not None:  # a Network call from before its login
            call = self.calls.get(call_key(scope_of(None, owner), call_id))
        ctx = self._ctx
        timeline = ctx.timeline
        timeline.now = now
        if call is None or (call.ivr != ivr if call.ivr else call.owner is not owner):
            # a Network call of a session that was not logged in is that session's only (G23)
            refusal = no_such_call(call_id, msg)
            if ivr is not None and call is None:  # a request after the call's end: on its timeline
                timeline.record_late(key, IN, msg, ivr)
                timeline.record_late(key, OUT, refusal, ivr)
            raise refusal
        timeline.record(call.key, IN, msg)
        if call.owner is None:  # an orphan: the session asking about it takes it over
            call.owner = owner
            ctx.timers.orphan.cancel(call.key)
        ctx.requester = owner
        handler = self._handlers.get(type(msg))
        try:
            if handler is not None:
                handler(call, msg, now)
            else:
                raise invalid_request(call.call_id, f"{msg.tag} is not a request about a call")
        except Refusal as refusal:  # the service sends the answer: the timeline says why
            # a copy: the raised one carries a traceback whose frames the timeline would keep
            timeline.record(call.key, OUT, Refusal(refusal.call_id, refusal.reply, refusal.reason))
            raise

    # ------------------------------------------------------------------ switch events

    def _on_route_request(self, call: Call, msg: m.RouteRequest, now: float) -> None:
        if call.network:
            self._network.on_route_request(call, msg, now)
        else:
            self._routing.on_route_request(call, msg, now)

    def owns_network_call(self, owner: Owner, call_id: str | None) -> bool:
        """Is ``call_id`` a Network call of a login-less session, ``owner`` (G23)? Such a session
        may speak about its own calls only."""
        call = self.calls.get(self.key(None, owner, call_id)) if call_id is not None else None
        return call is not None and call.network and not call.ivr and call.owner is owner

    def on_event(self, event: SwitchEvent, now: float) -> None:
        """A switch event: the answer to one of our requests, or news about one of our calls."""
        ctx = self._ctx
        timeline = ctx.timeline
        timeline.now = now
        ref = event.reference_id
        pending = ctx.pending.pop(ref, None) if ref is not None else None
        if pending is not None:
            if pending.call.key in self.calls:
                dirty = ctx.dirty  # HA tracking (issue 25): the answer may change the call
                if dirty is not None and pending.kind != "udata":
                    dirty.add(pending.call.key)
                timeline.record(pending.call.key, SWITCH, event)
                self._answers[pending.kind](pending, event, now)
            return  # the family that waited took the event (inbound: fed it to the machine)
        conn_id = getattr(event, "conn_id", None)
        if conn_id is None:
            return
        call = ctx.by_conn.get(conn_id)
        if call is None:
            consults = ctx.consults
            if consults:  # the consultation call of a transfer or conference?
                call = consults.get(conn_id)
                if call is not None:
                    # only what happens at the port counts: a PBX that monitors the consulted
                    # party too reports its side of the same call (its Established...)
                    if getattr(event, "dn", None) == call.dn:
                        if ctx.dirty is not None:  # HA tracking (issue 25)
                            ctx.dirty.add(call.key)
                        timeline.record(call.key, SWITCH, event)
                        self._control.on_event(call, event, now)
                    return
            if ctx.ports:  # a premise call at a Behind port, before or after its NewCall?
                self._behind.on_unknown(event, now)
            return
        timeline.record(call.key, SWITCH, event)
        dirty = ctx.dirty  # HA tracking (issue 25): Call.track, ConnID and party changes
        if dirty is not None:
            dirty.add(call.key)
        handler = self._event_handlers.get(type(event))
        if handler is not None:
            handler(call, event, now)

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """The earliest timer deadline, or ``None``."""
        return self._ctx.timers.first()

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        ctx = self._ctx
        ctx.timeline.now = now
        for key in list(ctx.timers.deferred.pop_due(now)):
            self._behind.expire(key)
        for call_key_, event in ctx.timers.pop_due(now):
            call = self.calls.get(call_key_)
            if call is not None:
                log.info(
                    "call %s: %s expired in state %s",
                    call.call_id,
                    event.value,
                    call.state.value,
                    extra=call.log_fields(),
                )
                try:
                    ctx.input(call, event, now)
                except Refusal:  # pragma: no cover - timers are never refused
                    log.exception(
                        "call %s: timer %s refused",
                        call.call_id,
                        event.value,
                        extra=call.log_fields(),
                    )

    def reconfigure(self, settings: CallSettings) -> None:
        """New timer durations apply to timers started from now on; the Behind ports are the
        new configuration's at once."""
        self._ctx.settings = settings
        self._ctx.timeline.configure(settings.timeline)
        self._behind.configure(settings.behind_ports)

    def compact(self) -> int:
        """Rebuild the per-call tables that are mostly empty; how many were rebuilt."""
        return self._ctx.compact()

    # ------------------------------------------------------------------ operator actions

    def end_by_operator(self, key: str, now: float) -> bool:
        """End the call with this key (``Call.key``) on the server's side exactly as its Call Timeout does (``EndCall
        EndCause='Timeout'`` to its IVR, the port's call released, the call forgotten: the port
        is free at once), for an operator freeing a stuck port; ``False`` if there is no such
        call."""
        call = self.calls.get(key)
        if call is None:
            return False
        self._ctx.timeline.now = now
        self._ctx.input(call, CallInput.CALL_TIMEOUT, now)
        return True

    # ------------------------------------------------------------------ timelines

    def timeline(
        self, call_id: str, now: float, ivr: str | None = None
    ) -> list[tuple[str, list[Entry], float | None]]:
        """The timelines of the calls with CallId ``call_id`` (of IVR ``ivr`` only, when given),
        in progress or ended within the retention: (the IVR, its entries, when it ended or
        ``None`` while in progress) each; empty if there is none. Several IVRs may have used
        the same CallId."""
        timelines = self._ctx.timeline
        found = []
        for key in timelines.keys_of(call_id):
            scope = key.rpartition("\x1f")[0]
            if ivr is not None and scope != ivr:
                continue
            got = timelines.get(key, now)
            if got is not None:
                found.append((scope if not scope.startswith("\x00") else "", *got))
        return found

    # ------------------------------------------------------------------ high availability
    # A hook of helper C (issue 25, service/standby.py): additive, used only by a demoted leader.

    def clear_silently(self) -> int:
        """Forget every call without a word to anyone: no ``EndCall`` to its IVR, no request to
        its switch, no dial-out report. A hot-standby leader fenced by the store steps down
        (``IvrService.set_role("standby")``, MODES-AND-HA §3.5 "Roles and takeover" 3): the new
        leader carries these calls on, so ending them here (a ``TReleaseCall`` to the PBX) would
        end them for real. How many calls were dropped."""
        ctx = self._ctx
        calls = list(ctx.calls.values())
        for call in calls:
            ctx.timeline.end(call.key, call.ivr)
            ctx.timers.cancel_all(call.key)
            call.dial_out = None
            call.state = CallState.DETACHED
        for table in (ctx.calls, ctx.by_port, ctx.by_conn, ctx.consults, ctx.pending):
            table.clear()
        for key in [key for key, slot in ctx.ports.items() if slot.policy is None]:
            del ctx.ports[key]  # a slot kept only for a waiting call
        for slot in ctx.ports.values():
            slot.waiting = None
            slot.drop()
        ctx.requester = None
        return len(calls)


def _refused(call: Call, event: EventError, now: float) -> None:
    """A refusal nobody waits for (the release or the data of an ending call): logged; the
    switch changed nothing, so the call keeps its data."""
    log.info(
        "call %s: the switch refused %s: %s (error %d)",
        call.call_id,
        event.request,
        event.error_message,
        event.error_code,
        extra=call.log_fields(),
    )
