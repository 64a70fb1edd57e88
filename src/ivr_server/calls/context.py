"""What the call side shares: the call tables, timers, pending switch requests, the table runner.

:meth:`CallContext.input` is the one method that moves a call through the table.

The families of messages (:mod:`~ivr_server.calls.admission`, :mod:`~ivr_server.calls.userdata`,
:mod:`~ivr_server.calls.info`, :mod:`~ivr_server.calls.routing`, :mod:`~ivr_server.calls.ending`)
each hold this context and nothing of each other's but what they are given; the
:class:`~ivr_server.calls.manager.CallManager` builds them and registers their table actions in
:attr:`CallContext.actions`, so this module imports none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final, Literal

from ivr_server.calls.call import (
    AccessNumbersFn,
    Call,
    CallSettings,
    DialOutReportFn,
    Owner,
    PortKey,
    PortSlot,
    SendFn,
)
from ivr_server.calls.machine import BEFORE, REFUSALS, TRANSITIONS, CallInput, CallState, Refuse
from ivr_server.calls.network_table import NETWORK_REFUSALS, NETWORK_TRANSITIONS
from ivr_server.calls.replies import blocked, invalid_request, unsupported
from ivr_server.calls.timeline import OUT, Timelines
from ivr_server.calls.timers import CallTimers
from ivr_server.memory import shrink
from ivr_server.metrics import Metrics
from ivr_server.switch import TCallerHangUp, TReleaseCall
from ivr_server.switch.references import CALLS, ReferenceIds
from ivr_server.wire import Message

__all__ = ["Action", "CallContext", "Pending", "PendingKind"]

_COMPACT_PEAK: Final = 4096
"""Below this many calls in progress, no table is worth compacting (a wind-down that started
above it carries on below it, down to no call: :meth:`CallContext.forget`)."""

log = logging.getLogger("ivr_server.calls")

Action = Callable[[Call, float, Any], None]
"""A table action: ``action(call, now, input's message or event)``."""
PendingKind = Literal["inbound", "outbound", "udata", "route", "control", "network"]
"""Which family answers a pending request's events."""


class Pending:
    """A switch request waiting for its events. Several per call, so a plain class (native in the
    compiled build) rather than a frozen dataclass, whose generated ``__init__`` runs in Python."""

    __slots__ = ("call", "kind", "owner", "request_id")

    def __init__(
        self, call: Call, kind: PendingKind, request_id: str = "", owner: Owner | None = None
    ) -> None:
        self.call: Final = call
        self.kind: Final = kind
        self.request_id: Final = request_id
        self.owner: Final = owner
        """Who asked (user-data replies go back to the requester)."""


class CallContext:
    """The state of every call of the server, and the steps all families of messages share."""

    def __init__(
        self,
        settings: CallSettings,
        send: SendFn,
        metrics: Metrics,
        dial_out_report: DialOutReportFn | None,
        access_numbers: AccessNumbersFn | None = None,
    ) -> None:
        self.settings = settings
        self._send: Final = send
        self.timeline: Final = Timelines(settings.timeline)
        """Every call's timeline (:mod:`ivr_server.calls.timeline`); the manager sets its
        clock at each input."""
        self.metrics: Final = metrics
        self.dial_out_report: Final = dial_out_report
        self.access_numbers: AccessNumbersFn | None = access_numbers
        """The service's access numbers (``AccessNumGet``/``AccessNumCancel``); ``None``: every
        such request fails."""
        self.calls: Final[dict[str, Call]] = {}
        """The call's key (its CallId within its IVR's scope, ``Call.key``) -> call."""
        self.by_port: Final[dict[tuple[str, str], Call]] = {}
        """(IVR, port) -> its call."""
        self.by_conn: Final[dict[str, Call]] = {}
        """ConnID -> the call, while the switch has it."""
        self.consults: Final[dict[str, Call]] = {}
        """The ConnID of a consultation call (InitXfer/InitConf) -> the call it consults for."""
        self.pending: Final[dict[int, Pending]] = {}
        """ReferenceID -> the request waiting for its events."""
        self.ports: Final[dict[PortKey, PortSlot]] = {}
        """(switch, DN) -> the Behind port there: every configured one, and any other where a
        Behind call waits (:mod:`ivr_server.calls.behind`)."""
        self.refs: Final = ReferenceIds(*CALLS)
        self.timers: Final = CallTimers()
        self.actions: Final[dict[str, Action]] = {}
        """Table action name -> the family's method (filled in by the manager)."""
        self.requester: Owner | None = None
        """The session whose request is being handled: direct replies go to it, unsolicited call
        events to the call's owner (PROTOCOL.md §9.4.3)."""
        self.completed = 0
        """Calls that ended since start (for statistics)."""
        self.peak = 0
        """Most calls in progress since the last compaction."""
        self.winding_down = False
        """A compaction after a peak of thousands happened and calls remain: the next eightfold
        drops (down to none) are due too, however few calls that is."""
        self.compact_due = False
        """Calls in progress fell eightfold below a peak of thousands, or further on the way
        down to none: the owner should call :meth:`compact` (and every other per-call
        table's), then give the freed heap back."""
        self.dirty: set[str] | None = None
        """HA tracking (issue 25, ``service/persist.py``): the keys of the calls changed,
        started or forgotten since the last collect; ``None`` (the default, ``[ha] mode =
        off``): nothing is tracked, at the cost of one test per change."""

    def mark(self, call: Call) -> None:
        """HA tracking: ``call`` changed (its record must be written again)."""
        dirty = self.dirty
        if dirty is not None:
            dirty.add(call.key)

    def input(self, call: Call, event: CallInput, now: float, arg: Any = None) -> None:
        """Run the call's table for one call-control input (a Network call's:
        :mod:`~ivr_server.calls.network_table`): the row's action, then the call's next state
        (or the call forgotten); a pair the table does not hold is refused per
        :data:`~ivr_server.calls.machine.REFUSALS` (or ``NETWORK_REFUSALS``), the state
        unchanged."""
        network = call.network
        step = (NETWORK_TRANSITIONS if network else TRANSITIONS).get((call.state, event))
        if step is None:
            refusals = NETWORK_REFUSALS if network else REFUSALS
            refusal = refusals.get((call.state, event), Refuse.BLOCKED_REQ)
            reason = f"{event.value} not allowed in state {call.state.value}"
            if refusal is Refuse.IGNORE:
                log.debug("call %s: %s ignored", call.call_id, reason, extra=call.log_fields())
                return
            if refusal is Refuse.INVALID_REQ:
                raise invalid_request(call.call_id, reason)
            if refusal is Refuse.UNSUP_OPER:
                raise unsupported(call.call_id, reason)
            raise blocked(call.call_id, reason)
        before = call.state
        dirty = self.dirty
        if dirty is not None:  # HA tracking (issue 25)
            dirty.add(call.key)
        self.actions[step.action](call, now, arg)
        nxt = step.next_state
        if nxt is None:
            self.forget(call)
        elif nxt is BEFORE:
            call.state = call.resume
        else:
            call.state = nxt
        if log.isEnabledFor(logging.DEBUG):  # the hot path: no log fields built for nothing
            log.debug(
                "call %s: %s --%s--> %s",
                call.call_id,
                before.value,
                event.value,
                call.state.value,
                extra=call.log_fields(),
            )

    def send(self, owner: Owner | None, call: Call, message: Message) -> None:
        """A message to the IVR about ``call`` (on the call's timeline too)."""
        self.timeline.record(call.key, OUT, message)
        self._send(owner, call.call_id, message)

    def pend(self, call: Call, kind: PendingKind, request_id: str = "") -> int:
        """A ReferenceID for a request whose events must come back to ``call``."""
        ref = self.refs()
        self.pending[ref] = Pending(call, kind, request_id, self.requester)
        return ref

    def ref(self) -> int:
        """A ReferenceID for a request whose answer nobody waits for."""
        return self.refs()

    def report(self, call: Call, kind: str, cause: str | None = None) -> None:
        """Tell an outbound call's dial-out request how the call goes."""
        if call.dial_out is not None and self.dial_out_report is not None:
            self.dial_out_report(call.dial_out, kind, call.call_id, cause)

    def release(self, call: Call) -> None:
        """Release the port's call on the switch, if the switch still has it, and the
        consultation call the port holds, if any."""
        conn_id = call.conn_id
        if conn_id is not None and call.state is not CallState.DETACHED:
            call.switch.request(TReleaseCall(reference_id=self.ref(), conn_id=conn_id, dn=call.dn))
        consult = call.consult_conn_id
        if consult is not None:
            call.switch.request(TReleaseCall(reference_id=self.ref(), conn_id=consult, dn=call.dn))

    def add(self, call: Call, now: float) -> None:
        """Index a new call and start its call timeout."""
        calls = self.calls
        calls[call.key] = call
        dirty = self.dirty
        if dirty is not None:  # HA tracking (issue 25)
            dirty.add(call.key)
        if len(calls) > self.peak:
            self.peak = len(calls)
        if not call.network:  # many Network calls wait at one routing DN: no port is taken
            self.by_port[(call.ivr, call.port)] = call
        self.timeline.start(call.key)
        self.timers.call.set(call.key, now + self.settings.call_timeout)

    @staticmethod
    def _port_still_in(call: Call, conn_id: str) -> bool:
        """Is the port's DN still a party of the switch's call ``conn_id`` (its release was
        refused)? A call the port left goes on without it (a conference, a transfer)."""
        snapshot = call.switch.view.call(conn_id)
        return snapshot is not None and call.dn in snapshot.parties

    def forget(self, call: Call) -> None:
        """The call is over: out of every table, its timers and pending requests gone, the port
        free; a compaction is asked for when the calls in progress fell far enough."""
        key = call.key
        del self.calls[key]
        dirty = self.dirty
        if dirty is not None:  # HA tracking (issue 25): a delete
            dirty.add(key)
        self.timeline.end(key, call.ivr)
        if self.by_port.get((call.ivr, call.port)) is call:
            del self.by_port[(call.ivr, call.port)]
        conn_id = call.conn_id
        if call.behind:
            self.unwait(call)
        if call.consult_conn_id is not None:
            self.consults.pop(call.consult_conn_id, None)
        if conn_id is not None:
            self.by_conn.pop(conn_id, None)
            if (
                not call.behind  # a premise call is the PBX's: cleared only by TReleaseCall
                and call.state is not CallState.DETACHED
                and call.switch.view.user_data(conn_id) is not None
                and self._port_still_in(call, conn_id)
            ):
                # the release was refused (e.g. the T-Server link is down): the port's call must
                # not outlive the IVR's call, so the switch clears it as if the caller hung up
                call.switch.request(TCallerHangUp(reference_id=self.refs(), conn_id=conn_id))
        self.timers.cancel_all(key)
        for ref in [ref for ref, p in self.pending.items() if p.call is call]:
            del self.pending[ref]
        if call.dial_out is not None:
            self.report(call, "ended" if call.answered else "abandoned")
            call.dial_out = None
        call.state = CallState.DETACHED
        self.completed += 1
        left = len(self.calls)
        if left * 8 < self.peak and (self.peak >= _COMPACT_PEAK or self.winding_down):
            # after a peak of 50,000: at 6,249 calls, 780, 97, 12, 1 and none. The last steps
            # rebuild nothing, but the heap is only given back once the calls' objects are gone
            self.peak = left
            self.winding_down = left > 0
            self.compact_due = True

    def unwait(self, call: Call) -> None:
        """``call`` no longer waits at its port for the PBX (it was reported, or it ended)."""
        key = (call.switch.name, call.dn)
        slot = self.ports.get(key)
        if slot is not None and slot.waiting is call:
            slot.waiting = None
            if slot.policy is None:  # not a configured Behind port: nothing to keep there
                del self.ports[key]

    def compact(self) -> int:
        """Rebuild the per-call tables that are mostly empty; how many were rebuilt."""
        self.compact_due = False
        tables: list[dict[Any, Any]] = [
            self.calls,
            self.by_port,
            self.by_conn,
            self.consults,
            self.pending,
            self.timeline.live,
        ]
        return sum(shrink(table) for table in tables) + self.timers.compact()
