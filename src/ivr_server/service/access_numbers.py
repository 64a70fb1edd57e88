"""Access numbers in the service: ``AccessNumGet``/``AccessNumCancel`` answered from the
Locations of the configuration, and the data of a reserved number handed to the call that
arrives on it (MODES-AND-HA §1.4 X1-X2, G24; ``docs/access-numbers.md``).

Theory of operation. The call side asks :meth:`AccessNumberService.provide` for every
``AccessNumGet``/``AccessNumCancel`` of an In-Front or Behind call (``CallManager``'s access-number
provider; a Network call is answered ``Failure`` before it gets here). A pool Location is answered
at once; a peer Location is handed to :attr:`AccessNumberService.peers` (the API layer's HTTP
client, ``api/peers.py``) and answered later through :meth:`AccessNumberService.peer_answered`,
or ``Failure`` when its ``request-timeout`` passes first (:meth:`handle_timer`). The
reservations themselves are :class:`~ivr_server.sites.AccessNumbers`'s.

Hand-off: after a ``NewCall`` is admitted, :meth:`AccessNumberService.on_call_started` looks its
``DNIS`` (the dialled number, PROTOCOL.md §3.3.1) up among the reserved numbers; the data bound
to it is attached to the new call (Replace semantics) and the number is free again. The hook is
registered only while some Location has a pool here or some number is reserved: otherwise a
``NewCall`` costs nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from ivr_server.calls import Call, call_id_of
from ivr_server.config import ServerConfig
from ivr_server.sites import (
    AccessNumbers,
    Asking,
    PeerAsk,
    PeerRelease,
    Refused,
    Reservation,
    Reserved,
)
from ivr_server.switch.userdata import kv_update
from ivr_server.wire import Message
from ivr_server.wire import messages as m

from .context import ServiceContext

__all__ = ["AccessNumberService", "PeerSender"]

log = logging.getLogger("ivr_server.access_numbers")

PeerSender = Callable[[PeerAsk | PeerRelease], None]
"""Carries a request to a peer server (the API layer's HTTP client): a :class:`PeerAsk` is
answered through :meth:`AccessNumberService.peer_answered`; a :class:`PeerRelease` is best
effort."""

_FAILURE: dict[str, m.AccessNumResp] = {
    action: m.AccessNumResp(Action=action, Result="Failure") for action in ("Get", "Cancel")
}


class AccessNumberService:
    """The access numbers of one service (see the module docstring)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.numbers = AccessNumbers(ctx.config.locations)
        self.peers: PeerSender | None = None
        """The HTTP client of peer Locations (``None``: no API runs, peer Locations fail)."""
        ctx.calls.set_access_numbers(self.provide)
        ctx.stats.access_numbers = self.numbers.counts
        self.hooked = False
        """``on_call_started`` is one of the service's ``call_started`` hooks."""
        self.changed()

    def changed(self) -> None:
        """Look at new calls only while a number can be claimed (after any change of the
        reservations or Locations)."""
        wanted = self.numbers.active
        if wanted != self.hooked:
            if wanted:
                self.ctx.call_started.append(self.on_call_started)
            else:
                self.ctx.call_started.remove(self.on_call_started)
            self.hooked = wanted

    def reconfigure(self, config: ServerConfig) -> None:
        """A reload: the new Locations; reserved numbers keep their data until their end."""
        self.numbers.configure(config.locations)
        self.changed()

    # ------------------------------------------------------------------ the IVR's requests

    def provide(self, call: Call, msg: Message, now: float) -> m.AccessNumResp | None:
        """The answer to ``AccessNumGet``/``AccessNumCancel`` of ``call`` (``None``: later)."""
        if isinstance(msg, m.AccessNumGet):
            return self._get(call, msg, now)
        had, release = self.numbers.cancel(call.key)
        self._release_on_peer(release)
        self.changed()
        if not had:
            self._refused(call, "Cancel", "nothing pending")
            return _FAILURE["Cancel"]
        log.info("call %s: access number cancelled", call.call_id, extra=call.log_fields())
        return m.AccessNumResp(Action="Cancel", Result="Success")

    def _get(self, call: Call, msg: m.AccessNumGet, now: float) -> m.AccessNumResp | None:
        current = self.ctx.calls.user_data_of(call.key) or ()
        data = kv_update(current, msg.UDataEx) if msg.UDataEx else current
        outcome = self.numbers.get(call.key, msg.Location, msg.DestDN, msg.XRouteType, data, now)
        self._release_on_peer(outcome.released)
        self.changed()
        if isinstance(outcome, Refused):
            self._refused(call, "Get", outcome.reason)
            return _FAILURE["Get"]
        if isinstance(outcome, Reserved):
            log.info(
                "call %s: access number %s reserved at %s for %s",
                call.call_id,
                outcome.number,
                msg.Location,
                msg.DestDN,
                extra=call.log_fields(),
            )
            return m.AccessNumResp(Action="Get", Result="Success", AccessNum=outcome.number)
        return self._ask_peer(call, outcome)

    def _ask_peer(self, call: Call, outcome: Asking) -> m.AccessNumResp | None:
        ask = outcome.ask
        if self.peers is None:
            self.numbers.cancel(call.key)
            self._refused(call, "Get", f"peer {ask.peer} unreachable: no HTTP API runs here")
            return _FAILURE["Get"]
        log.info(
            "call %s: access number asked of peer %s for location %s",
            call.call_id,
            ask.peer,
            ask.remote_location,
            extra=call.log_fields(),
        )
        self.peers(ask)
        return None

    def peer_answered(self, ask: PeerAsk, number: str | None, reason: str, now: float) -> None:
        """The HTTP client's answer to ``ask``: the number the peer reserved, or ``None`` and
        why not. The call gets its ``AccessNumResp`` if it still waits; a number nobody waits
        for any more is released on the peer."""
        self.ctx.now = now
        waiting, stale = self.numbers.peer_answered(ask, number, now)
        self._release_on_peer(stale)
        if not waiting:
            log.info("call %s: late answer of peer %s ignored", call_id_of(ask.call_id), ask.peer)
            return
        if number is None:
            log.info(
                "call %s: AccessNumGet Failure: peer %s: %s",
                call_id_of(ask.call_id),
                ask.peer,
                reason,
            )
            answer = _FAILURE["Get"]
        else:
            log.info(
                "call %s: access number %s from peer %s", call_id_of(ask.call_id), number, ask.peer
            )
            answer = m.AccessNumResp(Action="Get", Result="Success", AccessNum=number)
        if not self.ctx.calls.answer_access_num(ask.call_id, answer):
            self._release_on_peer(self.numbers.cancel(ask.call_id)[1])  # the call has gone

    def _release_on_peer(self, release: PeerRelease | None) -> None:
        if release is not None and self.peers is not None:
            self.peers(release)

    def _refused(self, call: Call, action: Literal["Get", "Cancel"], reason: str) -> None:
        self.ctx.metrics.errors[f"access-num-{action.lower()}"] += 1
        log.info(
            "call %s: AccessNum%s Failure: %s",
            call.call_id,
            action,
            reason,
            extra=call.log_fields(),
        )

    # ------------------------------------------------------------------ the call that arrives

    def on_call_started(self, key: str, msg: m.NewCall) -> None:
        """Hand the data of the reserved number the call dialled (its DNIS) to it (``key``:
        ``Call.key``)."""
        dnis = msg.DNIS
        if dnis is None:
            return
        reservation = self.numbers.claim(dnis)
        if reservation is None:
            return
        self.ctx.calls.attach_user_data(key, reservation.data, self.ctx.now)
        log.info(
            "call %s: arrived on access number %s (location %s, asked by %s): data attached",
            call_id_of(key),
            dnis,
            reservation.location,
            call_id_of(reservation.call_id) if reservation.call_id else "the API",
        )
        self.changed()

    def claim(self, number: str) -> Reservation | None:
        """A claim over the API: the data of ``number``, which is free again."""
        reservation = self.numbers.claim(number)
        self.changed()
        return reservation

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        return self.numbers.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Free the numbers whose lifetime ended; answer ``Failure`` to the calls whose peer
        did not answer within ``request-timeout``. Nothing due (the usual case: the service's
        timer serves the calls' timers too): one comparison."""
        deadline = self.numbers.next_deadline()
        if deadline is None or deadline > now:
            return
        expired = self.numbers.expire(now)
        for reservation in expired.numbers:
            log.info(
                "access number %s of location %s expired unclaimed",
                reservation.number,
                reservation.location,
            )
        for ask in expired.asks:
            log.info(
                "call %s: AccessNumGet Failure: peer %s did not answer within %gs",
                call_id_of(ask.call_id),
                ask.peer,
                ask.timeout,
            )
            self.ctx.metrics.errors["access-num-get"] += 1
            self.ctx.calls.answer_access_num(ask.call_id, _FAILURE["Get"])
        self.changed()

    # ------------------------------------------------------------------ views

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every Location: its pool's counts (a peer's: where it is), for the API."""
        items: list[dict[str, Any]] = []
        numbers = self.numbers
        for name, location in numbers.locations.items():
            pool = numbers.pools.get(name)
            item: dict[str, Any] = {"location": name, "peer": location.peer}
            if pool is not None:
                counts = pool.counts
                item |= {
                    "size": pool.size,
                    "free": pool.free,
                    "reserved": pool.in_use,
                    "lifetime": location.lifetime,
                    "reserved_total": counts.reserved,
                    "handed_off_total": counts.handed_off,
                    "expired_total": counts.expired,
                    "cancelled_total": counts.cancelled,
                    "exhausted_total": counts.exhausted,
                }
            items.append(item)
        return items
