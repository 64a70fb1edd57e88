"""The premise switch: a PBX watched over CSTA Phase III XML, as a :class:`LinkedSwitch`.

Theory of operation
-------------------
An adapter in ``runtime/`` owns the socket and drives the doors: :meth:`connection_made`,
:meth:`data_received`, :meth:`connection_lost`, :meth:`handle_timer` (each with ``now``), and the
service drives :meth:`request`; events come out of :meth:`drain_events` and bytes out of
:meth:`data_to_send`. No clock, no socket, no asyncio: the same bytes and times always give the
same events and bytes.

The link comes up in stages, one CSTA session per TCP connection: StartApplicationSession →
MonitorStart for every registered DN that lives on the PBX (ports, extensions, ACD queues; not
routing points, which are ivr-server's own) → SnapshotDevice for each DN monitored → the
**resync** of each DN from its snapshot (:func:`~ivr_server.switch.premise.calls.resync_dn`) →
EventLinkConnected. A DN the PBX will not monitor is reported EventDNOutOfService and the link
still comes up. When the session is refused or lost, the link is reported down
(EventLinkDisconnected, once), calls stay in the view with their ConnIDs and user data (G13),
and every request waiting for the PBX is answered EventError ``TERR_NO_SWITCH``.

Requests go through one table, request type → handler: call release and agent requests need the
PBX (``TERR_NO_SWITCH`` while the link is down); user data and the routing dialog on (virtual)
routing points are answered here exactly as the virtual switch answers them, link or no link
(G1, G17): a routed call never moves, it stays at its port. What only the server's own network
can do (TInboundCall, TAnswerCall, TOutboundCall, TOutboundAnswered, TCallerHangUp, TSetInService)
is ``TERR_UNSUP_OPER``: the PBX owns its network.

:meth:`request` is given no time, so a request's invoke timeout starts at the next door that
brings one; :meth:`next_deadline` asks for that door at once (the adapter re-reads it after the
service hands the switch requests, as after every door).

High availability (issue 25, G27): a node taking over restores each call's PBX side
(:meth:`restore_call_state`, :mod:`.persist`) and its DNs (:meth:`restored_dn`) without a word;
its link then comes up as any link does, and the snapshot resync checks the restored calls
against the PBX. Until that resync (at most the invoke timeout), the requests that need the PBX
wait (:attr:`parked`) instead of being refused: the takeover's replayed requests included.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ivr_server.memory import shrink
from ivr_server.switch import requests as rq
from ivr_server.switch.csta import events as se
from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.session import CstaSession, SessionState
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    DnType,
    EventEstablished,
    EventLinkConnected,
    EventLinkDisconnected,
    EventRinging,
    SwitchEvent,
)
from ivr_server.switch.premise import agents, calls, control, monitors, persist, placed
from ivr_server.switch.premise.core import LOG, PBX_DN_TYPES, PremiseCore
from ivr_server.switch.premise.errors import describe
from ivr_server.switch.premise.settings import PremiseSettings
from ivr_server.switch.protocol import LinkTarget
from ivr_server.switch.requests import SwitchRequest
from ivr_server.switch.virtual import calls as vcalls
from ivr_server.switch.virtual import routing as vrouting
from ivr_server.switch.virtual.core import request_name

__all__ = ["PremiseSwitch"]

_UNSUPPORTED: Final = frozenset(
    {
        rq.TInboundCall,
        rq.TAnswerCall,
        rq.TOutboundCall,
        rq.TOutboundAnswered,
        rq.TCallerHangUp,
        rq.TSetInService,
    }
)
"""Requests only the server's own network (the virtual switch) can do."""


class PremiseSwitch(PremiseCore):
    """A premise PBX behind a CSTA XML link (the module docstring).

    ``name``, ``tserver``, ``dns``, ``first_conn_id`` and ``first_call_id`` are as for the
    virtual switch; ``settings`` says where the PBX is and how the session is kept. The link
    starts down and unwanted: a TOpenLink asks the adapter to connect.
    """

    def __init__(
        self,
        name: str,
        tserver: str,
        dns: Iterable[tuple[str, DnType]],
        settings: PremiseSettings,
        *,
        first_conn_id: int = 1,
        first_call_id: int = 1,
    ) -> None:
        super().__init__(
            name, tserver, dns, settings, first_conn_id=first_conn_id, first_call_id=first_call_id
        )
        self._target = settings.target()
        self._link_wanted = False
        self._closing = False
        self._stage = "down"
        """``down``, ``starting``, ``monitoring``, ``snapshots``, ``up``."""
        self._monitoring: set[str] = set()
        """DNs whose MonitorStart of the link's start is not answered yet."""
        self._snapshots: dict[str, set[str]] = {}
        """DN whose snapshot is awaited → premise call ids reported there since it was asked."""
        self._tally = [0, 0, 0]
        """Resync counts of the link's start: kept, released, new."""

    # -- LinkedSwitch properties -----------------------------------------------------------------

    @property
    def target(self) -> LinkTarget:
        """Where the adapter connects."""
        return self._target

    @property
    def link_wanted(self) -> bool:
        """``True`` from TOpenLink to TCloseLink."""
        return self._link_wanted

    @property
    def closing(self) -> bool:
        """The current connection is done with (refused, lost, stopped)."""
        return self._closing

    # -- the adapter's doors ---------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        """Start a CSTA application session on the new connection."""
        self._tick(now)
        self._closing = False
        if not self._link_wanted:
            self._closing = True
            return
        s = self.settings
        session = CstaSession(
            application_id=s.application_id,
            dialect=self.dialect,
            user_name=s.user,
            password=s.password,
            session_duration_s=s.session_duration_s,
            heartbeat_s=s.heartbeat_s,
            invoke_timeout_s=s.invoke_timeout_s,
        )
        self.session = session
        self._stage = "starting"
        session.connect(now)
        LOG.debug(  # the adapter logs the connection at INFO
            "switch %s: starting the CSTA session (%s dialect)", self.name, self.dialect.name
        )

    def data_received(self, data: bytes, now: float) -> None:
        """Bytes from the PBX (garbage included: it never raises)."""
        self._tick(now)
        session = self.session
        if session is not None and data:
            self._handle(session.receive_data(data, now), now)

    def connection_lost(self, reason: str, now: float) -> None:
        """The connection is gone: the link is down until the next one."""
        self._tick(now)
        if self.session is not None and self._stage != "down":
            self._lost(f"connection lost: {reason}")
        self.session = None
        self._closing = False

    def data_to_send(self) -> bytes:
        """Bytes for the PBX."""
        return self.session.data_to_send() if self.session is not None else b""

    def next_deadline(self) -> float | None:
        """The session's next timer, or a request's invoke timeout; ``now`` itself (at once)
        while a request waits for the time its timeout starts from."""
        best = self.session.next_deadline() if self.session is not None else None
        if best is not None and math.isinf(best):
            best = None
        for deadline in self.deadlines.values():
            due = self.now if deadline is None else deadline
            if best is None or due < best:
                best = due
        if self.parked:  # HA (issue 25): requests waiting for the resync of a takeover
            due = self.now if self.parked_until is None else self.parked_until
            if best is None or due < best:
                best = due
        return best

    def handle_timer(self, now: float) -> None:
        """Requests left unanswered, the session's heartbeat and invoke timeouts."""
        self._tick(now)
        for invoke_id, deadline in list(self.deadlines.items()):
            if deadline is not None and deadline <= now:
                del self.deadlines[invoke_id]
                req = self.requests.pop(invoke_id, None)
                if req is not None:
                    self.answer(invoke_id, req, None, None)
        if self.parked_until is not None and self.parked_until <= now:
            self._unpark()
        if self.session is not None:
            self._handle(self.session.handle_timer(now), now)

    def _tick(self, now: float) -> None:
        """The time is ``now``: requests sent since the last door start their timeout."""
        self.now = now
        timeout = self.settings.invoke_timeout_s
        for invoke_id, deadline in self.deadlines.items():
            if deadline is None:
                self.deadlines[invoke_id] = now + timeout
        if self.parked is not None and self.parked_until is None:
            self.parked_until = now + timeout

    # -- the Switch interface ----------------------------------------------------------------------

    def request(self, req: SwitchRequest) -> None:
        """Take one request (the module docstring); never raises for a peer's request."""
        handler = _HANDLERS.get(type(req))
        if handler is None:
            dn = getattr(req, "dn", None)
            why = ": the PBX owns its network" if type(req) in _UNSUPPORTED else ""
            self.fail(
                req,
                dn if isinstance(dn, str) else None,
                TErrorCode.TERR_UNSUP_OPER,
                f"{request_name(req)} is not supported by premise switch {self.name}{why}",
            )
            return
        handler(self, req)

    def drain_events(self) -> list[SwitchEvent]:
        """Every event queued since the last call, oldest first."""
        events, self.events = self.events, []
        return events

    def compact(self) -> int:
        """Rebuild the view's and the premise call tables if they are mostly empty."""
        return self.view.compact() + int(shrink(self.calls)) + int(shrink(self.by_conn))

    # -- HA: the PBX side of a call in its store record (issue 25, G27) -------------------------

    def call_state(self, conn_id: str) -> Any:
        """The PBX side of the call of ``conn_id`` for its store record (``None``: none);
        a duck-typed hook of ``service/persist.py`` (:mod:`.persist`)."""
        return persist.premise_state(self, conn_id)

    def restore_call_state(self, conn_id: str, raw: Any) -> bool:
        """Put a restored call's PBX side back (no event, nothing sent): the snapshot resync
        of the next link start checks it against the PBX (:mod:`.persist`). Until then (or the
        invoke timeout), the requests that need the PBX wait (:attr:`parked`) instead of being
        refused: G27, resync then answer."""
        restored = persist.restore_premise(self, conn_id, raw)
        if restored and self.parked is None and not self.view.link_up:
            self.parked, self.parked_until = [], None
        return restored

    def announce(self, conn_id: str) -> list[SwitchEvent]:
        """HA takeover: the events the call of ``conn_id`` had at our DNs (EventRinging, and
        EventEstablished when answered there), as the call side would have received them, for a
        call side that kept them at a Behind port for a ``NewCall`` still to come (they are not
        in the store). Not published, the view unchanged; nothing for a DN a release clears."""
        call = self.call_of(conn_id)
        if call is None:
            return []
        data = self.view.user_data(conn_id)
        if data is None:
            data = call.carried
        out: list[SwitchEvent] = []
        for dn, state in call.at.items():
            if (call.premise_id, dn) in self.clearing:
                continue
            kinds = (
                (EventRinging, EventEstablished)
                if state in ("connected", "held")
                else (EventRinging,)
            )
            for cls in kinds:
                out.append(
                    cls(
                        switch=self.name,
                        dn=dn,
                        conn_id=call.conn_id,
                        call_id=call.call_id,
                        ani=call.ani,
                        dnis=call.dnis,
                        this_queue=call.this_queue,
                        other_dn=call.other_dn,
                        user_data=data,
                    )
                )
        return out

    def restored_dn(self, number: str) -> None:
        """A DN's state was restored from the store (HA takeover): out of service there, it is
        back in service once this node's PBX monitors it (the old node's reason is not known
        here; a PBX that still will not monitor it, or reports it out of service, says so
        again)."""
        record = self.view.record(number)
        if record is not None and record.type in PBX_DN_TYPES and not record.in_service:
            self.unmonitored.add(number)

    def _clear_again(self) -> None:
        """After the resync of a takeover: the connections a TReleaseCall of the old node was
        clearing and that the PBX still shows are cleared again (their EventReleased carries
        that request's ReferenceID, as it would have)."""
        session = self.session
        pending, self.reclear = self.reclear, []
        if session is None:
            return
        for premise_id, dn, ref in pending:
            call = self.calls.get(premise_id)
            if call is None or dn not in call.at:
                continue  # the PBX cleared it: the resync released it
            LOG.info(
                "switch %s: clearing call %s at %s again (taken over)", self.name, call.conn_id, dn
            )
            self.clearing[(premise_id, dn)] = ref
            session.send_request(
                m.ClearConnection(connection_to_be_cleared=placed.connection(call, dn)),
                math.inf,
                dn=dn,
            )

    def _unpark(self) -> None:
        """The link is up and resynced (or it did not come up in time): the parked requests
        are handled now, as if they had just come (refused ``TERR_NO_SWITCH`` if still down)."""
        parked, self.parked, self.parked_until = self.parked, None, None
        if parked:
            LOG.info(
                "switch %s: %d requests that waited for the link's resync handled (link %s)",
                self.name,
                len(parked),
                "up" if self.view.link_up else "still down",
            )
            for req in parked:
                self.request(req)

    # -- the link --------------------------------------------------------------------------------

    def open_link(self) -> None:
        """TOpenLink: the adapter connects; the link is reported up once it is usable."""
        self._link_wanted = True

    def close_link(self) -> None:
        """TCloseLink: stop the session (StopApplicationSession), then close the connection."""
        self._link_wanted = False
        session = self.session
        if session is None:
            return
        if self._stage != "down":
            self._lost("closed by request (TCloseLink)")
        if session.state is SessionState.ACTIVE:
            session.stop(self.now)
        self._closing = True

    def _lost(self, reason: str) -> None:
        """The link went down: EventLinkDisconnected (if it was up), waiting requests refused,
        calls kept."""
        was_up = self.view.link_up
        # a close we asked for (a reload, the stop) is no fault
        level = logging.INFO if reason.startswith("closed by request") else logging.WARNING
        LOG.log(level, "switch %s: link to the PBX down (%s); calls kept", self.name, reason)
        if was_up:
            self.emit(EventLinkDisconnected(switch=self.name, tserver=self.tserver))
        waiting = list(self.requests.values())
        self.requests.clear()
        self.services.clear()
        self.deadlines.clear()
        self.clearing.clear()
        placed.link_lost(self)
        for req in waiting:
            dn = getattr(req, "dn", None)
            self.fail(
                req,
                dn if isinstance(dn, str) else None,
                TErrorCode.TERR_NO_SWITCH,
                f"the link of T-Server {self.tserver} to premise switch {self.name} was lost",
            )
        self._stage = "down"
        self._monitoring.clear()
        self._snapshots.clear()
        self._closing = True

    def _handle(self, events: list[se.SessionEvent], now: float) -> None:
        for event in events:
            handler = _SESSION_EVENTS.get(type(event))
            if handler is not None:
                handler(self, event, now)

    def _started(self, event: se.SessionStarted, now: float) -> None:
        LOG.info(
            "switch %s: CSTA session %s started (%s s)",
            self.name,
            event.session_id,
            event.session_duration_s,
        )
        session = self.session
        assert session is not None
        self._stage = "monitoring"
        self._tally = [0, 0, 0]
        for dn in self.view.dns():
            if dn.type in PBX_DN_TYPES and dn.registered:
                session.monitor_start(dn.number, now)
                self._monitoring.add(dn.number)
        if not self._monitoring:
            self._take_snapshots(now)

    def monitored(self, dn: str, error: str | None) -> None:
        """The PBX answered a MonitorStart of the link's start for ``dn`` (``error``: it
        refused or did not answer); the snapshots follow the last one."""
        monitors.monitor_answered(self, dn, error)
        if dn in self._monitoring:
            self._monitoring.discard(dn)
            if not self._monitoring and self._stage == "monitoring":
                self._take_snapshots(self.now)

    def _take_snapshots(self, now: float) -> None:
        session = self.session
        assert session is not None
        self._stage = "snapshots"
        for dn in self.view.dns():
            if session.monitor_of(dn.number) is not None:
                session.snapshot_device(dn.number, now)
                self._snapshots[dn.number] = set()
        if not self._snapshots:
            self._link_up()

    def snapshot(self, dn: str, answer: m.CstaMessage | None, error: str | None) -> None:
        """The PBX answered SnapshotDevice for ``dn``: resync it (or keep its calls, on error)."""
        fresh = self._snapshots.pop(dn, None)
        if fresh is None:
            return
        if isinstance(answer, m.SnapshotDeviceResponse):
            counts = calls.resync_dn(self, dn, answer, fresh)
            self._tally = [a + b for a, b in zip(self._tally, counts, strict=True)]
        else:
            LOG.warning(
                "switch %s: no snapshot of DN %s (%s): its calls are kept as they were",
                self.name,
                dn,
                error,
            )
        if not self._snapshots and self._stage == "snapshots":
            self._link_up()

    def _link_up(self) -> None:
        kept, released, new = self._tally
        LOG.info(
            "switch %s: link to the PBX up; resync: %d calls kept, %d released, %d new",
            self.name,
            kept,
            released,
            new,
        )
        self._stage = "up"
        if not self.view.link_up:
            self.emit(EventLinkConnected(switch=self.name, tserver=self.tserver))
        if self.reclear:  # HA (issue 25): releases the old node may never have sent
            self._clear_again()
        if self.parked is not None:  # HA (issue 25): a takeover's requests, after the resync
            self._unpark()

    def answer(
        self,
        invoke_id: int,
        req: SwitchRequest,
        reply: m.CstaMessage | None,
        error: m.NegativeResponse | None,
    ) -> None:
        """The PBX's answer (``reply``), refusal (``error``) or silence (both ``None``) to the
        CSTA request sent under ``invoke_id`` for ``req``: call control's, or the others'."""
        service = self.services.pop(invoke_id, None)
        done = control.CONTROL_ANSWERS.get(service) if service is not None else None
        if done is not None:
            done(self, req, reply, error, invoke_id)
        else:
            monitors.answer(self, req, reply, error)

    def on_event(self, event: se.EventReceived) -> None:
        """A CSTA event on one of our monitors."""
        dn = event.dn
        if dn is None or self.view.record(dn) is None:
            LOG.debug(
                "switch %s: %s on an unknown monitor %s (ignored)",
                self.name,
                type(event.event).__name__,
                event.event.monitor_cross_ref_id,
            )
            return
        handler = _EVENTS.get(type(event.event))
        if handler is None:
            LOG.debug("switch %s: %s at %s (ignored)", self.name, type(event.event).__name__, dn)
            return
        handler(self, dn, event.event)
        fresh = self._snapshots.get(dn)
        if fresh is not None:
            fresh.update(c.premise_id for c in self.calls.values() if dn in c.at)


# -- session events --------------------------------------------------------------------------------


def _on_started(sw: PremiseSwitch, event: Any, now: float) -> None:
    sw._started(event, now)


def _on_refused(sw: PremiseSwitch, event: Any, now: float) -> None:
    sw._lost(f"the PBX refused the CSTA session: {event.error}")


def _on_lost(sw: PremiseSwitch, event: Any, now: float) -> None:
    if sw._stage != "down":
        sw._lost(event.reason)
    sw._closing = True


def _on_protocol_error(sw: PremiseSwitch, event: Any, now: float) -> None:
    LOG.warning("switch %s: bad CSTA from the PBX: %s", sw.name, event.reason)


def _on_event(sw: PremiseSwitch, event: Any, now: float) -> None:
    sw.on_event(event)


def _on_answer(sw: PremiseSwitch, event: Any, now: float) -> None:
    """A response, a negative response or a timeout, routed to what waits for it."""
    error: m.NegativeResponse | None = getattr(event, "error", None)
    answer: m.CstaMessage | None = getattr(event, "response", None)
    text = None
    if answer is None:
        text = describe(error) if error is not None else "no answer in time"
    req = sw.requests.pop(event.invoke_id, None)
    sw.deadlines.pop(event.invoke_id, None)
    if req is not None:
        sw.answer(event.invoke_id, req, answer, error)
    elif isinstance(event.request, m.MonitorStart) and event.dn is not None:
        sw.monitored(event.dn, text)
    elif isinstance(event.request, m.SnapshotDevice) and event.dn is not None:
        sw.snapshot(event.dn, answer, text)
    elif text is not None:
        LOG.info(
            "switch %s: %s for %s refused: %s",
            sw.name,
            type(event.request).__name__,
            event.dn,
            text,
        )


def _on_note(sw: PremiseSwitch, event: Any, now: float) -> None:
    LOG.debug("switch %s: %s", sw.name, event)


_SESSION_EVENTS: Final[
    Mapping[type[se.SessionEvent], Callable[[PremiseSwitch, Any, float], None]]
] = {
    se.SessionStarted: _on_started,
    se.SessionRefused: _on_refused,
    se.SessionLost: _on_lost,
    se.ProtocolError: _on_protocol_error,
    se.EventReceived: _on_event,
    se.ResponseReceived: _on_answer,
    se.RequestFailed: _on_answer,
    se.InvokeTimedOut: _on_answer,
    se.SystemStatusReceived: _on_note,
    se.DocumentIgnored: _on_note,
}
"""What the switch does with each report of its CSTA session."""


# -- requests ----------------------------------------------------------------------------------


def _on_open_link(sw: PremiseSwitch, req: rq.TOpenLink) -> None:
    sw.open_link()


def _on_close_link(sw: PremiseSwitch, req: rq.TCloseLink) -> None:
    sw.close_link()


_HANDLERS: Final[Mapping[type[SwitchRequest], Callable[[PremiseSwitch, Any], None]]] = {
    **agents.AGENT_REQUESTS,
    **control.CONTROL_REQUESTS,
    rq.TReleaseCall: calls.on_release_call,
    rq.TAbandonCall: calls.on_release_call,
    rq.TAttachUserData: vcalls.on_attach_user_data,
    rq.TUpdateUserData: vcalls.on_update_user_data,
    rq.TDeleteUserData: vcalls.on_delete_user_data,
    rq.TDeleteAllUserData: vcalls.on_delete_all_user_data,
    rq.TRouteRequest: vrouting.on_route_request,
    rq.TRouteCall: vrouting.on_route_call,
    rq.TApplyTreatment: vrouting.on_apply_treatment,
    rq.TTreatmentStatus: vrouting.on_treatment_status,
    rq.TRouteAbort: vrouting.on_route_abort,
    rq.TRouteFailed: vrouting.on_route_failed,
    rq.TRegisterAddress: monitors.on_register,
    rq.TUnregisterAddress: monitors.on_unregister,
    rq.TConfigureAddresses: monitors.on_configure,
    rq.TOpenLink: _on_open_link,
    rq.TCloseLink: _on_close_link,
}
"""Request type → handler: the one dispatch point of :meth:`PremiseSwitch.request`."""

_EVENTS: Final[Mapping[type[m.CstaEvent], Callable[[PremiseCore, str, Any], None]]] = {
    **calls.CALL_EVENTS,
    **agents.AGENT_EVENTS,
    **placed.CONTROL_EVENTS,
}
"""CSTA event → handler: calls, agents, and call control's over the calls' own."""
