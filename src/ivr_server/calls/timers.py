"""The calls' timers: one deadline queue per kind of timer, keyed by CallId (the events kept for
a ``NewCall`` at a Behind port: by the port's (switch, DN)).

Timers of one kind all have the same duration, so each :class:`~ivr_server.timers.DeadlineQueue`
stays sorted by deadline (docs/calls.md "Timers"). The call side reads the earliest deadline
(:meth:`CallTimers.first`) for the runtime to arm one event-loop timer, and takes what fell due
(:meth:`CallTimers.pop_due`) as table inputs.
"""

from __future__ import annotations

from collections.abc import Iterator

from ivr_server.calls.machine import CallInput
from ivr_server.timers import DeadlineQueue, earliest

__all__ = ["CallTimers"]


class CallTimers:
    """The kinds of call timer (PROTOCOL.md §7, make-call-timeout of G10), and the life of premise events kept for a
    ``NewCall`` (``waiting-for-newcall-timeout``)."""

    def __init__(self) -> None:
        self.router: DeadlineQueue[str] = DeadlineQueue()
        """Router Timeout: a routing dialog waits for the router's instructions."""
        self.call: DeadlineQueue[str] = DeadlineQueue()
        """Call Timeout: the longest a call may last."""
        self.ringing: DeadlineQueue[str] = DeadlineQueue()
        """Wait for ringing (Behind): the premise switch has not reported the call at the port."""
        self.orphan: DeadlineQueue[str] = DeadlineQueue()
        """Orphan call timeout: no session of the call's IVR is connected."""
        self.make_call: DeadlineQueue[str] = DeadlineQueue()
        """Make-call timeout: a ``MakeCall``'s destination has not answered (G10)."""
        self.deferred: DeadlineQueue[tuple[str, str]] = DeadlineQueue()
        """Waiting for NewCall (Behind): a port's kept premise events are dropped. Not in
        :meth:`pop_due` (its keys are ports, not calls): the manager takes it itself."""

    def __len__(self) -> int:
        return (
            len(self.router)
            + len(self.call)
            + len(self.ringing)
            + len(self.orphan)
            + len(self.make_call)
            + len(self.deferred)
        )

    def cancel_all(self, call_id: str) -> None:
        """Stop every timer of ``call_id`` (the call is forgotten)."""
        self.router.cancel(call_id)
        self.call.cancel(call_id)
        self.ringing.cancel(call_id)
        self.orphan.cancel(call_id)
        self.make_call.cancel(call_id)

    def first(self) -> float | None:
        """The earliest deadline, or ``None``."""
        return earliest(
            self.router.first(),
            self.call.first(),
            self.ringing.first(),
            self.orphan.first(),
            self.make_call.first(),
            self.deferred.first(),
        )

    def pop_due(self, now: float) -> Iterator[tuple[str, CallInput]]:
        """Every timer due at ``now``, removed, with the input it gives its call: router timeouts
        first, then wait-for-ringing, make-call, orphan and call timeouts. Each kind is taken whole before
        its calls are fed, so that what they cancel of the later kinds does not fire."""
        for queue, event in (
            (self.router, CallInput.ROUTER_TIMEOUT),
            (self.ringing, CallInput.WAIT_RINGING_TIMEOUT),
            (self.make_call, CallInput.MAKE_CALL_TIMEOUT),
            (self.orphan, CallInput.ORPHAN_TIMEOUT),
            (self.call, CallInput.CALL_TIMEOUT),
        ):
            for call_id in list(queue.pop_due(now)):
                yield call_id, event

    def compact(self) -> int:
        """Rebuild the queues that are mostly empty; how many were rebuilt."""
        queues = (self.router, self.call, self.ringing, self.orphan, self.make_call, self.deferred)
        return sum(queue.compact() for queue in queues)
