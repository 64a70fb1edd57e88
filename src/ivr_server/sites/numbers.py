"""Access numbers, sans-IO: every Location's DNIS pool, the numbers reserved in them with the
data bound to each, the numbers calls of this server hold on peer servers, and the requests to
peers still waiting for an answer (MODES-AND-HA §1.4 X1-X2, G24; ``docs/access-numbers.md``).

Theory of operation. ``AccessNumGet Location=L`` on a call: a pool Location reserves its number
free the longest and binds the call's data to it for the Location's ``lifetime``
(:meth:`AccessNumbers.get` → :class:`Reserved`); a peer Location makes a :class:`PeerAsk` the
runtime carries to the peer over HTTP (→ :class:`Asking`), answered through
:meth:`AccessNumbers.peer_answered` or failed by its ``request-timeout``. A call holds at most one
number: a second ``AccessNumGet`` replaces the first (released at once: here to the pool, on a
peer by a :class:`PeerRelease`). ``AccessNumCancel`` releases it (:meth:`AccessNumbers.cancel`).
A call that ends keeps its number: the call dialled on it may still arrive, until ``lifetime``.

The call that arrives on a reserved number (its ``DNIS``) claims it (:meth:`AccessNumbers.claim`):
the data goes to that call and the number is free again at once. Reservations and claims also
come over the HTTP API (a peer, or any outside system). Nothing reserved is ever left behind:
every reservation ends by a claim, a release or its lifetime (:meth:`AccessNumbers.expire`); a
reload that takes a number away lets its reservation run to its end, then the number is gone.

No clock is read: every request carries ``now``. Deadlines of one duration are set in increasing
order, so each duration has its own :class:`~ivr_server.timers.DeadlineQueue`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from ivr_server.config import LocationConfig
from ivr_server.sites.pool import DnisPool, PoolCounts
from ivr_server.timers import DeadlineQueue, earliest
from ivr_server.wire import KvList

__all__ = [
    "ROUTE_TYPES",
    "AccessNumbers",
    "Asking",
    "Expired",
    "PeerAsk",
    "PeerRelease",
    "Refused",
    "Reservation",
    "Reserved",
]

ROUTE_TYPES: Final = frozenset({"Default", "DnisPool"})
"""The ``XRouteType`` values served (G24): both mean the Location's pool."""

TimerKey = tuple[Literal["number", "ask", "held"], str]
"""A timer: a reserved number's lifetime, a peer request's timeout (by CallId), a number a call
holds on a peer (by CallId)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reserved number of a pool of this server and the data bound to it."""

    number: str
    location: str
    dest: str
    """The ``DestDN`` the number leads to (informative: the inbound call's own DNIS is the
    number)."""
    data: KvList
    """The user data the call that arrives on the number gets."""
    call_id: str | None
    """The call that asked (``None``: reserved over the API)."""
    reserved_at: float
    expires_at: float
    by: str = "ivr"
    """Who asked: ``ivr`` (an ``AccessNumGet``) or ``api``."""


@dataclass(frozen=True, slots=True)
class PeerAsk:
    """An ``AccessNumGet`` of a call for a peer's Location, for the runtime to carry over HTTP."""

    ask_id: int
    call_id: str
    location: str
    """The Location's name here."""
    peer: str
    """The peer's API base URL."""
    remote_location: str
    """The Location's name on the peer."""
    token: str | None
    dest: str
    data: KvList
    timeout: float
    """Seconds the request may take (``request-timeout``)."""


@dataclass(frozen=True, slots=True)
class PeerRelease:
    """A number reserved on a peer that this server no longer needs: the runtime deletes it
    there (best effort; the peer's own lifetime frees it otherwise)."""

    peer: str
    number: str
    token: str | None
    location: str


@dataclass(frozen=True, slots=True)
class _Held:
    """A number a call of this server holds on a peer."""

    release: PeerRelease
    expires_at: float


@dataclass(frozen=True, slots=True)
class Reserved:
    """``AccessNumGet`` answered ``Success`` with ``number``."""

    number: str
    released: PeerRelease | None = None
    """The number the call held on a peer before (its ``AccessNumGet`` replaced it)."""


@dataclass(frozen=True, slots=True)
class Asking:
    """``AccessNumGet`` waits for a peer (answered later)."""

    ask: PeerAsk
    released: PeerRelease | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """``AccessNumGet`` answered ``Failure``, for ``reason`` (logged)."""

    reason: str
    released: PeerRelease | None = None


GetOutcome = Reserved | Asking | Refused


@dataclass(slots=True)
class Expired:
    """What :meth:`AccessNumbers.expire` ended."""

    numbers: list[Reservation] = field(default_factory=list)
    """Reserved numbers whose lifetime ended: free again."""
    asks: list[PeerAsk] = field(default_factory=list)
    """Peer requests that timed out: their calls get ``Failure``."""


class AccessNumbers:
    """Every Location's pool and reservation (see the module docstring)."""

    def __init__(self, locations: Sequence[LocationConfig] = ()) -> None:
        self.locations: dict[str, LocationConfig] = {}
        self.pools: dict[str, DnisPool] = {}
        """Location name → its pool (pool Locations only)."""
        self._pool_of: dict[str, DnisPool] = {}
        """Number → the pool it belongs to now."""
        self.reserved: dict[str, Reservation] = {}
        """Number → its reservation: the one lookup an inbound call costs."""
        self._number_of_call: dict[str, str] = {}
        """CallId → the number of a pool here it holds."""
        self._held: dict[str, _Held] = {}
        """CallId → the number it holds on a peer."""
        self._asks: dict[str, PeerAsk] = {}
        """CallId → its request to a peer waiting for an answer."""
        self._timers: dict[float, DeadlineQueue[TimerKey]] = {}
        self._deadline: dict[TimerKey, float] = {}
        self._ask_ids = itertools.count(1)
        self._retired: dict[str, PoolCounts] = {}
        """The counts of Locations a reload removed (kept for a Location that comes back)."""
        self.configure(locations)

    # ------------------------------------------------------------------ configuration

    def configure(self, locations: Sequence[LocationConfig]) -> None:
        """Use ``locations`` from now on. Reserved numbers keep their data until claimed,
        released or expired, whatever the new pools say; a number no pool has any more is gone
        when its reservation ends. A pool keeps its counts while its Location exists."""
        old = self.pools
        self.locations = {location.name: location for location in locations}
        self.pools = {}
        self._pool_of = {}
        for location in locations:
            if location.peer is not None:
                continue
            pool = DnisPool(location.name, location.pool, taken=self.reserved)
            kept = old[location.name].counts if location.name in old else None
            counts = self._retired.pop(location.name, None) or kept
            if counts is not None:
                pool.counts = counts
            self.pools[location.name] = pool
            for number in location.pool:
                self._pool_of[number] = pool
        for name, pool in old.items():
            if name not in self.pools:
                self._retired[name] = pool.counts

    @property
    def active(self) -> bool:
        """Some Location is a pool here, or some number is still reserved: inbound calls must
        be looked at."""
        return bool(self.pools) or bool(self.reserved)

    # ------------------------------------------------------------------ the IVR's requests

    def get(
        self,
        call_id: str,
        location_name: str,
        dest: str,
        route_type: str,
        data: KvList,
        now: float,
    ) -> GetOutcome:
        """``AccessNumGet`` of call ``call_id``: any number it held is released first (a second
        Get replaces the first, even when the second fails)."""
        released = self._drop_call(call_id)
        location = self.locations.get(location_name)
        if route_type not in ROUTE_TYPES:
            return Refused(f"XRouteType {route_type!r} is not supported", released)
        if location is None:
            return Refused(f"unknown Location {location_name!r}", released)
        if location.peer is not None:
            ask = PeerAsk(
                ask_id=next(self._ask_ids),
                call_id=call_id,
                location=location.name,
                peer=location.peer,
                remote_location=location.remote_name,
                token=location.token,
                dest=dest,
                data=data,
                timeout=location.request_timeout,
            )
            self._asks[call_id] = ask
            self._start(("ask", call_id), location.request_timeout, now)
            return Asking(ask, released)
        reservation = self.reserve(location_name, dest, data, now, call_id=call_id)
        if isinstance(reservation, str):
            return Refused(reservation, released)
        self._number_of_call[call_id] = reservation.number
        return Reserved(reservation.number, released)

    def cancel(self, call_id: str) -> tuple[bool, PeerRelease | None]:
        """``AccessNumCancel`` of call ``call_id``: (anything was pending, the number to release
        on a peer). A request still waiting for its peer is dropped unanswered; the number the
        peer gives it later is released there."""
        had = call_id in self._number_of_call or call_id in self._held or call_id in self._asks
        return had, self._drop_call(call_id)

    def peer_answered(
        self, ask: PeerAsk, number: str | None, now: float
    ) -> tuple[bool, PeerRelease | None]:
        """The peer answered ``ask`` with ``number`` (``None``: it refused or failed): (the call
        still waits for it, so its answer is to be sent; the number to release on the peer
        because nobody waits for it any more)."""
        if self._asks.get(ask.call_id) is not ask:
            stale = (
                PeerRelease(ask.peer, number, ask.token, ask.remote_location)
                if number is not None
                else None
            )
            return False, stale
        del self._asks[ask.call_id]
        self._stop(("ask", ask.call_id))
        if number is not None:
            location = self.locations.get(ask.location)
            lifetime = location.lifetime if location is not None else 60.0
            release = PeerRelease(ask.peer, number, ask.token, ask.remote_location)
            self._held[ask.call_id] = _Held(release, now + lifetime)
            self._start(("held", ask.call_id), lifetime, now)
        return True, None

    # ------------------------------------------------------------------ the pools themselves

    def reserve(
        self,
        location_name: str,
        dest: str,
        data: KvList,
        now: float,
        *,
        call_id: str | None = None,
        by: str = "ivr",
    ) -> Reservation | str:
        """Reserve a number of pool ``location_name`` for its lifetime; the reason (a string)
        when the Location has no pool here or none is free."""
        location = self.locations.get(location_name)
        pool = self.pools.get(location_name)
        if location is None or pool is None:
            why = "unknown Location" if location is None else "a peer's Location, no pool here"
            return f"{why} {location_name!r}"
        number = pool.take()
        if number is None:
            return f"pool {location_name!r} exhausted ({pool.size} numbers reserved)"
        reservation = Reservation(
            number=number,
            location=location_name,
            dest=dest,
            data=data,
            call_id=call_id,
            reserved_at=now,
            expires_at=now + location.lifetime,
            by=by,
        )
        self.reserved[number] = reservation
        self._start(("number", number), location.lifetime, now)
        return reservation

    def release(self, number: str) -> Reservation | None:
        """Free a reserved number early (cancelled); ``None`` if it is not reserved."""
        reservation = self._end(number)
        if reservation is not None:
            self._count(reservation, "cancelled")
        return reservation

    def claim(self, number: str) -> Reservation | None:
        """The call (or outside system) that arrived on ``number`` takes its data; the number is
        free again. ``None`` if it is not reserved. One dict lookup when it is not."""
        if number not in self.reserved:
            return None
        reservation = self._end(number)
        if reservation is not None:
            self._count(reservation, "handed_off")
        return reservation

    def peek(self, number: str) -> Reservation | None:
        return self.reserved.get(number)

    def _end(self, number: str) -> Reservation | None:
        reservation = self.reserved.pop(number, None)
        if reservation is None:
            return None
        self._stop(("number", number))
        if (
            reservation.call_id is not None
            and self._number_of_call.get(reservation.call_id) == number
        ):
            del self._number_of_call[reservation.call_id]
        pool = self._pool_of.get(number)
        if pool is not None:
            pool.give_back(number)
        return reservation

    def _count(self, reservation: Reservation, what: str) -> None:
        pool = self.pools.get(reservation.location)
        counts = pool.counts if pool is not None else self._retired.get(reservation.location)
        if counts is not None:
            setattr(counts, what, getattr(counts, what) + 1)

    def _drop_call(self, call_id: str) -> PeerRelease | None:
        """Whatever call ``call_id`` holds or asks for is given up; the number it held on a
        peer, to release there."""
        number = self._number_of_call.pop(call_id, None)
        if number is not None:
            self.release(number)
        if self._asks.pop(call_id, None) is not None:
            self._stop(("ask", call_id))
        held = self._held.pop(call_id, None)
        if held is None:
            return None
        self._stop(("held", call_id))
        return held.release

    # ------------------------------------------------------------------ timers

    def _start(self, key: TimerKey, duration: float, now: float) -> None:
        queue = self._timers.get(duration)
        if queue is None:
            queue = self._timers[duration] = DeadlineQueue()
        queue.set(key, now + duration)
        self._deadline[key] = duration

    def _stop(self, key: TimerKey) -> None:
        duration = self._deadline.pop(key, None)
        if duration is not None:
            self._timers[duration].cancel(key)

    def next_deadline(self) -> float | None:
        """When :meth:`expire` must next run (``None``: nothing is reserved or asked)."""
        if not self._deadline:
            return None
        deadline: float | None = None
        for queue in self._timers.values():
            deadline = earliest(deadline, queue.first())
        return deadline

    def expire(self, now: float) -> Expired:
        """End every reservation, peer request and peer-held number whose time is up."""
        expired = Expired()
        for key in list(self._due(now)):
            kind, name = key
            self._deadline.pop(key, None)
            if kind == "number":
                reservation = self._end(name)
                if reservation is not None:
                    self._count(reservation, "expired")
                    expired.numbers.append(reservation)
            elif kind == "ask":
                ask = self._asks.pop(name, None)
                if ask is not None:
                    expired.asks.append(ask)
            else:
                self._held.pop(name, None)
        for duration in [d for d, q in self._timers.items() if not len(q)]:
            del self._timers[duration]
        return expired

    def _due(self, now: float) -> Iterator[TimerKey]:
        for queue in list(self._timers.values()):
            yield from queue.pop_due(now)

    # ------------------------------------------------------------------ views

    def counts(self, location_name: str) -> tuple[int, int] | None:
        """(free, reserved) numbers of pool ``location_name`` now; ``None``: no such pool."""
        pool = self.pools.get(location_name)
        return None if pool is None else (pool.free, pool.in_use)

    def held_on_peers(self) -> int:
        """Numbers calls of this server hold on peers now."""
        return len(self._held)

    def asking(self) -> int:
        """Requests to peers waiting for an answer now."""
        return len(self._asks)
