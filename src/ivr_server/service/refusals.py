"""Refused requests counted and logged by cause, so that a flood of them floods nothing.

Theory of operation. Every request refused (a :class:`~ivr_server.calls.replies.Refusal` caught
in ``IvrService.handle``) is counted in ``Metrics.errors`` by kind and in ``Metrics.refusals`` by
(request element, cause), the cause being what the IVR is told (``EndCall:ServerPaused``,
``NoSuchCall``...: bounded, no CallId in it). The log has the first refusal of a cause in full at
INFO, then at most one summary line per cause per interval with the count
(:class:`~ivr_server.throttle.LogThrottle`), and each refusal at DEBUG. The time is the one the
runtime passed in; summaries due are written by ``IvrService.handle_timer``.
"""

from __future__ import annotations

import logging

from ivr_server.calls.replies import Refusal
from ivr_server.metrics import Metrics
from ivr_server.service.context import log_ctx
from ivr_server.service.sessions import Session
from ivr_server.throttle import LogThrottle

__all__ = ["RefusalLog"]

log = logging.getLogger("ivr_server.service")


class RefusalLog:
    """Counts refusals by cause and logs them (see the module docstring)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.throttle: LogThrottle[tuple[str, str]] = LogThrottle()
        """(request, cause) -> its log lines; ``interval`` is the seconds between two."""

    def refused(
        self, session: Session, call_id: str | None, tag: str, refusal: Refusal, now: float
    ) -> None:
        """Count and log ``refusal`` of request ``tag`` on ``session`` at ``now``."""
        kind = refusal.kind
        metrics = self._metrics
        metrics.errors[kind] += 1
        cause = (tag, kind)
        metrics.refusals[cause] += 1
        throttle = self.throttle
        if throttle.note(cause, now):
            log.info(
                "session %d: %s (%s refused: %s; more of these are counted, one line every %g s)",
                session.id,
                refusal.reason,
                tag,
                kind,
                throttle.interval,
                extra=log_ctx(session, call_id),
            )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug(
                "session %d: %s (%s refused: %s)",
                session.id,
                refusal.reason,
                tag,
                kind,
                extra=log_ctx(session, call_id),
            )
        deadline = throttle.next_deadline()
        if deadline is not None and deadline <= now:
            self.flush(now)

    def next_deadline(self) -> float | None:
        """When a summary line is due (``None``: nothing counted)."""
        return self.throttle.next_deadline()

    def flush(self, now: float, *, everything: bool = False) -> None:
        """Write the summary lines due at ``now`` (``everything``: all that wait, at a stop)."""
        if not self.throttle.pending:
            return
        for summary in self.throttle.take_due(now, everything=everything):
            tag, kind = summary.key
            log.info(
                "%d more %s refused (%s) in the last %g s",
                summary.count,
                tag,
                kind,
                round(summary.seconds, 1),
            )
