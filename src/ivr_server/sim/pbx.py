"""The simulated PBX, sans-IO: a virtual switch behind CSTA server sessions, with a call model.

Theory of operation: the PBX's DNs, agents and calls live in a virtual switch built by
:func:`~ivr_server.switch.registry.build_switch` and driven only by requests (TInboundCall without
answer, TAnswerCall, TCallerHangUp, TReleaseCall, the agent requests, TSetInService). What the
switch does not know — the caller's number as a device, the dialled number, the queue a call came
through, busy and no-answer destinations, answer delays — is the PBX's own table of
:class:`SimCall` and per-DN :class:`DnSettings`. What happens is written as the canonical CSTA
call flows (``docs/csta-sim.md``) on the monitors of the devices involved, in every application
session.

Three kinds of doors, each taking ``now``: the operator's (:meth:`SimPbx.deliver`,
:meth:`~SimPbx.answer`, :meth:`~SimPbx.hangup`, :meth:`~SimPbx.set_dn`,
:meth:`~SimPbx.add_refusal`, :meth:`~SimPbx.drop_link`: the HTTP API and the scenario), the
links' (:meth:`~SimPbx.open_link`, :meth:`~SimPbx.link_data`, :meth:`~SimPbx.link_lost`) and the
timer's (:meth:`~SimPbx.next_deadline`, :meth:`~SimPbx.handle_timer`). After any door the adapter
writes :meth:`~SimPbx.outgoing` and closes the links it marks.
"""

from __future__ import annotations

__all__ = ["ENDED_KEPT", "SimPbx"]

import itertools
import logging
from collections import deque
from collections.abc import Iterable
from typing import Any, Final

from ivr_server.sim.config import SimConfig
from ivr_server.sim.control import CONTROL_SERVICES, leave_conference
from ivr_server.sim.model import LIVE, DnSettings, LinkInfo, SimCall, SimError
from ivr_server.sim.services import NOT_SERVED, SERVICES, SWITCH_TO_CSTA, error_text
from ivr_server.switch import requests as rq
from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.dialects import DIALECTS
from ivr_server.switch.csta.server import (
    ApplicationSessionEnded,
    ApplicationSessionStarted,
    CstaServerSession,
    Refusal,
    Refusals,
    RequestReceived,
    RequestRefused,
    ServerEvent,
    ServerProtocolError,
)
from ivr_server.switch.events import EventError, EventRinging, SwitchEvent, WorkMode
from ivr_server.switch.protocol import Switch
from ivr_server.switch.registry import build_switch
from ivr_server.vocabulary import DnType

_log = logging.getLogger("ivr_server.sim")

ENDED_KEPT: Final = 1000
"""Ended calls kept for ``GET /api/v1/calls`` (the oldest are forgotten)."""

_CALL_DN_TYPES: Final = frozenset({DnType.VOICE_TREATMENT_PORT, DnType.EXTENSION})


class SimPbx:
    """The simulated PBX of ``config`` (the API in the module docstring)."""

    def __init__(self, config: SimConfig, now: float = 0.0) -> None:
        options = config.simulator
        self.name = options.name
        self.options = options
        self.refusals = Refusals()
        self._dn_types = {d.number: d.type for d in config.dns}
        self.settings = {
            d.number: DnSettings(busy=d.busy, no_answer=d.no_answer, answer_delay=d.answer_delay)
            for d in config.dns
        }
        self.switch: Switch = build_switch(
            "virtual", options.name, "csta-sim", [(d.number, d.type) for d in config.dns]
        )
        self._refs = itertools.count(1)
        self._call_ids = itertools.count(1)
        self.ask(rq.TOpenLink(reference_id=0))
        self.calls: dict[str, SimCall] = {}
        self._ended: deque[str] = deque()
        self._live_at: dict[str, str] = {}
        """DN → the id of the call there (a DN holds one)."""
        self._answers: dict[str, float] = {}
        """Call id → when its DN answers it."""
        self.links: dict[int, LinkInfo] = {}
        self._link_ids = itertools.count(1)
        self._closing: set[int] = set()
        self.refuse_links_until = 0.0
        self.started = now
        """When the PBX started (its clock)."""
        for agent in config.agents:
            self.publish(
                self.ask(
                    rq.TAgentLogin(
                        reference_id=self.next_ref(),
                        dn=agent.dn,
                        queue=agent.queue,
                        agent_id=agent.agent_id,
                        work_mode=WorkMode.AUTO_IN if agent.ready else WorkMode.UNKNOWN,
                    )
                )
            )

    # -- the virtual switch ----------------------------------------------------------------

    def next_ref(self) -> int:
        """A fresh ReferenceID for a request to the switch."""
        return next(self._refs)

    def ask(self, request: rq.SwitchRequest) -> list[SwitchEvent]:
        """Send ``request`` to the switch; the events it caused."""
        self.switch.request(request)
        return self.switch.drain_events()

    def publish(self, events: Iterable[SwitchEvent]) -> None:
        """Agent and DN-service events of the switch, as CSTA events on the DN's monitors."""
        for event in events:
            made = SWITCH_TO_CSTA.get(type(event))
            if made is not None:
                dn = getattr(event, "dn", "")
                self._emit((dn,), made(event))

    def device_known(self, dn: str) -> bool:
        """Whether ``dn`` is one of the PBX's devices (it can be monitored)."""
        return dn in self._dn_types

    # -- writing to the applications --------------------------------------------------------

    def emit(self, devices: Iterable[str], event: m.CstaEvent) -> None:
        """``event`` on the monitors of each of ``devices`` that is a device of the PBX."""
        self._emit(devices, event)

    def _emit(self, devices: Iterable[str], event: m.CstaEvent) -> None:
        for device in dict.fromkeys(d for d in devices if d in self._dn_types):
            for link in self.links.values():
                link.session.send_event(device, event)

    def outgoing(self) -> list[tuple[int, bytes, bool]]:
        """(link, bytes to write, close it after) for every link with something to do."""
        out = []
        for link_id, link in list(self.links.items()):
            data = link.session.data_to_send()
            close = link.session.closing or link_id in self._closing
            if data or close:
                out.append((link_id, data, close))
            if close:
                del self.links[link_id]
                self._closing.discard(link_id)
        return out

    # -- the links' doors -------------------------------------------------------------------

    def open_link(self, peer: str, now: float) -> int | None:
        """A new application connection; its id, or ``None`` while links are refused."""
        if now < self.refuse_links_until:
            _log.info("csta: connection from %s refused: the link is down", peer)
            return None
        link_id = next(self._link_ids)
        session = CstaServerSession(
            session_id=f"{self.name}-{link_id}",
            device_known=self.device_known,
            refusals=self.refusals,
            dialect=DIALECTS[self.options.dialect],
            application_id=self.options.application_id,
            user_name=self.options.user,
            password=self.options.password,
            max_duration_s=self.options.session_duration_max,
        )
        self.links[link_id] = LinkInfo(peer=peer, session=session)
        _log.info("csta: connection %d from %s", link_id, peer)
        return link_id

    def link_data(self, link_id: int, data: bytes, now: float) -> None:
        """Bytes from application connection ``link_id``."""
        link = self.links.get(link_id)
        if link is not None:
            self._on_session_events(link_id, link.session.receive_data(data, now), now)

    def link_lost(self, link_id: int, now: float) -> None:
        """Connection ``link_id`` is gone."""
        link = self.links.pop(link_id, None)
        self._closing.discard(link_id)
        if link is not None:
            self._on_session_events(link_id, link.session.close("connection closed"), now)

    def _on_session_events(self, link_id: int, events: list[ServerEvent], now: float) -> None:
        for event in events:
            if isinstance(event, RequestReceived):
                self._serve(link_id, event.invoke_id, event.request, now)
            elif isinstance(event, ApplicationSessionStarted):
                _log.info(
                    "csta: session %s started (application %s, %d s)",
                    event.session_id,
                    event.application_id,
                    event.duration_s,
                )
            elif isinstance(event, ApplicationSessionEnded):
                _log.info("csta: connection %d session ended: %s", link_id, event.reason)
            elif isinstance(event, RequestRefused):
                _log.info(
                    "csta: refusing %s (invoke %d) with %s after %.1f s",
                    type(event.request).__name__,
                    event.invoke_id,
                    error_text(event.error),
                    event.delay,
                )
            elif isinstance(event, ServerProtocolError):
                _log.warning("csta: connection %d: %s", link_id, event.reason)

    # -- requests the sessions hand up ------------------------------------------------------

    def _serve(self, link_id: int, invoke_id: int, request: m.CstaRequest, now: float) -> None:
        session = self.links[link_id].session
        _log.debug("csta: %s (invoke %d) on connection %d", request, invoke_id, link_id)
        handler = SERVICES.get(type(request))
        control = CONTROL_SERVICES.get(type(request))
        if handler is not None:
            outcome = handler(self, request)
        elif control is not None:
            outcome = control(self, request, now)
        else:
            session.refuse(invoke_id, NOT_SERVED)
            return
        if isinstance(outcome, m.NegativeResponse):
            session.refuse(invoke_id, outcome)
            return
        response, after = outcome
        session.respond(invoke_id, response)
        after()

    # -- the operator's doors ---------------------------------------------------------------

    def deliver(
        self,
        ani: str,
        dn: str,
        now: float,
        *,
        dnis: str | None = None,
        queue: str | None = None,
        answer_after: float | None = None,
    ) -> SimCall:
        """A call from ``ani`` to ``dn`` (dialled as ``dnis``, through ACD ``queue``): Delivered on
        ``dn``'s monitors and answered when its delay says; ``state`` ``busy`` or
        ``out-of-service`` when it could not be delivered (FailedEvent on the caller's side)."""
        dn_type = self._dn_types.get(dn)
        if dn_type is None:
            raise SimError(404, f"no DN {dn} on {self.name}")
        if dn_type not in _CALL_DN_TYPES:
            raise SimError(422, f"DN {dn} is a {dn_type.value}: deliver to a port or extension")
        settings = self.settings[dn]
        snapshot = self.switch.view.dn(dn)
        assert snapshot is not None
        dnis = dnis or dn
        busy = settings.busy or dn in self._live_at
        if busy or not snapshot.in_service:
            state = "busy" if busy else "out-of-service"
            call = self._remember(
                SimCall(
                    id=str(next(self._call_ids)),
                    ani=ani,
                    dn=dn,
                    dnis=dnis,
                    queue=queue,
                    state=state,
                    cleared_by=dn,
                )
            )
            self._emit(
                (ani,),
                m.FailedEvent(
                    monitor_cross_ref_id="",
                    failed_connection=m.ConnectionID(call_id=call.id, device_id=dn),
                    failing_device=dn,
                    called_device=dnis,
                    local_connection_info="null",
                    cause="busy" if busy else "trunksBusy",
                ),
            )
            _log.info("call from %s to %s: %s", ani, dn, state)
            return call
        events = self.ask(
            rq.TInboundCall(reference_id=self.next_ref(), dn=dn, ani=ani, dnis=dnis, answer=False)
        )
        ringing = next((e for e in events if isinstance(e, EventRinging)), None)
        if ringing is None:
            error = next((e for e in events if isinstance(e, EventError)), None)
            raise SimError(409, error.error_message if error is not None else "not delivered")
        call = self._remember(
            SimCall(
                id=str(next(self._call_ids)),
                conn_id=ringing.conn_id,
                ani=ani,
                dn=dn,
                dnis=dnis,
                queue=queue,
                state="alerting",
            )
        )
        self._live_at[dn] = call.id
        self._emit(
            (dn, ani),
            m.DeliveredEvent(
                monitor_cross_ref_id="",
                connection=m.ConnectionID(call_id=call.id, device_id=dn),
                alerting_device=dn,
                calling_device=ani,
                called_device=dnis,
                last_redirection_device=queue,
                local_connection_info="alerting",
                cause="distributed" if queue else "newCall",
            ),
        )
        _log.debug("call %s from %s to %s delivered (dnis %s)", call.id, ani, dn, dnis)
        delay = self._answer_delay(dn, dn_type, settings, answer_after)
        if delay == 0:
            self.answer(call.id, now)
        elif delay is not None:
            self._answers[call.id] = now + delay
        return call

    def _answer_delay(
        self, dn: str, dn_type: DnType, settings: DnSettings, given: float | None
    ) -> float | None:
        if given is not None:
            return max(given, 0.0)
        if settings.no_answer:
            return None
        if settings.answer_delay is not None:
            return settings.answer_delay
        if dn_type is DnType.VOICE_TREATMENT_PORT:
            return self.options.answer_delay
        return None

    def _remember(self, call: SimCall) -> SimCall:
        self.calls[call.id] = call
        if call.state not in LIVE:
            self._ended_now(call)
        return call

    def _ended_now(self, call: SimCall) -> None:
        self._ended.append(call.id)
        while len(self._ended) > ENDED_KEPT:
            self.calls.pop(self._ended.popleft(), None)

    def call(self, call_id: str) -> SimCall:
        """The call ``call_id``; :class:`SimError` 404 when unknown."""
        call = self.calls.get(call_id)
        if call is None:
            raise SimError(404, f"no call {call_id}")
        return call

    def answer(self, call_id: str, now: float) -> SimCall:
        """The called DN answers a ringing call: Established."""
        call = self.call(call_id)
        if call.state != "alerting":
            raise SimError(409, f"call {call_id} is {call.state}, not alerting")
        assert call.conn_id is not None
        self.ask(rq.TAnswerCall(reference_id=self.next_ref(), conn_id=call.conn_id, dn=call.dn))
        call.state = "connected"
        self._answers.pop(call.id, None)
        self._emit(
            (call.dn, call.ani),
            m.EstablishedEvent(
                monitor_cross_ref_id="",
                established_connection=m.ConnectionID(call_id=call.id, device_id=call.dn),
                answering_device=call.dn,
                calling_device=call.ani,
                called_device=call.dnis,
                last_redirection_device=call.queue,
                local_connection_info="connected",
                cause="distributed" if call.queue else "newCall",
            ),
        )
        _log.debug("call %s answered at %s", call.id, call.dn)
        return call

    def hangup(self, call_id: str, now: float, *, party: str | None = None) -> SimCall:
        """``party`` hangs up (the caller when ``None``): ConnectionCleared then CallCleared, or,
        for a conference party, ConnectionCleared only while the conference goes on."""
        call = self.call(call_id)
        if call.state not in LIVE:
            raise SimError(409, f"call {call_id} is {call.state}")
        assert call.conn_id is not None
        if party is None or party == call.ani:
            self.ask(rq.TCallerHangUp(reference_id=self.next_ref(), conn_id=call.conn_id))
            self.cleared(call, call.ani)
        elif party == call.dn or party in call.joined:
            self.clear(call, party)
        else:
            raise SimError(422, f"{party} is not a party of call {call_id}")
        return call

    def clear(self, call: SimCall, device: str) -> None:
        """``device``'s connection is cleared (ClearConnection, a party hanging up)."""
        if call.state not in LIVE:
            return
        if call.joined and device in (call.dn, *call.joined):
            leave_conference(self, call, device)
            return
        assert call.conn_id is not None
        at = call.ani if call.state == "dialing" else call.dn  # a busy placed call: the port's
        self.ask(rq.TReleaseCall(reference_id=self.next_ref(), conn_id=call.conn_id, dn=at))
        self.cleared(call, device)

    def cleared(self, call: SimCall, releasing: str) -> None:
        """The call ends, ``releasing`` cleared it: ConnectionCleared, CallCleared."""
        # a busy placed call never reached its DN
        devices = (call.ani,) if call.state == "dialing" else (call.dn, call.ani, *call.joined)
        self._emit(
            devices,
            m.ConnectionClearedEvent(
                monitor_cross_ref_id="",
                dropped_connection=m.ConnectionID(call_id=call.id, device_id=releasing),
                releasing_device=releasing,
                local_connection_info="null",
                cause="normalClearing",
            ),
        )
        self._emit(
            devices,
            m.CallClearedEvent(
                monitor_cross_ref_id="",
                cleared_call=m.ConnectionID(call_id=call.id),
                local_connection_info="null",
                cause="normalClearing",
            ),
        )
        answered = "answered" if call.state == "connected" else "not answered"
        call.state, call.cleared_by = "cleared", releasing
        self._answers.pop(call.id, None)
        for device in (call.dn, *call.joined):
            self._leave(call, device)
        self._ended_now(call)
        _log.info(
            "call %s from %s to %s (dnis %s%s): %s, cleared by %s",
            call.id, call.ani, call.dn, call.dnis,
            f", through {call.queue}" if call.queue else "", answered, releasing,
        )  # fmt: skip

    # -- the call-control services' steps (:mod:`.control`) --------------------------------

    def can_take_calls(self, dn: str) -> bool:
        """Whether ``dn`` is a port or extension of the PBX."""
        return self._dn_types.get(dn) in _CALL_DN_TYPES

    def live_at(self, dn: str) -> str | None:
        """The id of the call at ``dn``, if any."""
        return self._live_at.get(dn)

    def new_call(self, *, ani: str, dn: str, conn_id: str, state: str) -> SimCall:
        """A call ``ani`` (a port) placed to ``dn``, in the table."""
        call = SimCall(
            id=str(next(self._call_ids)),
            ani=ani,
            dn=dn,
            dnis=dn,
            queue=None,
            state=state,
            conn_id=conn_id,
        )
        return self._remember(call)

    def ring(self, call: SimCall, redirected_by: str | None, cause: str, now: float) -> None:
        """The call alerts at its DN: Delivered, then answered when the DN's delay says."""
        dn = call.dn
        call.state = "alerting"
        self._live_at[dn] = call.id
        self._emit(
            (dn, call.ani),
            m.DeliveredEvent(
                monitor_cross_ref_id="",
                connection=m.ConnectionID(call_id=call.id, device_id=dn),
                alerting_device=dn,
                calling_device=call.ani,
                called_device=dn,
                last_redirection_device=redirected_by if cause != "newCall" else None,
                local_connection_info="alerting",
                cause=cause,
            ),
        )
        delay = self._answer_delay(dn, self._dn_types[dn], self.settings[dn], None)
        if delay == 0:
            self.answer(call.id, now)
        elif delay is not None:
            self._answers[call.id] = now + delay

    def move(self, call: SimCall, dest: str, *, state: str = "alerting") -> None:
        """The call left its DN for ``dest`` (a transfer), where it is in ``state``."""
        self._leave(call, call.dn)
        call.dn, call.state = dest, state
        self._live_at[dest] = call.id

    def merge(self, consult: SimCall, into: SimCall) -> None:
        """The consultation call is merged into ``into`` (a transfer or conference): it ends
        without events of its own; its pending answer now answers ``into``."""
        due = self._answers.pop(consult.id, None)
        if due is not None:
            self._answers[into.id] = due
        self._leave(consult, consult.dn)
        consult.state, consult.cleared_by = "cleared", consult.ani
        self._ended_now(consult)

    def join(self, call: SimCall, device: str) -> None:
        """``device`` joined the call (a conference)."""
        call.joined.append(device)
        self._live_at[device] = call.id

    def part(self, call: SimCall, device: str) -> None:
        """``device`` left a conference (the next joined party takes the DN's place)."""
        if device in call.joined:
            call.joined.remove(device)
        elif call.joined:
            call.dn = call.joined.pop(0)
        self._leave(call, device)

    def _leave(self, call: SimCall, device: str) -> None:
        if self._live_at.get(device) == call.id:
            del self._live_at[device]

    def set_dn(
        self,
        dn: str,
        *,
        busy: bool | None = None,
        no_answer: bool | None = None,
        answer_delay: float | None = None,
        in_service: bool | None = None,
    ) -> dict[str, Any]:
        """Change what the operator sets on ``dn``; the DN as the API shows it."""
        settings = self.settings.get(dn)
        if settings is None:
            raise SimError(404, f"no DN {dn} on {self.name}")
        if answer_delay is not None and answer_delay < 0:
            raise SimError(400, "answer_delay must not be negative")
        if busy is not None:
            settings.busy = busy
        if no_answer is not None:
            settings.no_answer = no_answer
        if answer_delay is not None:
            settings.answer_delay = answer_delay
        if in_service is not None:
            self.publish(
                self.ask(
                    rq.TSetInService(reference_id=self.next_ref(), dn=dn, in_service=in_service)
                )
            )
        _log.info("DN %s set: %s", dn, self.dn_json(dn))
        return self.dn_json(dn)

    def dn_json(self, dn: str) -> dict[str, Any]:
        """One DN as the API shows it."""
        snapshot = self.switch.view.dn(dn)
        assert snapshot is not None
        settings = self.settings[dn]
        agent = snapshot.agent
        return {
            "number": dn,
            "type": snapshot.type.value,
            "in_service": snapshot.in_service,
            "busy": settings.busy,
            "no_answer": settings.no_answer,
            "answer_delay": settings.answer_delay,
            "agent": None
            if agent is None
            else {"agent_id": agent.agent_id, "queue": agent.queue, "state": agent.state.value},
            "monitors": sum(len(link.session.monitors_of(dn)) for link in self.links.values()),
        }

    def add_refusal(self, rule: Refusal) -> None:
        """Refuse the next ``rule.count`` requests of its kind (every session)."""
        self.refusals.add(rule)
        _log.info(
            "refusal rule: next %d %s refused with %s after %.1f s",
            rule.count,
            rule.request,
            error_text(rule.error),
            rule.delay,
        )

    def drop_link(self, now: float, down_for: float = 0.0) -> int:
        """Close every application connection now; refuse new ones for ``down_for`` seconds.
        The number of connections dropped."""
        self.refuse_links_until = now + max(down_for, 0.0)
        for link_id, link in self.links.items():
            link.session.close("link dropped")
            self._closing.add(link_id)
        _log.info(
            "link drop: %d connection(s) closed, down for %.1f s", len(self._closing), down_for
        )
        return len(self._closing)

    # -- the timer --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next run."""
        deadlines = list(self._answers.values())
        for link in self.links.values():
            deadline = link.session.next_deadline()
            if deadline is not None:
                deadlines.append(deadline)
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        """Answer the calls now due; the sessions' delayed answers and expiries."""
        for call_id in [c for c, at in self._answers.items() if at <= now]:
            self.answer(call_id, now)
        for link_id, link in list(self.links.items()):
            self._on_session_events(link_id, link.session.handle_timer(now), now)
