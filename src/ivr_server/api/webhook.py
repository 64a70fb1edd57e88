"""The webhook router: a routing point whose calls are routed by an HTTP service.

When a call starts waiting at the routing point (``EventRouteRequest``, and again after a
treatment ended or was not started, or after the IVR reported that connecting to the routed
destination failed), the server POSTs that event's JSON (docs/api.md, "Event JSON") to the URL
and applies the JSON answer: a route ``{"route_type", "dest", "extensions"}`` (TRouteCall), a
treatment ``{"treatment": {"type", "parameters", "extensions"}}`` (TApplyTreatment), or nothing
(``{}``, an empty body, status 204). The request's timeout is the router timeout; a webhook that
fails, times out or answers nonsense is logged and does nothing, so the router timeout's
``RouteResponse RouteType='Default'`` answers the call.

Liveness (MODES-AND-HA G19: a Network call is taken only at a routing point whose router is
live). The webhook is live until :data:`FAILURES_DEAD` questions in a row failed (no answer, an
error status, nonsense); then it is down for :data:`RETRY_AFTER` seconds, after which the next
call is asked again as a probe: one good answer (a route, a treatment, or none) makes it live
again, one more failure puts it down for another :data:`RETRY_AFTER` seconds.

The router keeps the contract of :mod:`ivr_server.routing.router`: ``on_event`` does no I/O, it
starts a task on the event loop and returns; the task answers later through the same door as the
API's route endpoint (:class:`~ivr_server.service.control.Control`), then writes out the IVR
sessions.
"""

from __future__ import annotations

__all__ = ["FAILURES_DEAD", "RETRY_AFTER", "WebhookRouter"]

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp
from pydantic import ValidationError

from ivr_server.api.jsonify import MAX_JSON_BYTES, event_json, load_json
from ivr_server.api.models import WebhookAnswer, kv_items
from ivr_server.routing import ROUTE_FAILURE_CODES
from ivr_server.service.control import ActResult, Control, ControlError
from ivr_server.switch import (
    EventError,
    EventRouteRequest,
    EventTreatmentEnd,
    EventTreatmentNotApplied,
    Switch,
    SwitchEvent,
)

log = logging.getLogger("ivr_server.api.webhook")

FAILURES_DEAD: Final = 3
"""Questions in a row that failed after which the webhook counts as down."""
RETRY_AFTER: Final = 30.0
"""Seconds a down webhook gets no calls before the next one probes it."""


class WebhookRouter:
    """Routes the calls of routing point ``rp`` of ``switch`` by asking ``url``."""

    def __init__(
        self,
        control: Control,
        switch: str,
        rp: str,
        url: str,
        *,
        client: Callable[[], aiohttp.ClientSession],
        timeout: Callable[[], float],
        flush: Callable[[], None],
    ) -> None:
        self.control = control
        self.switch = switch
        self.rp = rp
        self.url = url
        self._client = client
        self._timeout = timeout
        self._flush = flush
        self.tasks: set[asyncio.Task[None]] = set()
        self.failures = 0
        """Questions in a row that failed (0 after any good answer)."""
        self.failed_at = 0.0
        """When the last question failed (the event loop's clock)."""

    def is_live(self, now: float) -> bool:
        """Live unless :data:`FAILURES_DEAD` questions in a row failed and the last failure is
        less than :data:`RETRY_AFTER` seconds old (see the module docstring)."""
        return self.failures < FAILURES_DEAD or now - self.failed_at >= RETRY_AFTER

    def _outcome(self, ok: bool) -> None:
        """Count a question's outcome for :meth:`is_live`."""
        if ok:
            self.failures = 0
            return
        self.failures += 1
        self.failed_at = asyncio.get_running_loop().time()
        if self.failures == FAILURES_DEAD:
            log.warning(
                "webhook %s: %d questions in a row failed; down for %.0f s",
                self.url,
                self.failures,
                RETRY_AFTER,
            )

    def routing_points(self) -> frozenset[str]:
        return frozenset({self.rp})

    def on_event(self, switch: Switch, event: SwitchEvent) -> None:
        if switch.name != self.switch or getattr(event, "dn", None) != self.rp:
            return
        waits = isinstance(
            event, EventRouteRequest | EventTreatmentEnd | EventTreatmentNotApplied
        ) or (  # the IVR could not connect the call to the routed destination
            isinstance(event, EventError)
            and event.request == "TRouteCall"
            and event.error_code in ROUTE_FAILURE_CODES
        )
        conn_id = getattr(event, "conn_id", None)
        if waits and isinstance(conn_id, str):
            self._ask(event, conn_id)

    def _ask(self, event: SwitchEvent, conn_id: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning(
                "webhook %s: no event loop; call %s left to the router timeout", self.url, conn_id
            )
            return
        task = loop.create_task(self._call(event_json(event, time.time()), conn_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        """Cancel the questions in flight (the router timeout answers their calls)."""
        for task in list(self.tasks):
            task.cancel()

    async def _call(self, payload: dict[str, Any], conn_id: str) -> None:
        ok, data = await self._post(payload, conn_id)
        if data is None:
            self._outcome(ok)
            return
        try:
            answer = WebhookAnswer.model_validate(data)
        except ValidationError as exc:
            self._outcome(False)
            log.warning(
                "webhook %s: unusable answer for call %s: %s",
                self.url,
                conn_id,
                exc.errors(include_url=False),
            )
            return
        self._outcome(True)
        now = asyncio.get_running_loop().time()
        try:
            result: ActResult | None = None
            if answer.treatment is not None:
                treatment = answer.treatment
                result = self.control.apply_treatment(
                    self.switch,
                    self.rp,
                    conn_id,
                    treatment_type=treatment.type,
                    parameters=kv_items(treatment.parameters),
                    extensions=kv_items(treatment.extensions),
                    now=now,
                )
            elif answer.route_type is not None or answer.dest is not None:
                result = self.control.route_call(
                    self.switch,
                    self.rp,
                    conn_id,
                    route_type=answer.route_type or "Normal",
                    dest=answer.dest,
                    extensions=kv_items(answer.extensions),
                    now=now,
                )
        except ControlError as exc:
            log.info("webhook %s: answer for call %s not applied: %s", self.url, conn_id, exc)
            return
        finally:
            self._flush()
        if result is not None and result.error is not None:
            log.info(
                "webhook %s: answer for call %s refused by the switch: %s",
                self.url,
                conn_id,
                result.error.error_message,
            )

    async def _post(self, payload: dict[str, Any], conn_id: str) -> tuple[bool, Any]:
        """Whether the webhook answered well, and its decoded JSON answer (``None`` when there is
        none to apply)."""
        try:
            timeout = aiohttp.ClientTimeout(total=self._timeout())
            async with self._client().post(self.url, json=payload, timeout=timeout) as response:
                if response.status == 204:
                    return True, None
                if response.status // 100 != 2:
                    log.warning(
                        "webhook %s answered %d for call %s", self.url, response.status, conn_id
                    )
                    return False, None
                body = await response.content.read(MAX_JSON_BYTES + 1)
                if not body.strip():
                    return True, None
                return True, load_json(body)  # ValueError: too large, too deep, not JSON
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("webhook %s failed for call %s: %r", self.url, conn_id, exc)
            return False, None
