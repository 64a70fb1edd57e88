"""Outbound dialling, sans-IO: DialOut registrations and predictive-call requests (PROTOCOL.md
§3.10, §6.5.7).

A requester (the HTTP API, standing in for the original's T-Library dialler) asks for a predictive
call on a routing-point DN that an IVR session registered with ``DialOutRegistry``. The request
becomes a ``DialOut`` (RefID, OrigNum, DestNum, TimeToAnswer, user data, extensions; no CallId)
to the earliest registration's session and waits, bounded by the request's timeout, for the IVR's
``DialOutError`` or ``DialOutInit``. Every outcome goes to the ``report`` callback given at
construction, with the request it concerns; the call that a ``DialOutInit`` starts is the call
manager's business, which reports the rest of the call's life through the same callback.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ivr_server.memory import shrink
from ivr_server.switch import TErrorCode
from ivr_server.timers import DeadlineQueue
from ivr_server.wire import KvList
from ivr_server.wire import messages as m

__all__ = [
    "DIAL_OUT_ERRORS",
    "DialOutManager",
    "DialOutOutcome",
    "DialOutRequest",
]

DIAL_OUT_ERRORS: Final = {
    "NotSupported": TErrorCode.TERR_UNSUP_OPER,
    "NoTrunks": TErrorCode.TERR_OUT_OF_SERVICE,
    "MiscError": TErrorCode.TERR_UNKNOWN,
}
"""``DialOutError/@Error`` -> the EventError code reported to the requester (§3.10.4)."""

DEFAULT_TIME_TO_ANSWER: Final = 30
"""Seconds of ringing the IVR allows when the request gives no timeout (PROTOCOL.md §9.4.5)."""

OutcomeKind = Literal[
    "refused",  # DialOutError from the IVR (error_code set)
    "timeout",  # no DialOutInit/DialOutError within the request's timeout
    "lost",  # the session the DialOut went to closed before answering
    "dialing",  # DialOutInit: the IVR dials (call_id set)
    "established",  # the called party answered
    "failed",  # Failure Busy / NoAnswer / ConnectFailed (cause set)
    "ended",  # the call ended (EndCall, release) after it was established
    "abandoned",  # the call ended before it was established
]


@dataclass(frozen=True, slots=True)
class DialOutOutcome:
    """What happened to a predictive-call request."""

    kind: OutcomeKind
    ref_id: str
    call_id: str | None = None
    error_code: int | None = None
    cause: str | None = None

    @property
    def final(self) -> bool:
        """No further outcome follows for this request."""
        return self.kind not in ("dialing", "established")


@dataclass(eq=False, slots=True)
class DialOutRequest:
    """One predictive-call request (TMakePredictiveCall) and where it stands."""

    ref_id: str
    requester: Any
    orig_dn: str
    dest: str
    session: Hashable
    time_to_answer: int
    timeout: float
    user_data: KvList = ()
    extensions: KvList = ()
    call_id: str | None = None
    history: list[DialOutOutcome] = field(default_factory=list)

    def dial_out(self) -> m.DialOut:
        """The ``DialOut`` message for the IVR."""
        return m.DialOut(
            RefID=self.ref_id,
            OrigNum=self.orig_dn,
            DestNum=self.dest,
            TimeToAnswer=str(self.time_to_answer),
            UDataEx=self.user_data or None,
            ExtnsEx=self.extensions or None,
        )


ReportFn = Callable[[DialOutRequest, DialOutOutcome], None]


class DialOutManager:
    """Registrations and outstanding requests. See the module docstring."""

    def __init__(self, report: ReportFn) -> None:
        self._report = report
        self._registry: dict[str, list[Hashable]] = {}
        self._pending: dict[str, DialOutRequest] = {}
        self._timers: DeadlineQueue[str] = DeadlineQueue()
        self._ref_ids = itertools.count(1)
        self.last_ref = 0
        """The latest RefID handed out (HA, issue 25: a node taking over goes on after it)."""
        self.changed: set[str] | None = None
        """HA tracking (issue 25, ``service/persist.py``): RefIDs of the requests started or
        finished since the last collect; ``None`` (the default): nothing is tracked."""

    # -- registrations (DialOutRegistry)

    def register(self, session: Hashable, dn: str) -> None:
        sessions = self._registry.setdefault(dn, [])
        if session not in sessions:
            sessions.append(session)

    def unregister(self, session: Hashable, dn: str | None = None) -> None:
        """Forget ``session``'s registration of ``dn`` (``None``: all of them)."""
        for number in [dn] if dn is not None else list(self._registry):
            sessions = self._registry.get(number)
            if sessions is not None and session in sessions:
                sessions.remove(session)
                if not sessions:
                    del self._registry[number]

    def registered(self, dn: str) -> list[Hashable]:
        """Sessions that registered ``dn``, earliest first."""
        return list(self._registry.get(dn, ()))

    def request(
        self,
        requester: Any,
        orig_dn: str,
        dest: str,
        now: float,
        *,
        timeout: float | None = None,
        user_data: KvList = (),
        extensions: KvList = (),
    ) -> DialOutRequest | None:
        """Start a predictive call; ``None`` when no session registered ``orig_dn``."""
        sessions = self._registry.get(orig_dn)
        if not sessions:
            return None
        time_to_answer = int(timeout) if timeout and timeout >= 1 else DEFAULT_TIME_TO_ANSWER
        self.last_ref = next(self._ref_ids)
        req = DialOutRequest(
            ref_id=str(self.last_ref),
            requester=requester,
            orig_dn=orig_dn,
            dest=dest,
            session=sessions[0],
            time_to_answer=time_to_answer,
            timeout=timeout if timeout else float(DEFAULT_TIME_TO_ANSWER),
            user_data=user_data,
            extensions=extensions,
        )
        self._pending[req.ref_id] = req
        self._timers.set(req.ref_id, now + req.timeout)
        if self.changed is not None:  # HA tracking (issue 25)
            self.changed.add(req.ref_id)
        return req

    # -- HA (issue 25, service/persist.py)

    def pending(self) -> list[DialOutRequest]:
        """The requests waiting for the IVR's ``DialOutInit`` or ``DialOutError``."""
        return list(self._pending.values())

    def get(self, ref_id: str) -> DialOutRequest | None:
        """The pending request ``ref_id``, if any."""
        return self._pending.get(ref_id)

    def deadline(self, ref_id: str) -> float | None:
        """When the pending request ``ref_id`` times out, if it is pending."""
        return self._timers.get(ref_id)

    def restore(self, req: DialOutRequest, deadline: float) -> None:
        """A pending request taken over from another node (its session there is not one of
        this node's: ``req.session`` is ``None``, and any session may answer it)."""
        self._pending[req.ref_id] = req
        self._timers.set_many([(req.ref_id, deadline)])
        self.go_on_after(int(req.ref_id) if req.ref_id.isdigit() else 0)

    def go_on_after(self, last_ref: int) -> None:
        """RefIDs go on after ``last_ref`` (another node's), never back."""
        if last_ref > self.last_ref:
            self.last_ref = last_ref
            self._ref_ids = itertools.count(last_ref + 1)

    def pending_count(self) -> int:
        return len(self._pending)

    def on_error(self, session: Hashable, msg: m.DialOutError) -> DialOutRequest | None:
        """The IVR refused the DialOut; ``None`` for an unknown or foreign RefID (ignored)."""
        req = self._pending.get(msg.RefID)
        if req is None or (req.session is not session and req.session is not None):
            return None  # (a session of None: taken over from another node, HA issue 25)
        self._finish(
            req, DialOutOutcome("refused", req.ref_id, error_code=int(DIAL_OUT_ERRORS[msg.Error]))
        )
        return req

    def take_init(self, session: Hashable, ref_id: str) -> DialOutRequest | None:
        """A DialOutInit for ``ref_id``: the request it answers, no longer pending; ``None`` when
        it is unknown, expired or was sent to another session (answer: EndCall)."""
        req = self._pending.get(ref_id)
        if req is None or (req.session is not session and req.session is not None):
            return None  # (a session of None: taken over from another node, HA issue 25)
        del self._pending[ref_id]
        if self.changed is not None:  # HA tracking (issue 25)
            self.changed.add(ref_id)
        self._timers.cancel(ref_id)
        return req

    def notify(self, req: DialOutRequest, outcome: DialOutOutcome) -> None:
        """Report a later outcome of a request (the call's progress)."""
        req.history.append(outcome)
        self._report(req, outcome)

    def session_closed(self, session: Hashable) -> None:
        """``session`` went away: its registrations go, its unanswered DialOuts fail."""
        self.unregister(session)
        for req in [r for r in self._pending.values() if r.session is session]:
            self._finish(req, DialOutOutcome("lost", req.ref_id))

    def _finish(self, req: DialOutRequest, outcome: DialOutOutcome) -> None:
        self._pending.pop(req.ref_id, None)
        if self.changed is not None:  # HA tracking (issue 25)
            self.changed.add(req.ref_id)
        self._timers.cancel(req.ref_id)
        self.notify(req, outcome)

    # -- timers

    def compact(self) -> int:
        """Rebuild the request tables if they are mostly empty (see ``ivr_server.memory``)."""
        return shrink(self._registry) + shrink(self._pending) + self._timers.compact()

    def next_deadline(self) -> float | None:
        return self._timers.first()

    def handle_timer(self, now: float) -> None:
        for ref_id in list(self._timers.pop_due(now)):
            req = self._pending.get(ref_id)
            if req is not None:
                self._finish(
                    req, DialOutOutcome("timeout", ref_id, error_code=int(TErrorCode.TERR_UNKNOWN))
                )
