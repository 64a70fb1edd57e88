"""Behind-mode calls meet the premise switch's calls: correlation at the port DN, and the events
kept for a ``NewCall`` that has not come yet (MODES-AND-HA §1.2 B1, G14, G15).

Theory of operation. Behind, the IVR's ``NewCall`` asks the switch for nothing: the PBX delivers
the caller to the IVR's channel, and reports the call at the channel's port DN by itself, before
or after the ``NewCall``. Its events carry a ConnID no call of ours has yet, so
:meth:`CallManager.on_event <ivr_server.calls.manager.CallManager.on_event>` hands every
unsolicited event with an unknown ConnID to :meth:`Behind.on_unknown`, one dict lookup on the
event's (switch, DN) in the context's ``ports`` table (and nothing at all while no Behind port
exists: an In-Front server pays one truth test).

- A call waiting at that DN (``AWAIT_RINGING``) is *bound* to the premise call: it takes the
  ConnID, the switch's call id, ANI, DNIS, the other party and the queue, and the table sees the
  event (``CallStatus Ringing``; an answered call that never alerted gives ``Ringing`` then
  ``Established``). From then on the events find the call by its ConnID, as In-Front.
- Without a waiting call, the event is *kept* at the port (``defer-tlib-events``): the first
  premise call only, a second one while it is kept is logged and ignored; its ``EventReleased``
  drops it, and so does ``waiting-for-newcall-timeout`` (the ``deferred`` timer). A ``NewCall``
  on the port then takes the kept events at once (:meth:`Behind.wait`). What is kept is bounded
  by the number of Behind port DNs: one premise call, at most two events, per DN.

Which DNs are Behind ports, and how each keeps events, comes from
:attr:`CallSettings.behind_ports <ivr_server.calls.call.CallSettings.behind_ports>`; a Behind call
on another DN still waits there and is still bound, nothing is kept for it beforehand.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ivr_server.calls.admission import Admission
from ivr_server.calls.call import Call, DeferPolicy, PortKey, PortSlot
from ivr_server.calls.context import CallContext
from ivr_server.calls.machine import CallInput, CallState
from ivr_server.switch import EventError, EventEstablished, EventReleased, EventRinging, SwitchEvent

__all__ = ["Behind"]

log = logging.getLogger("ivr_server.calls")


class Behind:
    """The Behind ports: calls waiting there for the PBX, and premise events waiting for a call."""

    def __init__(self, ctx: CallContext, admission: Admission) -> None:
        self.ctx = ctx
        self.admission = admission
        """Feeds a bound call's events to the table, as In-Front."""

    def configure(self, ports: Mapping[PortKey, DeferPolicy]) -> None:
        """Take the Behind ports of a (new) configuration: what is kept at a port that is gone,
        or that no longer keeps anything, is dropped; calls waiting anywhere keep waiting."""
        table = self.ctx.ports
        for key, slot in list(table.items()):
            policy = slot.policy = ports.get(key)
            if policy is None or not policy.defer:
                self._drop(slot)
            if policy is None and slot.waiting is None:
                del table[key]
        for key, policy in ports.items():
            if key not in table:
                table[key] = PortSlot(key, policy)

    def wait(self, call: Call, now: float) -> None:
        """A Behind call was admitted: it takes the premise call kept at its port (``CallStatus
        Ringing``, and ``Established`` if it was answered, at once), or it waits there."""
        ctx = self.ctx
        key = (call.switch.name, call.dn)
        slot = ctx.ports.get(key)
        if slot is None:
            slot = ctx.ports[key] = PortSlot(key, None)
        if slot.conn_id is not None:
            events = slot.events
            self._drop(slot)
            self._bind(call, events, now)
        elif slot.waiting is not None:  # pragma: no cover - one DN is one IVR port (config checks)
            log.warning(
                "call %s: call %s already waits at %s; the PBX's next call there is not its",
                call.call_id,
                slot.waiting.call_id,
                call.dn,
                extra=call.log_fields(),
            )
        else:
            slot.waiting = call

    def on_unknown(self, event: SwitchEvent, now: float) -> None:
        """A switch event about a ConnID no call has."""
        if isinstance(event, EventError):
            # the answer to a request of a call that already ended (its TReleaseCall, the data of
            # its EndCall): the call is gone, its data stays with the switch's call
            log.info(
                "the switch %s refused %s for ConnID %s: %s (error %d)",
                event.switch,
                event.request,
                event.conn_id,
                event.error_message,
                event.error_code,
            )
            return
        if event.reference_id is not None:
            return  # an answer to a request of a call that ended
        if not isinstance(event, (EventRinging, EventEstablished, EventReleased)):
            return
        slot = self.ctx.ports.get((event.switch, event.dn))
        if slot is None:
            return
        if isinstance(event, EventReleased):
            if slot.conn_id == event.conn_id:
                log.info(
                    "premise call %s at %s released before any NewCall: its events are dropped",
                    event.conn_id,
                    event.dn,
                )
                self._drop(slot)
            return
        call = slot.waiting
        if call is not None:
            self._bind(call, (event,), now)
        elif slot.policy is not None and slot.policy.defer:
            self._keep(slot, event, now)

    def expire(self, key: PortKey) -> None:
        """``waiting-for-newcall-timeout`` at port ``key``: its kept events are dropped."""
        slot = self.ctx.ports.get(key)
        if slot is not None and slot.conn_id is not None:
            log.info(
                "premise call %s at %s: no NewCall came for it; its events are dropped",
                slot.conn_id,
                key[1],
            )
            slot.drop()

    # ------------------------------------------------------------------ steps

    def _bind(
        self, call: Call, events: Sequence[EventRinging | EventEstablished], now: float
    ) -> None:
        """``call`` is the premise call of ``events`` (oldest first): it takes its identity,
        and the table sees each event; an answer without alerting before it rings first."""
        ctx = self.ctx
        first = events[0]
        ctx.unwait(call)
        call.conn_id = first.conn_id
        call.switch_call_id = first.call_id
        ctx.by_conn[first.conn_id] = call
        log.info(
            "call %s: the PBX reports it at %s (premise call %d)",
            call.call_id,
            call.dn,
            first.call_id,
            extra=call.log_fields(),
        )
        for event in events:
            if call.key not in ctx.calls:
                return
            if isinstance(event, EventRinging):
                self.admission.on_ringing(call, event, now)
                continue
            if call.state is CallState.AWAIT_RINGING:  # a PBX that skips alerting
                call.track(event)
                ctx.input(call, CallInput.RINGING, now, event)
            self.admission.on_established(call, event, now)

    def _keep(self, slot: PortSlot, event: EventRinging | EventEstablished, now: float) -> None:
        """Keep ``event`` at the port for a ``NewCall`` (the first premise call only)."""
        if slot.conn_id is None:
            assert slot.policy is not None
            slot.conn_id = event.conn_id
            slot.events = [event]
            self.ctx.timers.deferred.set(slot.key, now + slot.policy.timeout)
            log.debug("premise call %s at %s kept for a NewCall", event.conn_id, event.dn)
        elif slot.conn_id == event.conn_id:
            events = slot.events
            for i, kept in enumerate(events):
                if type(kept) is type(event):
                    events[i] = event  # a repeated event: the latest one counts
                    return
            events.append(event)
        else:
            log.info(
                "premise call %s at %s ignored: premise call %s is kept there for a NewCall",
                event.conn_id,
                event.dn,
                slot.conn_id,
            )

    def _drop(self, slot: PortSlot) -> None:
        self.ctx.timers.deferred.cancel(slot.key)
        slot.drop()
